"""Code generation: lower the graph to kernel steps, plan the arena, render the
C library (model.h, model.c, the runtime sources it needs, manifest.json).

C text comes from the Jinja2 templates in templates/ only; this module decides
what to render, the templates decide how.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

import numpy as np

from . import __version__
from .arena import ArenaPlan, plan_arena
from .compress.encodings import BiasCodebookEncoding
from .errors import FitError, OptionError, UnsupportedOpError
from .ir import Graph
from .lowering import Step, lower_node
from .lowering.gemm import MatmulParams
from .lowering.quantized import ConvEncS8Params, ConvS8Params, grow_channel_block
from .lowering.shape_ops import CopyParams
from .lowering.step import ConstArray, c_float
from .resources import firmware_dir, template_environment
from .targets import Target

KERNEL_SOURCES = {
    "fc": "wl_fc_f32.c",
    "bias_decode": "wl_bias_decode_f32.c",
    "matmul": "wl_matmul_f32.c",
    "conv2d": "wl_conv2d_f32.c",
    "depthwise_conv2d": "wl_depthwise_conv2d_f32.c",
    "pointwise_conv2d": "wl_pointwise_conv2d_f32.c",
    "pool2d": "wl_pool2d_f32.c",
    "binary": "wl_binary_f32.c",
    "unary": "wl_unary_f32.c",
    "channel_affine": "wl_channel_affine_f32.c",
    "softmax": "wl_softmax_f32.c",
    "reduce": "wl_reduce_f32.c",
    "transpose": "wl_transpose_f32.c",
    "resize": "wl_resize_f32.c",
    "lstm": ("wl_recurrent_f32.c", "wl_fc_f32.c"),
    "gru": ("wl_recurrent_f32.c", "wl_fc_f32.c"),
    # wl_recurrent_encoded_f32.c includes wl_recurrent_f32.c
    "lstm_encoded": ("wl_recurrent_encoded_f32.c", "wl_recurrent_f32.c", "wl_fc_encoded_f32.c", "wl_fc_f32.c"),
    "gru_encoded": ("wl_recurrent_encoded_f32.c", "wl_recurrent_f32.c", "wl_fc_encoded_f32.c", "wl_fc_f32.c"),
    "pad": "wl_pad_f32.c",
    "concat": "wl_concat_f32.c",
    "gather": "wl_gather_f32.c",
    "conv_transpose2d": "wl_conv_transpose2d_f32.c",
    "copy": "wl_copy_f32.c",
    "quantize": "wl_quantize_s8.c",
    "dequantize": "wl_quantize_s8.c",
    "flip_sign_s8": "wl_quantize_s8.c",
    "lut_s8": "wl_lut_s8.c",
    "concat_s8": "wl_concat_s8.c",
    "binary_s8": "wl_binary_s8.c",
    "softmax_s8": "wl_softmax_s8.c",
    "copy_s8": "wl_copy_s8.c",
    "fc_s8": "wl_fc_s8.c",
    "conv2d_s8": "wl_conv2d_s8.c",
    "depthwise_conv2d_s8": "wl_depthwise_conv2d_s8.c",
    "add_s8": "wl_add_s8.c",
    "pool2d_s8": "wl_pool2d_s8.c",
    "fc_encoded_s8": "wl_fc_encoded_s8.c",
    "conv2d_encoded_s8": ("wl_conv2d_encoded_s8.c", "wl_conv2d_s8.c"),
    "depthwise_conv2d_encoded_s8": ("wl_conv2d_encoded_s8.c", "wl_depthwise_conv2d_s8.c"),
    "fc_encoded": ("wl_fc_encoded_f32.c", "wl_fc_f32.c"),
    "conv2d_encoded": ("wl_conv2d_encoded_f32.c", "wl_conv2d_f32.c", "wl_depthwise_conv2d_f32.c", "wl_pointwise_conv2d_f32.c"),
    "depthwise_conv2d_encoded": ("wl_conv2d_encoded_f32.c", "wl_conv2d_f32.c", "wl_depthwise_conv2d_f32.c", "wl_pointwise_conv2d_f32.c"),
    "pointwise_conv2d_encoded": ("wl_conv2d_encoded_f32.c", "wl_conv2d_f32.c", "wl_depthwise_conv2d_f32.c", "wl_pointwise_conv2d_f32.c"),
}
# Kernels that take more scratch when the arena has room for it at their step: kernel -> (step,
# bytes of room) -> the step with its larger scratch.
GROWABLE = {"conv2d_encoded_s8": grow_channel_block}
# Sources every encoded kernel needs besides its own.
ENCODED_SUPPORT = ("wl_weights_decode.c",)
ENCODED_HEADERS = ("wl_weights.h", "wl_bloomier_hash.h", "wl_fc_stream.h", "wl_sparse.h")
# Stack the generated code and harness get on a board, checked against its RAM.
STACK_BYTES = 16 * 1024
# Activations' element types: C type and bytes. The arena is planned in bytes.
ACTIVATION_TYPES = {"float32": ("float", 4), "int8": ("int8_t", 1), "uint8": ("uint8_t", 1)}
# Constant arrays' C types, by numpy dtype.
CONST_CTYPES = {"float32": "float", "int8": "int8_t", "int32": "int32_t", "uint32": "uint32_t"}


@dataclass
class RenderedConst:
    symbol: str
    role: str
    size: int
    lines: list[str]
    ctype: str = "float"
    align: int = 4  # every constant array is word aligned (kernels load words, in pairs too)


@dataclass
class RenderedStep:
    index: int
    kernel: str
    layer: str
    sym: str
    params: object
    ins: list[str]  # C expressions of the inputs (activations or constants)
    out: str
    consts: dict[str, RenderedConst]
    weights: dict | None = None  # an encoding: its arrays and struct fields
    scratch: str = "0"
    bias: str = "0"  # C expression of the float32 bias: a constant, the arena (decoded just before), or none
    extra: list[str] = field(default_factory=list)  # C expressions of Step.extra_outputs ("0": not written)
    tables: dict = field(default_factory=dict)  # Step.extra_encodings rendered, by role


@dataclass
class Program:
    """Everything the templates need, and the manifest records."""

    name: str
    graph: Graph
    steps: list[Step]
    shapes: dict[str, tuple[int, ...]]
    arena: ArenaPlan
    buffers: dict[str, str]  # tensor -> C expression


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def lower_graph(graph: Graph) -> tuple[list[Step], dict[str, tuple[int, ...]]]:
    steps: list[Step] = []
    shapes = {n: t.shape for n, t in graph.tensors.items()}
    for node in graph.nodes:
        lowered = lower_node(node, graph)
        shapes.update(lowered.new_tensors)
        steps.extend(lowered.steps)
    return steps, shapes


def _plan_buffers(graph: Graph, steps: list[Step], shapes: dict[str, tuple[int, ...]]):
    consts = {n for n, t in graph.tensors.items() if t.is_const}
    io_names = _io_names(graph)
    root: dict[str, str] = {}

    def find(t: str) -> str:
        while t in root:
            t = root[t]
        return t

    # Graph outputs produced as views of something that cannot be an output
    # buffer get an explicit copy.
    out_roots: set[str] = set()
    fixed: list[Step] = []
    for s in steps:
        if s.view:
            root[s.output] = s.inputs[0]
        fixed.append(s)
    steps = []
    for s in fixed:
        if s.view and s.output in graph.outputs:
            r = find(s.output)
            if r in graph.inputs or r in graph.outputs or r in consts or r in out_roots:
                del root[s.output]
                size = int(np.prod(shapes[s.output]))
                int8 = s.output in graph.tensors and graph.tensors[s.output].dtype == "int8"
                s = Step("copy_s8" if int8 else "copy", s.layer, s.inputs, s.output, CopyParams(size))
            else:
                out_roots.add(r)
        steps.append(s)
    # Outputs' roots live in the caller's output buffer.
    ext: dict[str, str] = {name: io_names[name] for name in graph.inputs}
    for name in graph.outputs:
        ext[find(name)] = io_names[name]
    # In-place steps: the output takes over an input's region when that input
    # dies here and lives in the arena.
    last_use: dict[str, int] = {}
    for i, s in enumerate(steps):
        for t in s.inputs:
            if t and t not in consts:
                last_use[find(t)] = i
    for i, s in enumerate(steps):
        if find(s.output) in ext:
            continue
        for k in s.inplace:
            src = find(s.inputs[k]) if s.inputs[k] else None
            if src is not None and src not in ext and src not in consts and last_use.get(src) == i:
                root[s.output] = src
                break
    life: dict[str, list[int]] = {}
    for i, s in enumerate(steps):
        for t in [*s.inputs, *s.written]:
            if not t or t in consts:
                continue
            r = find(t)
            if r in ext:
                continue
            lo, hi = life.get(r, [i, i])
            life[r] = [min(lo, i), max(hi, i)]
    def dtype(t: str) -> str:
        return graph.tensors[t].dtype if t in graph.tensors else "float32"

    sizes = {r: ACTIVATION_TYPES[dtype(r)][1] * int(np.prod(shapes[r])) for r in life}
    members = {t: find(t) for s in steps for t in [*s.inputs, *s.written] if t and t not in consts and find(t) in life}
    for i, s in enumerate(steps):  # a kernel's scratch lives during its call only
        if s.scratch:
            life[scratch_name(i)] = [i, i]
            sizes[scratch_name(i)] = s.scratch
            members[scratch_name(i)] = scratch_name(i)
    arena = plan_arena({r: tuple(v) for r, v in life.items()}, sizes, members)
    steps, arena = _grow_scratch(steps, arena)
    buffers: dict[str, str] = {}
    for i, s in enumerate(steps):
        if s.scratch:
            buffers[scratch_name(i)] = _arena_view(arena.offset[scratch_name(i)])
        for t in [*s.inputs, *s.written]:
            if not t or t in consts:
                continue
            r = find(t)
            buffers[t] = ext[r] if r in ext else _arena_view(arena.offset[t], ACTIVATION_TYPES[dtype(t)][0])
    return steps, arena, buffers


def _bias_as_constant(steps: list[Step], i: int) -> list[Step]:
    """Steps with the bias decode at i replaced by its values as float32 constants of the layer after it."""
    dec, layer = steps[i], steps[i + 1]
    words, codebook = (next(c.data for c in dec.consts if c.role == role) for role in ("bias_index", "bias_codebook"))
    bias = ConstArray("bias", BiasCodebookEncoding.from_words(words, codebook, dec.params.n).decode())
    fixed = dataclasses.replace(layer, inputs=tuple(t for t in layer.inputs if t != dec.output), bias="",
                                consts=(*layer.consts, bias))
    return [*steps[:i], fixed, *steps[i + 2:]]


def _biases_within_arena(graph: Graph, steps: list[Step], shapes: dict[str, tuple[int, ...]]) -> list[Step]:
    """A bias stored as shared values needs its layer's channels of arena while the layer runs.
    Where that would make the arena larger than with every bias in flash, the bias goes back to
    float32 constants (the same values): flash is traded for RAM only where RAM is free."""
    def size(candidate: list[Step]) -> int:
        return _plan_buffers(graph, list(candidate), shapes)[1].size

    decodes = [i for i, s in enumerate(steps) if s.kernel == "bias_decode"]
    if not decodes:
        return steps
    plain = steps
    for i in reversed(decodes):
        plain = _bias_as_constant(plain, i)
    floor, current = size(plain), size(steps)
    for i in reversed(decodes):  # from the last, so that the indices of the earlier ones hold
        if current <= floor:
            break
        trial = _bias_as_constant(steps, i)
        trial_size = size(trial)
        if trial_size < current:
            steps, current = trial, trial_size
    return steps if current <= floor else plain  # else only several together raised it: all in flash


def _grow_scratch(steps: list[Step], arena: ArenaPlan) -> tuple[list[Step], ArenaPlan]:
    """Kernels that run faster with more scratch (GROWABLE) take the free space above their
    scratch at their step, up to the next region live then or the arena's end: the arena's size
    and every other region stay as planned."""
    regions = {r.root: r for r in arena.regions}
    for i, s in enumerate(steps):
        grow = GROWABLE.get(s.kernel)
        reg = regions.get(scratch_name(i))
        if grow is None or reg is None:
            continue
        end = reg.offset + reg.size
        above = [r.offset for r in arena.regions if r.root != reg.root and r.first <= i <= r.last and r.offset >= end]
        grown = grow(s, min(above, default=arena.size) - end)
        if grown.scratch != s.scratch:
            steps[i] = grown
            regions[reg.root] = dataclasses.replace(reg, size=grown.scratch)
    if all(regions[r.root] is r for r in arena.regions):
        return steps, arena
    placed = [regions[r.root] for r in arena.regions]
    bound = max((sum(r.size for r in placed if r.first <= i <= r.last) for i in range(len(steps))), default=0)
    return steps, dataclasses.replace(arena, regions=placed, lower_bound=bound)


def _arena_view(offset: int, ctype: str = "float") -> str:
    """A C expression for a region of the (byte) arena seen as ctype elements."""
    return f"(({ctype} *)(wl_{{name}}_arena + {offset}))"


def scratch_name(step: int) -> str:
    return f"wl_scratch_{step}"


def _io_names(graph: Graph) -> dict[str, str]:
    names = {}
    for kind, tensors in (("input", graph.inputs), ("output", graph.outputs)):
        for k, t in enumerate(tensors):
            names[t] = kind if len(tensors) == 1 else f"{kind}{k}"
    return names


def build_program(graph: Graph, name: str) -> Program:
    steps, shapes = lower_graph(graph)
    steps = _biases_within_arena(graph, steps, shapes)
    steps, arena, buffers = _plan_buffers(graph, steps, shapes)
    buffers = {t: e.replace("{name}", name) for t, e in buffers.items()}
    return Program(name, graph, steps, shapes, arena, buffers)


def _array_lines(data: np.ndarray, ctype: str = "float") -> list[str]:
    """C initializer lines: exact hex floats, or hex integers."""
    flat = np.asarray(data).reshape(-1)
    if ctype == "float":
        lits, per_line = [c_float(v) for v in np.asarray(flat, np.float32).tolist()], 8
    elif ctype in ("int8_t", "int32_t"):
        lits, per_line = [str(v) for v in flat.astype(np.int64).tolist()], 16
    else:
        lits, per_line = [f"0x{v:08x}u" for v in flat.astype(np.uint32).tolist()], 8
    return [", ".join(lits[i:i + per_line]) + "," for i in range(0, len(lits), per_line)]


def encoded_weights_context(sym: str, encoding) -> dict:
    """What templates/encoded_weights.c.j2 renders for an encoding, under symbols sym_*."""
    arrays = {a.suffix: RenderedConst(f"{sym}_{a.suffix}", a.suffix, int(a.data.size), _array_lines(a.data, a.ctype), a.ctype)
              for a in encoding.c_arrays()}
    return {"symbol": f"{sym}_weights", "arrays": arrays, "fields": encoding.c_fields()}


# Kernels that read Bloomier tables through wl_fc_stream.h's loops, one loop per (t, hashes): a
# recurrent layer's W and R through wl_fc_encoded_f32 at every step.
STREAMING_KERNELS = ("fc_encoded", "fc_encoded_s8", "lstm_encoded", "gru_encoded")
# --optimize: "speed" compiles those loops; "size" reads every weight on its own (less code).
OPTIMIZE_CHOICES = ("speed", "size")


def _loop_reads(e) -> bool:
    """Whether the streaming loops read this Bloomier table: for t > 8 they test a lane's low
    byte first, so K must be below 256 (wl_fc_stream_case); other tables take the general decoder."""
    return int(e.table.bits) <= 8 or len(e.codebook) <= 255


def bloomier_cases(steps, streaming: bool = True) -> list[tuple[int, int]]:
    """The (t, hashes) of the Bloomier tables that the streaming kernels read (streaming), or that
    the other encoded kernels decode through wl_weights_decode.c."""
    cases = set()
    for s in steps:
        for e in s.encodings:
            if e.kind == "bloomier" and (s.kernel in STREAMING_KERNELS) == streaming and (not streaming or _loop_reads(e)):
                cases.add((int(e.table.bits), int(e.table.hashes)))
    return sorted(cases)


def model_config(steps, optimize: str = "speed") -> str:
    """wl_model_config.h: which (t, hashes) cases of wl_fc_stream.h the library compiles, only
    those its fully connected tables use (a loop costs 300-460 bytes of code), as loops (optimize
    "speed") or as one group decode per case ("size"); the cases wl_weights_decode.c decodes for
    the other kernels; and that no other case occurs, so that the general decoder is not linked
    (unless a fully connected table has t > 8 and more than 255 clusters, which only it reads);
    whether a fully connected layer has a codebook encoding (its row-block loop, with speed);
    whether any layer has a sparse stream (its decode and loop); which elementwise ops the unary
    and binary kernels compile in."""
    fc_codebook = optimize == "speed" and any(s.kernel in STREAMING_KERNELS and e.kind == "codebook"
                                              for s in steps for e in s.encodings)

    def listed(streaming):
        return " ".join(f"X({t}, {h})" for t, h in bloomier_cases(steps, streaming))

    only_listed = all(_loop_reads(e) for s in steps if s.kernel in STREAMING_KERNELS
                      for e in s.encodings if e.kind == "bloomier")

    return ("/* Generated: the (t, hashes) cases of this model's Bloomier tables. */\n"
            "#ifndef WL_MODEL_CONFIG_H\n#define WL_MODEL_CONFIG_H\n"
            f"#define WL_BLOOMIER_CASES(X) {listed(True)}\n"
            f"#define WL_BLOOMIER_DECODE_CASES(X) {listed(False)}\n"
            f"#define WL_BLOOMIER_LOOPS {int(optimize == 'speed')}\n"
            f"#define WL_FC_CODEBOOK {int(fc_codebook)}\n"
            f"#define WL_SPARSE {int(any(e.kind == 'sparse' for s in steps for e in s.encodings))}\n"
            f"#define WL_BLOOMIER_ONLY_LISTED {int(only_listed)}\n"
            f"#define WL_UNARY_USED {op_mask(steps, 'unary')}u\n"
            f"#define WL_BINARY_USED {op_mask(steps, 'binary')}u\n"
            "#endif\n")


RECURRENT_KERNELS = ("lstm", "gru", "lstm_encoded", "gru_encoded")


def state_pairs(program: Program) -> list[tuple[str, str]]:
    """(input, output) pairs of a recurrent layer's initial and final state (h, and c of an
    LSTM) that are model inputs and outputs, where the input is read by that layer alone: the
    layer copies its initial state into scratch before it writes anything and its final state
    out last, so the caller may pass one buffer as both and carry the state from call to call."""
    readers: dict[str, int] = {}
    for s in program.steps:
        for t in s.inputs:
            readers[t] = readers.get(t, 0) + 1
    pairs = []
    for s in program.steps:
        if s.kernel in RECURRENT_KERNELS:
            for k in (1, 2):
                if k < len(s.inputs) and k < len(s.extra_outputs):
                    src, dst = s.inputs[k], s.extra_outputs[k]
                    if src in program.graph.inputs and dst in program.graph.outputs and readers.get(src) == 1:
                        pairs.append((src, dst))
    return pairs


def op_mask(steps, kernel: str) -> int:
    """Bit op set for each op code the steps of `kernel` use: what wl_unary_f32.c and
    wl_binary_f32.c compile in (each math function they may call is 0.3-2 KB of flash)."""
    mask = 0
    for s in steps:
        if s.kernel == kernel:
            mask |= 1 << s.params.op
    return mask


def render_encoded_weights(sym: str, encoding) -> str:
    """C definitions of an encoding's arrays and struct (static const)."""
    env = template_environment()
    return env.get_template("encoded_weights.c.j2").module.weights(encoded_weights_context(sym, encoding))


