"""int8 ops of quantized models (quantized.py folds them out of QDQ pairs): quantize
(float -> int8), dequantize (int8 -> float), the int8 fully connected layer and convolution,
and Add and pooling on int8 tensors.

Requantization is a fixed-point multiplier and shift per output channel, made from the
float32 scale onnxruntime computes ((input scale * weight scale) / output scale), so the
product is exact where onnxruntime rounds it to float32 first; both then round half to even.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..quantized import QBINARY, QCONCAT, QCONV, QFC, QLUT, QPOOL, QSIGN, QSOFTMAX, q_params
from .conv import ConvGeometry, conv_params
from .layout import ROW_BLOCK
from .pool import POOL_AVG, PoolParams, pool_params
from .elementwise import BINARY_OPS
from .shape_ops import CONCAT_MAX_INPUTS, ConcatParams, broadcast_strides, compact_axes
from . import register
from .step import ConstArray, Lowered, Step


@dataclass(frozen=True)
class QuantizeParams:
    size: int
    scale: float
    zero_point: int  # int8 domain


@dataclass(frozen=True)
class FcS8Params:
    rows: int
    in_features: int
    out_features: int
    output_offset: int  # the output's zero point
    act_min: int  # output clamp, int8 domain (activation folded in)
    act_max: int


def _quant_of(graph: Graph, tensor: str, node: Node) -> tuple[float, int]:
    q = graph.tensors[tensor].quant
    if q is None:
        raise UnsupportedOpError(f"{node.describe()}: tensor '{tensor}' is not an int8 activation this compiler made")
    return q


@register("QuantizeLinear")
def lower_quantize(node: Node, graph: Graph) -> Lowered:
    scale, zp = _quant_of(graph, node.outputs[0], node)
    size = graph.tensors[node.outputs[0]].size
    return Lowered([Step("quantize", node.name, (node.inputs[0],), node.outputs[0], QuantizeParams(size, scale, zp))])


@dataclass(frozen=True)
class FlipSignParams:
    size: int


@register(QSIGN)
def lower_flip_sign(node: Node, graph: Graph) -> Lowered:
    size = graph.tensors[node.outputs[0]].size
    return Lowered([Step("flip_sign_s8", node.name, (node.inputs[0],), node.outputs[0], FlipSignParams(size))])


@register("DequantizeLinear")
def lower_dequantize(node: Node, graph: Graph) -> Lowered:
    scale, zp = _quant_of(graph, node.inputs[0], node)
    given = q_params(graph, node)
    if given is None or given[:2] != (scale, zp):
        raise UnsupportedOpError(f"{node.describe()}: its scale and zero point are not those its input was quantized "
                                 f"with ({scale:g}, {zp})")
    size = graph.tensors[node.inputs[0]].size
    return Lowered([Step("dequantize", node.name, (node.inputs[0],), node.outputs[0], QuantizeParams(size, scale, zp))])


def multiplier_shift(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (multiplier, shift) with real = multiplier * 2^-shift exactly for a float32
    real: multiplier in [2^30, 2^31), shift the right shift of the 64-bit product (multiplier 0
    for a real below 2^-32, where every int32 accumulator rounds to 0)."""
    real = np.asarray(real, np.float32)
    if np.any(~np.isfinite(real)) or np.any(real <= 0):
        raise UnsupportedOpError(f"requantization scales must be positive and finite, not {real.min()}")
    mant, exp = np.frexp(real.astype(np.float64))  # real = mant * 2^exp, mant in [0.5, 1)
    mult = np.round(mant * (1 << 31)).astype(np.int64)  # exact: a float32 mantissa has 24 bits
    shift = 31 - exp.astype(np.int64)
    if np.any(shift < 1):
        raise UnsupportedOpError(f"a requantization scale of {real.max():g} (input x weight / output) is above 2^30")
    # Below 2^-32 (a shift above 62) every int32 accumulator times real is under 0.5 and rounds to 0.
    big = shift > 62
    mult[big], shift[big] = 0, 62
    return mult.astype(np.int32), shift.astype(np.int32)


