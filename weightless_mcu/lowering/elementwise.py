"""Binary ops with broadcasting (Add, Sub, Mul, Div, PRelu, Pow, Min, Max), unary ops
(activations such as Relu, Clip, Sigmoid, Tanh; math such as Sqrt, Exp, Log, Erf; Pow by a
constant exponent) and a stand-alone BatchNormalization."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..op_semantics import activation, gelu_approximate
from . import register
from .shape_ops import broadcast_strides, compact_axes
from .step import ConstArray, Lowered, Step

# The op codes of wl_kernels.h (WL_BINARY_*, WL_UNARY_*).
BINARY_OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3, "PRelu": 4, "Pow": 5, "Min": 6, "Max": 7}
UNARY_OPS = {"Sigmoid": 1, "Tanh": 2, "LeakyRelu": 3, "HardSigmoid": 4, "HardSwish": 5, "Abs": 6, "Neg": 7,
             "Sqrt": 8, "Exp": 9, "Log": 10, "Reciprocal": 11, "Erf": 12}
UNARY_CLAMP = 0  # Relu, Clip, and the identity (bounds -inf, inf)
UNARY_SQUARE = 13  # Pow by the constant 2
UNARY_POW = 14  # Pow by another constant scalar exponent (alpha)
GELU = {"none": 15, "tanh": 16}  # Gelu by its approximate attribute
# Pow by a constant scalar exponent in its cheap form (the issue of every audio front end: |X|^2, x^0.5).
POW_FORMS = {1.0: UNARY_CLAMP, 2.0: UNARY_SQUARE, 0.5: UNARY_OPS["Sqrt"], -1.0: UNARY_OPS["Reciprocal"]}


@dataclass(frozen=True)
class BinaryParams:
    op: int
    size: int  # elements of the output
    same_shape: int  # 1: both inputs have the output's shape (a flat loop)
    ndim: int
    out_shape: tuple[int, ...]
    a_strides: tuple[int, ...]
    b_strides: tuple[int, ...]
    act_min: float
    act_max: float


@dataclass(frozen=True)
class UnaryParams:
    op: int
    size: int
    alpha: float
    beta: float
    act_min: float
    act_max: float


@dataclass(frozen=True)
class ChannelAffineParams:
    channels: int
    inner: int
    act_min: float
    act_max: float


def binary_step(node: Node, op: str, a: str, b: str, y: str, graph: Graph, shapes: dict | None = None) -> Step:
    shapes = shapes or {}
    sa = shapes.get(a) or graph.tensors[a].shape
    sb = shapes.get(b) or graph.tensors[b].shape
    out = tuple(np.broadcast_shapes(sa, sb))
    consts = []
    for k, name in enumerate((a, b)):
        data = graph.const(name)
        if data is not None:  # rendered in place of the tensor: see ConstArray.role
            consts.append(ConstArray(f"input{k}", np.ascontiguousarray(data, np.float32).reshape(-1)))
    if len(consts) == 2:
        raise UnsupportedOpError(f"{node.describe()}: both operands are constant")
    ndim, out_k, (sa_k, sb_k) = compact_axes(node.describe(), out, broadcast_strides(sa, out), broadcast_strides(sb, out))
    size = int(np.prod(out_k))
    same = int(tuple(sa) == out and tuple(sb) == out)
    lo, hi = activation(node)
    params = BinaryParams(BINARY_OPS[op], size, same, ndim, out_k, sa_k, sb_k, lo, hi)
    # Either activation with the output's shape can hold the result (a residual Add
    # accumulates into whichever operand dies here): element i reads only its element i.
    inplace = tuple(k for k, (name, shape) in enumerate(((a, sa), (b, sb))) if graph.const(name) is None and tuple(shape) == out)
    return Step("binary", node.name, (a, b), y, params, tuple(consts), inplace=inplace)


@register("Add", "Sub", "Mul", "Div", "PRelu")
def lower_binary(node: Node, graph: Graph) -> Lowered:
    return Lowered([binary_step(node, node.op, node.inputs[0], node.inputs[1], node.outputs[0], graph)])


@register("Pow")
def lower_pow(node: Node, graph: Graph) -> Lowered:
    """x ^ e: by a constant scalar e, one unary step (x^2 a multiply, x^0.5 a square root,
    x^1 a copy, x^-1 a division); by any other e, broadcasting powf."""
    x, e, y = node.inputs[0], node.inputs[1], node.outputs[0]
    exponent = graph.const(e)
    if exponent is None or exponent.size != 1:
        return Lowered([binary_step(node, "Pow", x, e, y, graph)])
    value = float(np.float32(exponent.reshape(-1)[0]))
    op = POW_FORMS.get(value, UNARY_POW)
    lo, hi = activation(node)
    params = UnaryParams(op, graph.tensors[y].size, value if op == UNARY_POW else 0.0, 0.0, lo, hi)
    return Lowered([Step("unary", node.name, (x,), y, params, inplace=(0,))])


@register("Min", "Max")
def lower_min_max(node: Node, graph: Graph) -> Lowered:
    """Min or Max of one or more tensors (broadcasting): a chain of binary steps, the tensors
    computed at run time first (the first step needs one), each partial result a tensor of its own."""
    operands = [i for i in node.inputs if i]
    operands.sort(key=lambda name: graph.const(name) is not None)  # stable: run-time tensors first
    y = node.outputs[0]
    if len(operands) == 1:
        lo, hi = activation(node)
        params = UnaryParams(UNARY_CLAMP, graph.tensors[y].size, 0.0, 0.0, lo, hi)
        return Lowered([Step("unary", node.name, (operands[0],), y, params, inplace=(0,))])
    steps, shapes = [], {}
    acc = operands[0]
    for k, other in enumerate(operands[1:], start=1):
        last = k == len(operands) - 1
        out = y if last else f"{node.name}::{node.op.lower()}{k}"
        step = binary_step(node, node.op, acc, other, out, graph, shapes)
        if not last:
            shape = tuple(np.broadcast_shapes(shapes.get(acc) or graph.tensors[acc].shape, graph.tensors[other].shape))
            shapes[out] = shape
            # the fused activation applies to the result only
            step = replace(step, params=replace(step.params, act_min=float("-inf"), act_max=float("inf")))
        steps.append(step)
        acc = out
    return Lowered(steps, shapes)


@register("Relu", "Clip", "Gelu", *UNARY_OPS)
def lower_unary(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    lo, hi = activation(node)
    alpha, beta = 0.0, 0.0
    if node.op in ("Relu", "Clip"):
        if node.op == "Relu":
            b = (0.0, float("inf"))
        else:
            vals = []
            for k, default in ((1, float("-inf")), (2, float("inf"))):
                name = node.inputs[k] if len(node.inputs) > k else ""
                v = graph.const(name) if name else np.float32(default)
                if v is None:
                    raise UnsupportedOpError(f"{node.describe()}: only constant Clip bounds are supported")
                vals.append(float(v))
            b = tuple(vals)
        lo, hi = max(lo, b[0]), min(hi, b[1])
        op = UNARY_CLAMP
    elif node.op == "Gelu":
        approximate = gelu_approximate(node)
        if approximate not in GELU:
            raise UnsupportedOpError(f"{node.describe()}: approximate='{approximate}' is not one of none, tanh")
        op = GELU[approximate]
    else:
        op = UNARY_OPS[node.op]
        defaults = {"LeakyRelu": (0.01, 0.0), "HardSigmoid": (0.2, 0.5)}.get(node.op, (0.0, 0.0))
        alpha = float(node.attrs.get("alpha", defaults[0]))
        beta = float(node.attrs.get("beta", defaults[1]))
    params = UnaryParams(op, graph.tensors[y].size, alpha, beta, lo, hi)
    return Lowered([Step("unary", node.name, (x,), y, params, inplace=(0,))])


@register("BatchNormalization")
def lower_batchnorm(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    if node.attrs.get("training_mode", 0):
        raise UnsupportedOpError(f"{node.describe()}: training-mode BatchNormalization is not supported")
    vals = [graph.const(i) for i in node.inputs[1:5]]
    if any(v is None for v in vals):
        raise UnsupportedOpError(f"{node.describe()}: only constant BatchNormalization parameters are supported")
    scale, bias, mean, var = (v.astype(np.float64) for v in vals)
    s = scale / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
    shape = graph.tensors[x].shape
    lo, hi = activation(node)
    # [N, C, S] walks like N*C channels: the per-channel constants repeat per batch item.
    batch = shape[0] if len(shape) > 1 else 1
    params = ChannelAffineParams(batch * shape[1], int(np.prod(shape[2:])), lo, hi)
    consts = (ConstArray("scale", np.tile(s, batch).astype(np.float32)),
              ConstArray("shift", np.tile(bias - mean * s, batch).astype(np.float32)))
    return Lowered([Step("channel_affine", node.name, (x,), y, params, consts, inplace=(0,))])