def _c_value(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, np.integer)):
        if not -(1 << 31) <= int(v) < (1 << 31):  # every params field is an int32_t
            raise UnsupportedOpError(f"a kernel parameter is {int(v):,}, outside the int32 range the kernels use")
        return str(int(v))
    if isinstance(v, float):
        return c_float(v)
    if isinstance(v, tuple):
        return "{" + ", ".join(_c_value(x) for x in v) + "}"
    raise TypeError(f"no C rendering for {type(v).__name__}")


def c_struct(params, layer: str = "") -> str:
    """A designated initializer for a params dataclass."""
    try:
        fields = [f".{f.name} = {_c_value(getattr(params, f.name))}" for f in dataclasses.fields(params)]
    except UnsupportedOpError as exc:
        raise UnsupportedOpError(f"node '{layer}': {exc}" if layer else str(exc)) from None
    return "{" + ", ".join(fields) + "}"


def flash_bytes_of_consts(program: Program) -> int:
    return sum(c.data.nbytes for s in program.steps for c in s.consts) + \
        sum(e.nbytes() for s in program.steps for e in s.encodings)


def check_fits(program: Program, target: Target) -> None:
    if target.is_host:
        return
    board = target.board
    weights = flash_bytes_of_consts(program)
    # The caller's input and output buffers live in RAM too.
    # the harness's float32 buffers, and its int8 / uint8 copies for inputs and outputs of those types
    io = sum(int(np.prod(program.shapes[t])) * (4 if program.graph.io_dtypes.get(t, "float32") == "float32" else 5)
             for t in [*program.graph.inputs, *program.graph.outputs])
    ram = program.arena.size + io + STACK_BYTES
    if weights > board.flash_size:
        raise FitError(
            f"model '{program.name}' does not fit {target.name}: it needs {weights} bytes of flash for its weights alone, "
            f"and {board.machine} has {board.flash_size}"
        )
    if ram > board.ram_size:
        raise FitError(
            f"model '{program.name}' does not fit {target.name}: it needs {ram} bytes of RAM ({program.arena.size} arena "
            f"+ {io} inputs and outputs + {STACK_BYTES} stack), and {board.machine} has {board.ram_size}"
        )