def _output_clamp(node: Node) -> tuple[int, int]:
    """The int8 bounds of the node's activation: Q(clip(y, lo, hi)) = clamp(Q(y), Q(lo), Q(hi)),
    rounding being monotonic."""
    lo, hi = node.attrs["act_real"]
    scale, zp = node.attrs["y_quant"]

    def q(v: float) -> int:
        return int(np.clip(np.round(np.float32(v) / np.float32(scale)) + zp, -128, 127))
    return (-128 if lo == float("-inf") else q(lo)), (127 if hi == float("inf") else q(hi))


def _requantization(node: Node) -> tuple[ConstArray, ConstArray]:
    """The per-output-channel multiplier and shift of an int8 layer, from the float32 scale
    onnxruntime computes: (input scale * weight scale) / output scale."""
    real = (np.float32(node.attrs["x_quant"][0]) * node.attrs["w_scale"].astype(np.float32)) \
        / np.float32(node.attrs["y_quant"][0])
    mult, shift = multiplier_shift(real.astype(np.float32))
    return ConstArray("multiplier", mult), ConstArray("shift", shift)


def _folded_bias(node: Node, bias: np.ndarray, rows_w: np.ndarray) -> np.ndarray:
    """The bias with the input's zero point folded in: sum((x - zx) w) = sum(x w) - zx sum(w).
    The kernels sum the products of raw int8 values in int32 and add the int32 bias in 64 bits;
    wl_requantize_s8 needs |sum + bias| < 1.5 * 2^31, so the sum stays below 2^30."""
    folded = bias.astype(np.int64) - node.attrs["x_quant"][1] * rows_w.sum(axis=1)
    if np.any(folded < -(1 << 31)) or np.any(folded >= 1 << 31) or rows_w.shape[1] * 128 * 128 >= 1 << 30:
        raise UnsupportedOpError(f"{node.describe()}: its int32 sums could overflow")
    return folded.astype(np.int32)


@register(QFC)
def lower_qfc(node: Node, graph: Graph) -> Lowered:
    x, w_name, b_name = node.inputs
    rows_w = graph.const(w_name).astype(np.int64)  # (out, in)
    bias = graph.const(b_name).astype(np.int64)
    n_out, k = rows_w.shape
    folded = _folded_bias(node, bias, rows_w)
    params = FcS8Params(graph.tensors[x].shape[0], k, n_out, node.attrs["y_quant"][1], *_output_clamp(node))
    rest = (ConstArray("bias", folded), *_requantization(node))
    enc = graph.encodings.get(w_name)
    if enc is not None:  # a table with an int8 codebook (compress/int8_tables.py), decoded as the kernel goes
        return Lowered([Step("fc_encoded_s8", node.name, (x,), node.outputs[0], params, rest, encoding=enc)])
    consts = (ConstArray("weight", np.ascontiguousarray(rows_w, np.int8)), *rest)
    return Lowered([Step("fc_s8", node.name, (x,), node.outputs[0], params, consts)])


@dataclass(frozen=True)
class ConvS8Params(ConvGeometry):
    input_zero_point: int  # the value a tap outside the input counts as (the real 0)
    output_offset: int
    act_min: int
    act_max: int


