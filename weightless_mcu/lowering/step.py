"""What lowering produces: kernel calls over named tensors."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ConstArray:
    """A constant array the generated code places in flash."""

    # "weight", "bias", a kernel-specific name such as "scale", or "input<k>":
    # a constant operand that stands in for the step's k-th input tensor.
    role: str
    data: np.ndarray  # float32 (int8 / int32 for int8 kernels), in the layout the kernel walks


@dataclass(frozen=True)
class Step:
    """One kernel call. `params` is a frozen spec whose fields map one to one
    onto the C params struct; templates render it and never compute."""

    kernel: str  # template and C kernel name stem, e.g. "fc" -> wl_fc_f32
    layer: str  # the ONNX node it came from
    inputs: tuple[str, ...]  # activation tensors read
    output: str
    params: object
    consts: tuple[ConstArray, ...] = ()
    view: bool = False  # the output is the first input, reinterpreted (no code)
    inplace: tuple[int, ...] = ()  # inputs whose buffer the output may take over (each read at the output's index)
    encoding: object | None = None  # compressed weights (compress/encodings.py) the kernel decodes
    # further compressed tensors the kernel reads (a recurrent layer's R): role -> encoding
    extra_encodings: tuple[tuple[str, object], ...] = ()
    scratch: int = 0  # bytes of arena the kernel needs during the call
    bias: str = ""  # a bias decoded into the arena by the step before (bias_operand); also among inputs
    # A kernel that writes more than one tensor (a recurrent layer's Y, Y_h, Y_c): all of them, in
    # the kernel's order, "" for one it need not write; `output` is the first that is written.
    extra_outputs: tuple[str, ...] = ()

    @property
    def encodings(self) -> list:
        """Every compressed tensor the kernel reads: encoding, then extra_encodings."""
        return ([self.encoding] if self.encoding is not None else []) + [e for _, e in self.extra_encodings]

    @property
    def written(self) -> tuple[str, ...]:
        """Every tensor the step writes."""
        return tuple(t for t in (self.output, *self.extra_outputs) if t)


@dataclass(frozen=True)
class BiasDecodeParams:
    n: int  # output channels
    bits: int  # bits per index (1, 2, 4 or 8)


def bias_operand(graph, layer: str, name: str, bias: np.ndarray | None, into: str = ""):
    """A layer's float32 bias: (steps before the layer, its consts, the arena tensor holding it,
    new tensors). A bias stored as shared values (graph.bias_encodings) whose decode is exactly
    the bias the kernel adds is decoded into the arena by a step of its own just before the
    layer, for the layer's call only, where that stores fewer bytes; any other bias is a float32
    constant. into: a tensor the kernel may read its bias from while writing it (its own output,
    for a kernel that reads bias[n] before it writes y[n] and writes no other y[n] before): the
    bias is decoded there, and takes no arena of its own."""
    enc = graph.bias_encodings.get(name) if name else None
    if bias is None:
        return [], (), "", {}
    bias = np.ascontiguousarray(bias, np.float32).reshape(-1)
    if enc is None or enc.nbytes() >= 4 * bias.size or not np.array_equal(enc.decode(), bias):
        return [], (ConstArray("bias", bias),), "", {}
    tensor = into or f"{layer}::bias"
    step = Step("bias_decode", layer, (), tensor, BiasDecodeParams(enc.positions, enc.bits),
                (ConstArray("bias_index", enc.words()), ConstArray("bias_codebook", np.asarray(enc.codebook, np.float32))))
    return [step], (), tensor, {} if into else {tensor: (enc.positions,)}


@dataclass
class Lowered:
    steps: list[Step]
    # Intermediate tensors the lowering introduced: name -> shape.
    new_tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)


def c_float(x: float) -> str:
    """A C float literal that is exact (hex) and handles infinities and NaN (<math.h>)."""
    x = float(np.float32(x))
    if x != x:
        return "NAN"
    if x == float("inf"):
        return "INFINITY"
    if x == float("-inf"):
        return "-INFINITY"
    if x == 0:
        return "-0.0f" if np.signbit(x) else "0.0f"
    mantissa, exponent = x.hex().split("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}f"