_SECTION = re.compile(r"[.A-Za-z_][.A-Za-z0-9_$]*")


def render(program: Program, target: Target, weights_section: str | None = None,
           optimize: str = "speed") -> dict[str, bytes]:
    """All files of the output directory, path -> content. weights_section puts
    every constant array (weights, tables, biases) in that linker section; optimize: see
    OPTIMIZE_CHOICES."""
    if optimize not in OPTIMIZE_CHOICES:
        raise OptionError(f"--optimize must be one of {', '.join(OPTIMIZE_CHOICES)}, not {optimize!r}")
    if weights_section is not None and not _SECTION.fullmatch(weights_section):
        raise OptionError(f"--weights-section '{weights_section}' is not a linker section name (e.g. .ext_flash)")
    env = template_environment()
    env.filters["c_struct"] = c_struct
    name = program.name
    graph = program.graph
    rsteps: list[RenderedStep] = []
    for i, s in enumerate(program.steps):
        if s.view:
            continue
        sym = f"wl_{name}_l{i}"
        consts = {c.role: RenderedConst(f"{sym}_{c.role}", c.role, int(c.data.size), _array_lines(c.data, ctype), ctype)
                  for c in s.consts for ctype in [CONST_CTYPES[c.data.dtype.name]]}
        ins = [consts[f"input{k}"].symbol if f"input{k}" in consts else program.buffers[t] if t else "0"
               for k, t in enumerate(s.inputs)]
        extra = [program.buffers[t] if t else "0" for t in s.extra_outputs]
        weights = None if s.encoding is None else encoded_weights_context(sym, s.encoding)
        tables = {role: encoded_weights_context(f"{sym}_{role}", e) for role, e in s.extra_encodings}
        scratch = program.buffers.get(scratch_name(i), "0")
        bias = program.buffers[s.bias] if s.bias else consts["bias"].symbol if "bias" in consts else "0"
        rsteps.append(RenderedStep(i, s.kernel, s.layer, sym, s.params, ins, program.buffers[s.output], consts, weights,
                                   scratch, bias, extra, tables))

    io_names = _io_names(graph)

    read = {t for st in program.steps for t in st.inputs}

    def io(kind, names):
        return [{"c": io_names[t], "tensor": t, "shape": list(program.shapes[t]),
                 "ctype": ACTIVATION_TYPES[graph.io_dtypes.get(t, "float32")][0],
                 "size": int(np.prod(program.shapes[t])), "used": kind == "output" or t in read} for t in names]

    ctx = {
        "name": name,
        "NAME": name.upper(),
        "inputs": io("input", graph.inputs),
        "outputs": io("output", graph.outputs),
        "constant_inputs": {k: ", ".join(f"{v:g}" for v in vals[:8]) + (", ..." if len(vals) > 8 else "")
                            for k, vals in graph.constant_inputs.items()},
        "state_pairs": state_pairs(program),
        "steps": rsteps,
        "arena_bytes": program.arena.size,
        "version": __version__,
        "encoded": any(s.weights or s.tables for s in rsteps),
        "weights_attr": f'__attribute__((section("{weights_section}")))' if weights_section else "",
    }
    files: dict[str, bytes] = {
        "model.h": env.get_template("model.h.j2").render(ctx).encode(),
        "model.c": env.get_template("model.c.j2").render(ctx).encode(),
    }
    fw = firmware_dir()
    files["runtime/wl_kernels.h"] = (fw / "include" / "wl_kernels.h").read_bytes()
    sources: set[str] = set()
    for kernel in {s.kernel for s in rsteps}:
        src = KERNEL_SOURCES[kernel]
        sources.update((src,) if isinstance(src, str) else src)
        if "_encoded" in kernel:
            sources.update(ENCODED_SUPPORT)
            for h in ENCODED_HEADERS:
                files[f"runtime/{h}"] = (fw / "include" / h).read_bytes()
    if "runtime/wl_weights.h" in files or any(s.kernel in ("unary", "binary") for s in program.steps):
        files["runtime/wl_model_config.h"] = model_config(program.steps, optimize).encode()
    for src in sorted(sources):
        files[f"runtime/{src}"] = (fw / "src" / src).read_bytes()
    build = {"sources": ["model.c", *(f"runtime/{src}" for src in sorted(sources))]}
    files["model.mk"] = env.get_template("model.mk.j2").render(ctx, **build).encode()
    files["CMakeLists.txt"] = env.get_template("CMakeLists.txt.j2").render(ctx, **build).encode()
    info = manifest(program, target, rsteps)
    info["weights_section"] = weights_section
    info["optimize"] = optimize
    files["manifest.json"] = (json.dumps(info, indent=2) + "\n").encode()
    return files