@register(QCONV)
def lower_qconv(node: Node, graph: Graph) -> Lowered:
    x, w_name, b_name = node.inputs
    g = conv_params(node, graph)
    w = graph.const(w_name).astype(np.int64)
    rows_w = w.reshape(w.shape[0], -1)  # (out_c, in_c / group * taps), the order the kernels walk
    geometry = [getattr(g, f.name) for f in dataclasses.fields(ConvGeometry)]
    params = ConvS8Params(*geometry, node.attrs["x_quant"][1], node.attrs["y_quant"][1], *_output_clamp(node))
    rest = (ConstArray("bias", _folded_bias(node, graph.const(b_name), rows_w)), *_requantization(node))
    enc = graph.encodings.get(w_name)  # a table with an int8 codebook (compress/int8_tables.py)
    kpad = conv_s8_kpad(g)
    if g.group == g.in_c == g.out_c:
        # scratch (WL_DW_S8_SCRATCH): one channel's padded plane, 4 bytes of slack for the word loads
        # that read a byte past a window, rounded to a word; then one output row's int32 sums
        plane_h = (g.out_h - 1) * g.stride_h + (g.k_h - 1) * g.dil_h + 1
        plane_w = (g.out_w - 1) * g.stride_w + (g.k_w - 1) * g.dil_w + 1
        scratch = ((plane_h * plane_w + 4 + 3) & ~3) + 4 * g.out_w
        if enc is not None:  # WL_DW_ENC_S8_SCRATCH: one channel's decoded taps first
            return Lowered([Step("depthwise_conv2d_encoded_s8", node.name, (x,), node.outputs[0], params, rest,
                                 encoding=enc, scratch=kpad + scratch)])
        weight = ConstArray("weight", np.ascontiguousarray(rows_w, np.int8).reshape(-1))  # as they are
        return Lowered([Step("depthwise_conv2d_s8", node.name, (x,), node.outputs[0], params, (weight, *rest),
                             scratch=scratch)])
    scratch = 5 * kpad  # WL_CONV_S8_SCRATCH: 2 x kpad int16 columns, kpad int8
    if enc is not None:  # WL_CONV_ENC_S8_SCRATCH: a block of channels' weights first (see grow_channel_block)
        return Lowered([Step("conv2d_encoded_s8", node.name, (x,), node.outputs[0],
                             ConvEncS8Params(dataclasses.astuple(params), ROW_BLOCK), rest, encoding=enc,
                             scratch=ROW_BLOCK * kpad + scratch)])
    weight = ConstArray("weight", conv_s8_weights(rows_w, g.group))
    return Lowered([Step("conv2d_s8", node.name, (x,), node.outputs[0], params, (weight, *rest), scratch=scratch)])


