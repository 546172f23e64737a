"""Reshape, Flatten, Squeeze, Unsqueeze (views: no code), Transpose (a view
when it does not move data, a kernel otherwise), Slice, Pad, Concat and Gather."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from . import register
from .step import ConstArray, Lowered, Step

MAX_DIMS = 6  # WL_MAX_DIMS in firmware/include/wl_kernels.h


@dataclass(frozen=True)
class CopyParams:
    size: int


@dataclass(frozen=True)
class TransposeParams:
    ndim: int
    offset: int  # the first input element read
    out_shape: tuple[int, ...]
    in_strides: tuple[int, ...]  # element stride in the input of each output axis


def _squeeze_units(shape, perm):
    """The permutation restricted to non-unit axes: a transpose is a view iff it keeps their order."""
    return [p for p in perm if shape[p] != 1]


def _row_major_strides(shape) -> np.ndarray:
    return np.cumprod((list(shape[1:]) + [1])[::-1])[::-1].astype(np.int64)


def broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """Element strides of a tensor read as if broadcast to out (numpy rules, right-aligned):
    0 on the axes it repeats."""
    shape = (1,) * (len(out) - len(shape)) + tuple(shape)
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc if d != 1 else 0)
        acc *= d
    return strides[::-1]


def compact_axes(where: str, out, *strides, axes: str = "non-unit dimensions"):
    """The kernels' fixed-rank view of an index space: the non-unit axes of out (at least
    one; a scalar is one axis of 1) and each operand's strides on them, padded to MAX_DIMS
    (shape with 1, strides with 0). Returns (ndim, shape, [strides, ...])."""
    if not len(out):
        out, strides = (1,), tuple((0,) for _ in strides)
    keep = [i for i, d in enumerate(out) if d != 1] or [0]
    if len(keep) > MAX_DIMS:
        raise UnsupportedOpError(f"{where}: more than {MAX_DIMS} {axes} are not supported")
    pad = MAX_DIMS - len(keep)
    return (len(keep), tuple(int(out[i]) for i in keep) + (1,) * pad,
            [tuple(int(st[i]) for i in keep) + (0,) * pad for st in strides])


def strided_copy_step(layer: str, x: str, y: str, out_shape, in_strides, offset: int = 0) -> Step:
    """y[i] = x[offset + i . in_strides], the one kernel behind Transpose and Slice."""
    ndim, shape, (strides,) = compact_axes(f"node '{layer}'", out_shape, in_strides)
    return Step("transpose", layer, (x,), y, TransposeParams(ndim, int(offset), shape, strides))


def transpose_step(layer: str, x: str, y: str, in_shape: tuple[int, ...], perm: tuple[int, ...]) -> Step:
    moved = _squeeze_units(in_shape, perm)
    if moved == sorted(moved):
        return Step("view", layer, (x,), y, None, view=True)
    strides = _row_major_strides(in_shape)
    return strided_copy_step(layer, x, y, [in_shape[p] for p in perm], [strides[p] for p in perm])


@register("Reshape", "Flatten", "Squeeze", "Unsqueeze")
def lower_view(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    if graph.tensors[x].size != graph.tensors[y].size:
        raise UnsupportedOpError(f"{node.describe()}: input and output sizes differ")
    return Lowered([Step("view", node.name, (x,), y, None, view=True)])


@register("Transpose")
def lower_transpose(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    shape = graph.tensors[x].shape
    perm = tuple(node.attrs.get("perm", list(range(len(shape)))[::-1]))
    return Lowered([transpose_step(node.name, x, y, shape, perm)])


@register("Identity")
def lower_identity(node: Node, graph: Graph) -> Lowered:
    # Only left by the passes where an output must not alias an input or constant.
    return Lowered([Step("copy", node.name, (node.inputs[0],), node.outputs[0], CopyParams(graph.tensors[node.outputs[0]].size))])


@dataclass(frozen=True)
class PadParams:
    mode: int
    ndim: int
    value: float
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    begin: tuple[int, ...]


PAD_MODES = {"constant": 0, "edge": 1, "reflect": 2, "wrap": 3}


@register("Pad")
def lower_pad(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    shape = graph.tensors[x].shape
    ndim = len(shape)
    mode = node.attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in PAD_MODES:
        raise UnsupportedOpError(f"{node.describe()}: mode '{mode}' is not supported (constant, edge, reflect, wrap are)")

    def operand(k):
        name = node.inputs[k] if len(node.inputs) > k else ""
        if not name:
            return None
        v = graph.const(name)
        if v is None:
            raise UnsupportedOpError(f"{node.describe()}: input {k} must be a constant")
        return np.asarray(v)

    pads = operand(1)
    pads = np.asarray(node.attrs.get("pads", []), np.int64) if pads is None else pads.astype(np.int64).reshape(-1)
    value = operand(2)
    value = float(node.attrs.get("value", 0.0)) if value is None else float(value.reshape(-1)[0]) if value.size else 0.0
    axes = operand(3)
    axes = list(range(ndim)) if axes is None else [int(a) % ndim for a in axes.reshape(-1)]
    if pads.size != 2 * len(axes):
        raise UnsupportedOpError(f"{node.describe()}: {pads.size} pads for {len(axes)} axes")
    begin, end = [0] * ndim, [0] * ndim
    for i, a in enumerate(axes):
        begin[a], end[a] = int(pads[i]), int(pads[i + len(axes)])
    if min(begin + end) < 0:
        raise UnsupportedOpError(f"{node.describe()}: negative pads (cropping) are not supported")
    if mode == "reflect" and any(b >= n or e >= n for b, e, n in zip(begin, end, shape)):
        raise UnsupportedOpError(f"{node.describe()}: reflect pads must be smaller than the padded axis")
    if mode in ("edge", "wrap") and any((b or e) and n == 0 for b, e, n in zip(begin, end, shape)):
        raise UnsupportedOpError(f"{node.describe()}: {mode} padding of an empty axis")
    out = tuple(n + b + e for n, b, e in zip(shape, begin, end))
    if out != tuple(graph.tensors[y].shape):
        raise UnsupportedOpError(f"{node.describe()}: output shape {graph.tensors[y].shape} is not the padded {out}")
    if not any(begin + end):
        return Lowered([Step("view", node.name, (x,), y, None, view=True)])
    # Drop axes of size 1 that are not padded, so the rank fits MAX_DIMS.
    keep = [d for d in range(ndim) if shape[d] != 1 or begin[d] or end[d]] or [0]
    if len(keep) > MAX_DIMS:
        raise UnsupportedOpError(f"{node.describe()}: more than {MAX_DIMS} non-unit dimensions are not supported")
    pad = MAX_DIMS - len(keep)
    params = PadParams(PAD_MODES[mode], len(keep), value, tuple(shape[d] for d in keep) + (1,) * pad,
                       tuple(out[d] for d in keep) + (1,) * pad, tuple(begin[d] for d in keep) + (0,) * pad)
    return Lowered([Step("pad", node.name, (x,), y, params)])


CONCAT_MAX_INPUTS = 16  # WL_CONCAT_MAX_INPUTS in firmware/include/wl_kernels.h


@dataclass(frozen=True)
class ConcatParams:
    inputs: int
    outer: int
    inner: tuple[int, ...]


@register("Concat")
def lower_concat(node: Node, graph: Graph) -> Lowered:
    names = [i for i in node.inputs if i and graph.tensors[i].size > 0]  # empty inputs add nothing
    y = node.outputs[0]
    out = graph.tensors[y].shape
    axis = int(node.attrs.get("axis", 0)) % max(1, len(out))
    if not names:
        raise UnsupportedOpError(f"{node.describe()}: every input is empty")
    if len(names) > CONCAT_MAX_INPUTS:
        raise UnsupportedOpError(f"{node.describe()}: more than {CONCAT_MAX_INPUTS} inputs are not supported")
    if all(graph.const(n) is not None for n in names):
        raise UnsupportedOpError(f"{node.describe()}: all inputs are constant")
    if len(names) == 1:
        return Lowered([Step("view", node.name, (names[0],), y, None, view=True)])
    outer = int(np.prod(out[:axis], dtype=np.int64))
    inner = tuple(int(np.prod(graph.tensors[n].shape[axis:], dtype=np.int64)) for n in names)
    consts = tuple(ConstArray(f"input{k}", np.ascontiguousarray(graph.const(n), np.float32).reshape(-1))
                   for k, n in enumerate(names) if graph.const(n) is not None)
    params = ConcatParams(len(names), outer, inner + (0,) * (CONCAT_MAX_INPUTS - len(names)))
    return Lowered([Step("concat", node.name, tuple(names), y, params, consts)])


@dataclass(frozen=True)
class GatherParams:
    outer: int
    axis_size: int
    inner: int
    count: int


@register("Gather")
def lower_gather(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    shape = graph.tensors[x].shape
    if graph.const(x) is not None:
        raise UnsupportedOpError(f"{node.describe()}: gathering from a constant is folded; this one was not")
    idx = graph.const(node.inputs[1])
    if idx is None:
        raise UnsupportedOpError(f"{node.describe()}: only constant indices are supported")
    if not shape:
        raise UnsupportedOpError(f"{node.describe()}: the data must have at least one axis")
    axis = int(node.attrs.get("axis", 0)) % len(shape)
    n = shape[axis]
    flat = np.asarray(idx, np.int64).reshape(-1)
    if flat.size and (flat.min() < -n or flat.max() >= n):
        raise UnsupportedOpError(f"{node.describe()}: an index is outside [-{n}, {n})")
    flat = np.where(flat < 0, flat + n, flat)
    params = GatherParams(int(np.prod(shape[:axis], dtype=np.int64)), n, int(np.prod(shape[axis + 1:], dtype=np.int64)),
                          int(flat.size))
    if flat.size == 0 or graph.tensors[y].size == 0:
        raise UnsupportedOpError(f"{node.describe()}: an empty result is not supported")
    return Lowered([Step("gather", node.name, (x,), y, params, (ConstArray("indices", flat.astype(np.float32)),))])


@register("GatherND")
def lower_gather_nd(node: Node, graph: Graph) -> Lowered:
    """GatherND with constant indices (what torch's dynamo exporter writes for a 1-D linear
    interpolate): each index tuple names one slice of the data's leading axes, so it is a
    Gather of rows of the data seen as [those axes flattened, the rest]."""
    x, y = node.inputs[0], node.outputs[0]
    shape = graph.tensors[x].shape
    idx = graph.const(node.inputs[1])
    if idx is None:
        raise UnsupportedOpError(f"{node.describe()}: only constant indices are supported")
    if int(node.attrs.get("batch_dims", 0)) != 0:
        raise UnsupportedOpError(f"{node.describe()}: only batch_dims 0 is supported")
    idx = np.asarray(idx, np.int64)
    k = idx.shape[-1] if idx.ndim else 0
    if idx.ndim < 1 or not 1 <= k <= len(shape):
        raise UnsupportedOpError(f"{node.describe()}: indices of shape {list(idx.shape)} do not index data of shape {list(shape)}")
    lead = np.array(shape[:k], np.int64)
    tuples = idx.reshape(-1, k)
    if tuples.size and ((tuples < -lead).any() or (tuples >= lead).any()):
        raise UnsupportedOpError(f"{node.describe()}: an index is outside the data's shape {list(shape)}")
    tuples = np.where(tuples < 0, tuples + lead, tuples)
    rows = np.ravel_multi_index(tuples.T, shape[:k]) if tuples.size else np.zeros(0, np.int64)
    if rows.size == 0 or graph.tensors[y].size == 0:
        raise UnsupportedOpError(f"{node.describe()}: an empty result is not supported")
    params = GatherParams(1, int(np.prod(shape[:k], dtype=np.int64)), int(np.prod(shape[k:], dtype=np.int64)),
                          int(rows.size))
    return Lowered([Step("gather", node.name, (x,), y, params, (ConstArray("indices", rows.astype(np.float32)),))])


@register("Slice")
def lower_slice(node: Node, graph: Graph) -> Lowered:
    """Constant starts/ends/axes/steps (inputs since opset 10, attributes before)."""
    x, y = node.inputs[0], node.outputs[0]
    shape = graph.tensors[x].shape

    def operand(k, attr):
        name = node.inputs[k] if len(node.inputs) > k else ""
        if not name:
            return None if attr not in node.attrs else np.asarray(node.attrs[attr], np.int64).reshape(-1)
        v = graph.const(name)
        if v is None:
            raise UnsupportedOpError(f"{node.describe()}: {attr} must be constant")
        return np.asarray(v, np.int64).reshape(-1)

    starts, ends = operand(1, "starts"), operand(2, "ends")
    if starts is None or ends is None or starts.size != ends.size:
        raise UnsupportedOpError(f"{node.describe()}: starts and ends must be given, one per axis")
    axes = operand(3, "axes")
    axes = np.arange(starts.size) if axes is None else axes
    steps = operand(4, "steps")
    steps = np.ones(starts.size, np.int64) if steps is None else steps
    if axes.size != starts.size or steps.size != starts.size:
        raise UnsupportedOpError(f"{node.describe()}: axes and steps must match starts")
    if np.any(steps == 0):
        raise UnsupportedOpError(f"{node.describe()}: a step is 0")
    ndim = len(shape)
    if np.any(axes < -ndim) or np.any(axes >= ndim) or len(set((axes % max(ndim, 1)).tolist())) != axes.size:
        raise UnsupportedOpError(f"{node.describe()}: axes {axes.tolist()} are out of range or repeated")
    strides = _row_major_strides(shape)
    out_shape, in_strides, offset = list(shape), [int(s) for s in strides], 0
    for a, start, end, step in zip(axes % ndim, starts, ends, steps):
        # Python's slice has ONNX's clamping rules, for both signs of step.
        begin, stop, step = slice(int(start), int(end), int(step)).indices(shape[a])
        out_shape[a] = len(range(begin, stop, step))
        offset += begin * int(strides[a]) if out_shape[a] else 0
        in_strides[a] = int(strides[a]) * step
    if tuple(out_shape) != tuple(graph.tensors[y].shape):
        raise UnsupportedOpError(f"{node.describe()}: output shape {graph.tensors[y].shape} is not the sliced {tuple(out_shape)}")
    if 0 in out_shape:
        raise UnsupportedOpError(f"{node.describe()}: an empty result is not supported")
    if tuple(out_shape) == tuple(shape) and all(s == int(t) for s, t in zip(in_strides, strides)):
        return Lowered([Step("view", node.name, (x,), y, None, view=True)])
    return Lowered([strided_copy_step(node.name, x, y, out_shape, in_strides, offset)])


@register("Split")
def lower_split(node: Node, graph: Graph) -> Lowered:
    """Each output is a slice along the axis; the sizes are the outputs' inferred shapes
    (whether they came from the split input, the attribute or num_outputs)."""
    x = node.inputs[0]
    shape = graph.tensors[x].shape
    if not shape:
        raise UnsupportedOpError(f"{node.describe()}: the input must have at least one axis")
    axis = int(node.attrs.get("axis", 0)) % len(shape)
    outs = [o for o in node.outputs if o]
    if len(outs) != len(node.outputs):
        raise UnsupportedOpError(f"{node.describe()}: unnamed outputs are not supported")
    sizes = [graph.tensors[o].shape[axis] if len(graph.tensors[o].shape) == len(shape) else -1 for o in outs]
    if min(sizes) < 1 or sum(sizes) != shape[axis]:
        raise UnsupportedOpError(f"{node.describe()}: output sizes {sizes} along axis {axis} do not split {shape[axis]}")
    strides = _row_major_strides(shape)
    steps, start = [], 0
    for o, size in zip(outs, sizes):
        out_shape = list(shape)
        out_shape[axis] = size
        steps.append(strided_copy_step(node.name, x, o, out_shape, strides, start * int(strides[axis])))
        start += size
    return Lowered(steps)


@register("Expand", "Tile")
def lower_expand(node: Node, graph: Graph) -> Lowered:
    """Broadcast copies: a stride of 0 repeats an input axis. Tile interleaves a
    repeat axis in front of each input axis, (r0, d0, r1, d1, ...)."""
    x, y = node.inputs[0], node.outputs[0]
    shape = tuple(graph.tensors[x].shape)
    if len(node.inputs) < 2 or graph.const(node.inputs[1]) is None:
        raise UnsupportedOpError(f"{node.describe()}: the {'shape' if node.op == 'Expand' else 'repeats'} input must be constant")
    operand = [int(v) for v in np.asarray(graph.const(node.inputs[1]), np.int64).reshape(-1)]
    if node.op == "Expand":
        try:
            out = tuple(np.broadcast_shapes(shape, tuple(operand)))
        except ValueError:
            raise UnsupportedOpError(f"{node.describe()}: shape {operand} does not broadcast with {shape}") from None
        copy_shape = list(out)
        in_strides = broadcast_strides(shape, out)
    else:
        if len(operand) != len(shape) or min(operand, default=1) < 1:
            raise UnsupportedOpError(f"{node.describe()}: repeats {operand} do not match the input rank {len(shape)}")
        out = tuple(d * r for d, r in zip(shape, operand))
        copy_shape = [v for r, d in zip(operand, shape) for v in (r, d)]
        in_strides = [v for s in _row_major_strides(shape) for v in (0, int(s))]
    if out != tuple(graph.tensors[y].shape):
        raise UnsupportedOpError(f"{node.describe()}: output shape {graph.tensors[y].shape} is not the expected {out}")
    if out == shape:
        return Lowered([Step("view", node.name, (x,), y, None, view=True)])
    return Lowered([strided_copy_step(node.name, x, y, copy_shape, in_strides)])