def weight_bytes(program: Program) -> tuple[int, int]:
    """(bytes of all weights and biases uncompressed, float32 or as the model stored them (int8),
    and bytes the firmware stores for them)."""
    original, stored = 4 * program.graph.removed_parameters, 0
    for s in program.steps:
        consts = sum(int(c.data.nbytes) for c in s.consts)
        original += 4 * s.params.n if s.kernel == "bias_decode" else consts
        stored += consts
        for e in s.encodings:
            original += e.dense_bytes()
            stored += e.nbytes()
    return original, stored


def _io_dtype(graph: Graph, tensor: str) -> dict:
    """{"dtype": "int8" | "uint8"} for a model input or output of that type; float32 goes unsaid."""
    kind = graph.io_dtypes.get(tensor, "float32")
    return {} if kind == "float32" else {"dtype": kind}


def _output_lsb(program: Program, tensor: str) -> dict:
    """{"lsb": scale} for an output dequantized from int8: one step of its values; {"lsb": 1}
    for an int8 or uint8 output."""
    if program.graph.io_dtypes.get(tensor, "float32") != "float32":
        return {"lsb": 1.0}
    for s in program.steps:
        if s.output == tensor and s.kernel == "dequantize":
            return {"lsb": float(s.params.scale)}
    return {}