def conv_s8_kpad(g: ConvGeometry) -> int:
    """The taps of one output channel rounded up to a multiple of 4 (kpad of wl_conv2d_s8)."""
    return ((g.in_c // g.group) * g.k_h * g.k_w + 3) & ~3


@dataclass(frozen=True)
class ConvEncS8Params:
    conv: tuple  # ConvS8Params' fields, in order
    block: int  # output channels decoded at a time, a multiple of ROW_BLOCK


def grow_channel_block(step: Step, room: int) -> Step:
    """wl_conv2d_encoded_s8 with as many output channels decoded at a time as `room` more bytes
    of scratch allow (the arena's free space at that step: codegen), so that its im2col runs
    once per block of channels rather than once per row block."""
    g = ConvS8Params(*step.params.conv)
    cout_g = g.out_c // g.group
    kpad = conv_s8_kpad(g)
    most = cout_g - cout_g % ROW_BLOCK  # the whole row blocks of a group
    block = step.params.block
    fits = (step.scratch + room - 5 * kpad) // kpad // ROW_BLOCK * ROW_BLOCK
    new = max(block, min(most, fits))
    if new == block:
        return step
    return dataclasses.replace(step, params=ConvEncS8Params(step.params.conv, new), scratch=new * kpad + 5 * kpad)


def conv_s8_weights(rows_w: np.ndarray, group: int) -> np.ndarray:
    """wl_conv2d_s8's layout of the (out_c, taps) weights: each row padded with zeros to kpad (a
    multiple of 4), each group of 4 stored as (w0, w2, w1, w3) so that SXTB16 widens it into the
    pairs (w0, w1) and (w2, w3); the channels of a group taken two by two (an odd last one with a
    zero row), the 4 taps of one then the same 4 of the other."""
    out_c, k = rows_w.shape
    cout_g, kpad = out_c // group, (k + 3) & ~3
    pairs = (cout_g + 1) // 2
    padded = np.zeros((group, 2 * pairs, kpad), np.int8)
    padded[:, :cout_g, :k] = rows_w.reshape(group, cout_g, k)
    quads = padded.reshape(group, pairs, 2, kpad // 4, 4)[..., [0, 2, 1, 3]]
    return np.ascontiguousarray(quads.transpose(0, 1, 3, 2, 4)).reshape(-1)


@dataclass(frozen=True)
class AddS8Params:
    size: int
    a_scale: float
    a_zero_point: int
    b_scale: float
    b_zero_point: int
    y_scale: float
    y_zero_point: int
    act_min: int
    act_max: int


@dataclass(frozen=True)
class BinaryS8Params:
    op: int  # WL_BINARY_ADD, _SUB, _MUL or _DIV
    size: int
    ndim: int
    out_shape: tuple[int, ...]
    a_strides: tuple[int, ...]
    b_strides: tuple[int, ...]
    a_scale: float
    a_zero_point: int
    b_scale: float
    b_zero_point: int
    y_scale: float
    y_zero_point: int
    act_min: int
    act_max: int


@register(QBINARY)
def lower_qbinary(node: Node, graph: Graph) -> Lowered:
    (a_scale, a_zp), (b_scale, b_zp) = node.attrs["in_quant"]
    a, b = node.inputs
    y = node.outputs[0]
    sa, sb, out = graph.tensors[a].shape, graph.tensors[b].shape, graph.tensors[y].shape
    # a constant operand (int8) is rendered in place of its input: see ConstArray.role
    consts = tuple(ConstArray(f"input{k}", np.asarray(graph.const(name), np.int8).reshape(-1))
                   for k, name in enumerate((a, b)) if graph.const(name) is not None)
    if node.attrs["wl_pool_op"] == "Add" and sa == sb == out:  # the common residual Add: a flat loop
        params = AddS8Params(graph.tensors[y].size, a_scale, a_zp, b_scale, b_zp, *node.attrs["y_quant"],
                             *_output_clamp(node))
        return Lowered([Step("add_s8", node.name, (a, b), y, params, consts)])
    ndim, out_k, (sa_k, sb_k) = compact_axes(node.describe(), out, broadcast_strides(sa, out), broadcast_strides(sb, out))
    params = BinaryS8Params(BINARY_OPS[node.attrs["wl_pool_op"]], int(np.prod(out_k)), ndim, tuple(out_k),
                            tuple(sa_k), tuple(sb_k), a_scale, a_zp, b_scale, b_zp, *node.attrs["y_quant"],
                            *_output_clamp(node))
    return Lowered([Step("binary_s8", node.name, (a, b), y, params, consts)])


@dataclass(frozen=True)
class PoolS8Params(PoolParams):
    x_scale: float
    x_zero_point: int
    y_scale: float
    y_zero_point: int
    act_min: int
    act_max: int
    sum_order: int


SUM_ROWS, SUM_COLUMNS, SUM_LANES = 0, 1, 2  # WL_SUM_* in wl_kernels.h


def average_sum_order(node: Node, graph: Graph, g: PoolParams) -> int:
    """The order in which onnxruntime's float kernel adds an average pooling's taps, which the
    int8 kernel follows so that its float32 sum rounds the same (measured against onnxruntime
    1.32 on every branch): GlobalAveragePool, and before opset 19 an AveragePool whose window is
    the whole unpadded input, sum the plane in four interleaved lanes; before opset 19, 2-D
    windows of at most 32 x 32 with a horizontal stride of 1 or 2 sum each window column first
    (MLAS's vector kernel); the rest (opset 19's AveragePool, 1-D, wider strides) row by row."""
    op = node.attrs.get("wl_pool_op", node.op)
    spatial = len(graph.tensors[node.inputs[0]].shape) - 2
    whole = (g.k_h, g.k_w) == (g.in_h, g.in_w) and g.stride_h == g.stride_w == 1 and not any(
        (g.pad_top, g.pad_left, g.pad_bottom, g.pad_right))
    if op == "GlobalAveragePool" or (graph.opset < 19 and whole):
        return SUM_LANES
    if (graph.opset < 19 and spatial == 2 and g.stride_w <= 2 and max(g.k_h, g.k_w) <= 32
            and g.in_w + g.pad_left + g.pad_right <= 2045):
        return SUM_COLUMNS
    return SUM_ROWS


@register(QPOOL)
def lower_qpool(node: Node, graph: Graph) -> Lowered:
    g = pool_params(node, graph)
    ((x_scale, x_zp),) = node.attrs["in_quant"]
    order = average_sum_order(node, graph, g) if g.mode == POOL_AVG else SUM_ROWS
    params = PoolS8Params(*dataclasses.astuple(g), x_scale, x_zp, *node.attrs["y_quant"], *_output_clamp(node), order)
    return Lowered([Step("pool2d_s8", node.name, (node.inputs[0],), node.outputs[0], params)])


@dataclass(frozen=True)
class LutParams:
    size: int


@register(QLUT)
def lower_qlut(node: Node, graph: Graph) -> Lowered:
    """y = table[x + 128]: an elementwise op on an int8 tensor, as onnxruntime computes it."""
    size = graph.tensors[node.outputs[0]].size
    table = ConstArray("table", np.asarray(node.attrs["table"], np.int8))
    return Lowered([Step("lut_s8", node.name, (node.inputs[0],), node.outputs[0], LutParams(size), (table,),
                         inplace=(0,))])


@register(QCONCAT)
def lower_qconcat(node: Node, graph: Graph) -> Lowered:
    keep = [k for k, name in enumerate(node.inputs) if graph.tensors[name].size > 0]  # empty inputs add nothing
    if len(keep) > CONCAT_MAX_INPUTS:
        raise UnsupportedOpError(f"{node.describe()}: more than {CONCAT_MAX_INPUTS} inputs are not supported")
    out = graph.tensors[node.outputs[0]].shape
    axis = int(node.attrs.get("axis", 0)) % max(1, len(out))
    outer = int(np.prod(out[:axis], dtype=np.int64))
    inner = tuple(int(np.prod(graph.tensors[node.inputs[k]].shape[axis:], dtype=np.int64)) for k in keep)
    tables = tuple(ConstArray(f"table{j}", np.asarray(node.attrs["tables"][k], np.int8))
                   for j, k in enumerate(keep) if node.attrs["tables"][k] is not None)
    params = ConcatParams(len(keep), outer, inner + (0,) * (CONCAT_MAX_INPUTS - len(inner)))
    return Lowered([Step("concat_s8", node.name, tuple(node.inputs[k] for k in keep), node.outputs[0], params, tables)])


@dataclass(frozen=True)
class SoftmaxS8Params:
    outer: int
    n: int
    inner: int
    x_scale: float
    x_zero_point: int
    y_scale: float
    y_zero_point: int
    int8_out: int  # 1: y is int8 at (y_scale, y_zero_point); 0: float32
    log: int  # 1: LogSoftmax


@register(QSOFTMAX)
def lower_qsoftmax(node: Node, graph: Graph) -> Lowered:
    shape = graph.tensors[node.inputs[0]].shape
    axis = int(node.attrs.get("axis", -1)) % max(1, len(shape))
    y_quant = node.attrs["y_quant"]
    params = SoftmaxS8Params(int(np.prod(shape[:axis])), shape[axis] if shape else 1, int(np.prod(shape[axis + 1:])),
                             *node.attrs["x_quant"], *(y_quant or (1.0, 0)), int(y_quant is not None),
                             int(node.attrs.get("log", 0)))
    return Lowered([Step("softmax_s8", node.name, (node.inputs[0],), node.outputs[0], params)])
