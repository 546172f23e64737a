"""Conv (1-D and 2-D): general, depthwise and pointwise kernels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..op_semantics import activation, auto_pad, spatial_pads
from . import register, register_weights
from .layout import WeightLayout
from .step import ConstArray, Lowered, Step, bias_operand


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's shapes and window; the kernels' params structs start with these fields."""

    in_c: int
    in_h: int
    in_w: int
    out_c: int
    out_h: int
    out_w: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    dil_h: int
    dil_w: int
    group: int


@dataclass(frozen=True)
class ConvParams(ConvGeometry):
    act_min: float
    act_max: float


def conv_params(node: Node, graph: Graph) -> ConvParams:
    x, w = node.inputs[0], graph.const(node.inputs[1])
    bname = node.inputs[2] if len(node.inputs) > 2 else ""
    if w is None or (bname and graph.const(bname) is None):
        raise UnsupportedOpError(f"{node.describe()}: only Conv with constant weights and bias is supported")
    xs, ys = graph.tensors[x].shape, graph.tensors[node.outputs[0]].shape
    if len(xs) not in (3, 4):
        raise UnsupportedOpError(f"{node.describe()}: only 1-D and 2-D convolutions are supported (input rank {len(xs)})")
    if xs[0] != 1:
        raise UnsupportedOpError(f"{node.describe()}: batch size {xs[0]} is not supported; the batch must be 1")
    one_d = len(xs) == 3
    nd = 1 if one_d else 2
    k_hw = list(w.shape[2:])
    strides = list(node.attrs.get("strides", [1] * nd))
    dils = list(node.attrs.get("dilations", [1] * nd))
    pads = spatial_pads(node, xs[2:], ys[2:], k_hw, strides, dils)
    if one_d:  # a 1-D convolution is a 2-D one of height 1
        xs, ys = (*xs[:2], 1, xs[2]), (*ys[:2], 1, ys[2])
        k_hw, strides, dils, pads = [1] + k_hw, [1] + strides, [1] + dils, [0] + pads
    lo, hi = activation(node)
    return ConvParams(xs[1], xs[2], xs[3], ys[1], ys[2], ys[3], k_hw[0], k_hw[1], strides[0], strides[1],
                      pads[0], pads[1], dils[0], dils[1], int(node.attrs.get("group", 1)), lo, hi)


def conv_kernel(p: ConvParams) -> str:
    if p.group == p.in_c == p.out_c:
        return "depthwise_conv2d"
    if (p.group, p.k_h, p.k_w, p.stride_h, p.stride_w, p.pad_top, p.pad_left) == (1, 1, 1, 1, 1, 0, 0) \
            and (p.out_h, p.out_w) == (p.in_h, p.in_w):
        return "pointwise_conv2d"
    return "conv2d"


def _layout(w: np.ndarray, p: ConvParams) -> WeightLayout:
    return WeightLayout(tuple(w.shape), p.group, False, conv_kernel(p) == "depthwise_conv2d")


@register("Conv")
def lower_conv(node: Node, graph: Graph) -> Lowered:
    x, wname = node.inputs[0], node.inputs[1]
    params = conv_params(node, graph)
    bname = node.inputs[2] if len(node.inputs) > 2 else ""
    w = np.asarray(graph.const(wname), np.float32)
    bias = graph.const(bname) if bname else np.zeros(params.out_c, np.float32)
    pre, consts_bias, btensor, new = bias_operand(graph, node.name, bname, bias)
    ins = (x, btensor) if btensor else (x,)
    kernel = conv_kernel(params)
    enc = graph.encodings.get(wname)
    if enc is not None:
        taps = params.k_h * params.k_w
        # float32 scratch: one channel's decoded taps, or a block of 4 output channels' weights
        scratch = 4 * {"depthwise_conv2d": taps, "pointwise_conv2d": 4 * params.in_c}.get(
            kernel, 4 * (params.in_c // params.group) * taps)
        return Lowered([*pre, Step(kernel + "_encoded", node.name, ins, node.outputs[0], params, consts_bias,
                                   encoding=enc, scratch=scratch, bias=btensor)], new)
    return Lowered([*pre, Step(kernel, node.name, ins, node.outputs[0], params,
                               (ConstArray("weight", _layout(w, params).walk(w)), *consts_bias), bias=btensor)], new)


@register_weights("Conv")
def conv_weights(node: Node, graph: Graph):
    w = graph.const(node.inputs[1])
    return None if w is None else (node.inputs[1], _layout(w, conv_params(node, graph)))


@register("ConvTranspose")
def lower_conv_transpose(node: Node, graph: Graph) -> Lowered:
    """1-D and 2-D transposed convolution; the output shape comes from shape
    inference, and the begin pads from pads, or from output_shape / auto_pad."""
    x, y = node.inputs[0], node.outputs[0]
    w = graph.const(node.inputs[1])
    bname = node.inputs[2] if len(node.inputs) > 2 else ""
    b = graph.const(bname) if bname else None
    if w is None or (bname and b is None):
        raise UnsupportedOpError(f"{node.describe()}: only ConvTranspose with constant weights and bias is supported")
    xs, ys = graph.tensors[x].shape, graph.tensors[y].shape
    if len(xs) not in (3, 4) or xs[0] != 1:
        raise UnsupportedOpError(f"{node.describe()}: only 1-D and 2-D ConvTranspose with batch 1 is supported")
    nd = len(xs) - 2
    group = int(node.attrs.get("group", 1))
    k = list(w.shape[2:])
    strides = list(node.attrs.get("strides", [1] * nd))
    dils = list(node.attrs.get("dilations", [1] * nd))
    out_pad = list(node.attrs.get("output_padding", [0] * nd))
    auto = auto_pad(node)
    ins, outs = list(xs[2:]), list(ys[2:])
    if "output_shape" in node.attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        # The transposed convolution's own rule for the total padding.
        begins = []
        for i, o, kk, s, d, op in zip(ins, outs, k, strides, dils, out_pad):
            total = s * (i - 1) + op + (kk - 1) * d + 1 - o
            begins.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
        if any(v < 0 for v in begins):
            raise UnsupportedOpError(f"{node.describe()}: negative pads are not supported")
    else:  # explicit pads or VALID, read as for Conv
        begins = spatial_pads(node, ins, outs, k, strides, dils)
    if nd == 1:  # as 2-D with height 1
        ins, outs, k, strides, dils, begins = [1, *ins], [1, *outs], [1, *k], [1, *strides], [1, *dils], [0, *begins]
    lo, hi = activation(node)
    params = ConvParams(xs[1], ins[0], ins[1], ys[1], outs[0], outs[1], k[0], k[1], strides[0], strides[1],
                        begins[0], begins[1], dils[0], dils[1], group, lo, hi)
    consts = [ConstArray("weight", np.ascontiguousarray(w, np.float32).reshape(-1))]
    if b is not None:
        consts.append(ConstArray("bias", np.ascontiguousarray(b, np.float32)))
    return Lowered([Step("conv_transpose2d", node.name, (x,), y, params, tuple(consts))])