def step_macs(step: Step) -> int:
    """Multiply-accumulates of a step's kernel call: fully connected, convolutions (of any kind)
    and MatMul; 0 for the others."""
    p = step.params
    if isinstance(p, ConvEncS8Params):
        p = ConvS8Params(*p.conv)
    if "conv" in step.kernel and hasattr(p, "group"):
        k = p.k_h * p.k_w
        if step.kernel.startswith("conv_transpose"):
            return p.in_c * p.in_h * p.in_w * (p.out_c // p.group) * k
        return p.out_c * p.out_h * p.out_w * (p.in_c // p.group) * k
    if hasattr(p, "in_features"):
        return p.rows * p.in_features * p.out_features
    if isinstance(p, MatmulParams):
        return int(np.prod(p.batch_shape, dtype=np.int64)) * p.m * p.k * p.n
    return 0


def manifest(program: Program, target: Target, rsteps: list[RenderedStep]) -> dict:
    graph = program.graph
    original, stored = weight_bytes(program)
    return {
        "name": program.name,
        "generator": f"weightless-mcu {__version__}",
        "target": target.name,
        "run_function": f"wl_{program.name}_run",
        "inputs": [{"name": t, "shape": list(program.shapes[t]), **_io_dtype(graph, t)} for t in graph.inputs],
        "constant_inputs": graph.constant_inputs,
        "outputs": [{"name": t, "shape": list(program.shapes[t]), **_io_dtype(graph, t), **_output_lsb(program, t)}
                    for t in graph.outputs],
        "arena_bytes": program.arena.size,
        "arena_lower_bound_bytes": program.arena.lower_bound,
        "weights_float32_bytes": original,
        "weights_stored_bytes": stored,
        "compression_ratio": round(original / stored, 4) if stored else 1.0,
        "steps": [
            {
                "index": s.index,
                "layer": s.layer,
                "kernel": s.kernel,
                "symbol_prefix": s.sym,
                "consts": {c.role: {"symbol": s.consts[c.role].symbol, "elements": int(c.data.size), "bytes": int(c.data.nbytes)}
                           for c in program.steps[s.index].consts},
                "encoding": None if s.weights is None else {"symbol": s.weights["symbol"], "bytes": sum(
                    e.nbytes() for e in program.steps[s.index].encodings)},
                "macs": step_macs(program.steps[s.index]),
            }
            for s in rsteps
        ],
    }
