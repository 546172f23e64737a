"""Gemm and MatMul: fully connected layers (constant weights) and products of
two activations."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..op_semantics import activation
from . import register, register_weights
from .layout import WeightLayout
from .step import ConstArray, Lowered, Step, bias_operand
from .elementwise import binary_step
from .shape_ops import broadcast_strides, compact_axes, transpose_step


@dataclass(frozen=True)
class FcParams:
    rows: int  # rows of the input processed one after another
    in_features: int
    out_features: int
    act_min: float
    act_max: float


@dataclass(frozen=True)
class MatmulParams:
    m: int
    k: int
    n: int
    batch_ndim: int
    batch_shape: tuple[int, ...]
    a_strides: tuple[int, ...]  # element strides of A per batch axis, 0 where broadcast
    b_strides: tuple[int, ...]
    act_min: float
    act_max: float


def fc_step(node: Node, x: str, y: str, w_rows: np.ndarray, bias: np.ndarray | None, rows: int,
            encoding=None) -> Step:
    n_out, k = w_rows.shape
    lo, hi = activation(node)
    params = FcParams(rows, k, n_out, lo, hi)
    bias_c = () if bias is None else (ConstArray("bias", np.ascontiguousarray(bias, np.float32)),)
    if encoding is not None:
        return Step("fc_encoded", node.name, (x,), y, params, bias_c, encoding=encoding)
    weights = WeightLayout(w_rows.shape, 1, False, False).walk(w_rows)
    return Step("fc", node.name, (x,), y, params, (ConstArray("weight", weights), *bias_c))


def with_bias(graph: Graph, step: Step, name: str) -> Lowered:
    """The step, its float32 bias decoded first where the bias is stored as shared values
    (step.bias_operand): for one row, into the layer's own output (the fc kernels read bias[n]
    just before they write y[n]), so that it takes no arena; for several, into the arena."""
    bias = next((c.data for c in step.consts if c.role == "bias"), None)
    pre, consts, tensor, new = bias_operand(graph, step.layer, name, bias, step.output if step.params.rows == 1 else "")
    if not pre:
        return Lowered([step])
    rest = tuple(c for c in step.consts if c.role != "bias")
    return Lowered([*pre, replace(step, inputs=(*step.inputs, tensor), consts=rest + consts, bias=tensor)], new)


@register_weights("Gemm", "MatMul")
def fc_weights(node: Node, graph: Graph):
    """Only the canonical forms the passes leave (Gemm: transB=1, alpha=1) are
    compressed: then the walked rows are exactly the tensor (or its transpose)."""
    w = graph.const(node.inputs[1])
    if w is None or w.ndim != 2 or graph.tensors[node.inputs[0]].is_const:
        return None
    if node.op == "Gemm":
        if node.attrs.get("transA", 0) or not node.attrs.get("transB", 0) or node.attrs.get("alpha", 1.0) != 1.0:
            return None
        return node.inputs[1], WeightLayout(tuple(w.shape), 1, False, False)
    return node.inputs[1], WeightLayout(tuple(w.shape), 1, True, False)


def _row_bias(c: np.ndarray, n_out: int, m: int) -> np.ndarray | None:
    """A bias that is the same for every row, as a vector of n_out, or None."""
    c = np.asarray(c, np.float32)
    if c.ndim <= 1 and c.size in (1, n_out):
        return np.broadcast_to(c.reshape(-1), (n_out,)).copy()
    if c.ndim == 2 and c.shape[1] in (1, n_out) and (c.shape[0] == 1 or np.all(c == c[:1])):
        return np.broadcast_to(c[0], (n_out,)).copy()
    return None


@register("Gemm")
def lower_gemm(node: Node, graph: Graph) -> Lowered:
    a, b = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if len(node.inputs) > 2 else ""
    alpha, beta = float(node.attrs.get("alpha", 1.0)), float(node.attrs.get("beta", 1.0))
    w = graph.const(b)
    if graph.tensors[a].is_const or w is None:
        raise UnsupportedOpError(f"{node.describe()}: only Gemm with an activation as A and constant B is supported")
    lowered = Lowered([])
    if node.attrs.get("transA", 0):
        m, k = graph.tensors[a].shape[::-1]
        at = node.outputs[0] + "_wl_aT"
        lowered.new_tensors[at] = (m, k)
        lowered.steps.append(transpose_step(node.name, a, at, graph.tensors[a].shape, (1, 0)))
        a = at
    m, k = lowered.new_tensors.get(a) or graph.tensors[a].shape
    w_rows = (w if node.attrs.get("transB", 0) else w.T).astype(np.float64) * alpha
    n_out = w_rows.shape[0]
    bias = None
    add_c = False
    if c:
        cdata = graph.const(c)
        bias = _row_bias(cdata * beta, n_out, m) if cdata is not None else None
        add_c = bias is None
    y = node.outputs[0]
    if add_c:
        # C varies by row or is computed: a separate broadcast add after the product.
        tmp = y + "_wl_ab"
        lowered.new_tensors[tmp] = (m, n_out)
        plain = Node(node.op, node.name, node.inputs, [tmp], {})
        lowered.steps.append(fc_step(plain, a, tmp, w_rows.astype(np.float32), None, m, graph.encodings.get(node.inputs[1])))
        if beta != 1.0:
            raise UnsupportedOpError(f"{node.describe()}: beta != 1 with a non-constant or per-row C is not supported")
        lowered.steps.append(binary_step(node, "Add", tmp, c, y, graph, shapes={tmp: (m, n_out)}))
    else:
        fc = with_bias(graph, fc_step(node, a, y, w_rows.astype(np.float32), bias, m, graph.encodings.get(node.inputs[1])), c)
        lowered.steps.extend(fc.steps)
        lowered.new_tensors.update(fc.new_tensors)
    return lowered


@register("MatMul")
def lower_matmul(node: Node, graph: Graph) -> Lowered:
    a, b = node.inputs
    ta, tb = graph.tensors[a], graph.tensors[b]
    y = node.outputs[0]
    if ta.is_const and tb.is_const:
        raise UnsupportedOpError(f"{node.describe()}: both operands are constant; this one was not folded")
    if not ta.shape or not tb.shape:
        raise UnsupportedOpError(f"{node.describe()}: scalar MatMul operands are not supported")
    # numpy semantics: a 1-D A is a row [1, k], a 1-D B a column [k, 1]; the
    # output just lacks that axis, with the same layout in memory.
    sa = (1, *ta.shape) if len(ta.shape) == 1 else tuple(ta.shape)
    sb = (*tb.shape, 1) if len(tb.shape) == 1 else tuple(tb.shape)
    if tb.is_const and len(sb) == 2 and not ta.is_const:
        rows = int(np.prod(sa[:-1]))
        w = tb.data.reshape(sb)
        return Lowered([fc_step(node, a, y, w.T, None, rows, graph.encodings.get(b))])
    m, k = sa[-2:]
    n = sb[-1]
    try:
        out = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
    except ValueError:
        raise UnsupportedOpError(f"{node.describe()}: batch dimensions {sa[:-2]} and {sb[:-2]} do not broadcast") from None
    # element strides per batch axis: a batch item of A is one m x k matrix, of B one k x n
    a_strides = [m * k * v for v in broadcast_strides(sa[:-2], out)]
    b_strides = [k * n * v for v in broadcast_strides(sb[:-2], out)]
    ndim, batch, (a_strides, b_strides) = compact_axes(node.describe(), out, a_strides, b_strides, axes="batch dimensions")
    lo, hi = activation(node)
    params = MatmulParams(m, k, n, ndim, batch, a_strides, b_strides, lo, hi)
    consts = tuple(ConstArray(f"input{i}", np.ascontiguousarray(t.data, np.float32).reshape(-1))
                   for i, t in enumerate((ta, tb)) if t.is_const)
    return Lowered([Step("matmul", node.name, (a, b), y, params, consts)])
