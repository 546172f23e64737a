"""Conv (1-D and 2-D): general, depthwise and pointwise kernels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from . import register
from .layout import pack_rows
from .step import ConstArray, Lowered, Step, activation


@dataclass(frozen=True)
class ConvParams:
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
    act_min: float
    act_max: float


def spatial_pads(node: Node, in_hw, out_hw, k_hw, strides, dils) -> list[int]:
    """Begin pads per spatial axis, auto_pad resolved from the output shape."""
    auto = node.attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    nd = len(in_hw)
    if auto in ("NOTSET", ""):
        pads = list(node.attrs.get("pads", [0] * 2 * nd))
        if any(p < 0 for p in pads):
            raise UnsupportedOpError(f"{node.describe()}: negative pads are not supported")
        return pads[:nd]
    if auto == "VALID":
        return [0] * nd
    begins = []
    for i, o, k, s, d in zip(in_hw, out_hw, k_hw, strides, dils):
        total = max(0, (o - 1) * s + (k - 1) * d + 1 - i)
        begins.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
    return begins


@register("Conv")
def lower_conv(node: Node, graph: Graph) -> Lowered:
    x, wname = node.inputs[0], node.inputs[1]
    bname = node.inputs[2] if len(node.inputs) > 2 else ""
    w = graph.const(wname)
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
    group = int(node.attrs.get("group", 1))
    out_c, in_c = ys[1], xs[1]
    lo, hi = activation(node)
    params = ConvParams(in_c, xs[2], xs[3], out_c, ys[2], ys[3], k_hw[0], k_hw[1], strides[0], strides[1],
                        pads[0], pads[1], dils[0], dils[1], group, lo, hi)
    bias = graph.const(bname) if bname else np.zeros(out_c, np.float32)
    consts_bias = ConstArray("bias", np.ascontiguousarray(bias, np.float32))
    w = np.asarray(w, np.float32)
    if group == in_c == out_c:
        kernel, wdata = "depthwise_conv2d", w.reshape(-1)
    elif group == 1 and k_hw == [1, 1] and strides == [1, 1] and pads == [0, 0]:
        kernel, wdata = "pointwise_conv2d", pack_rows(w.reshape(out_c, in_c))
    else:
        per = out_c // group
        kernel = "conv2d"
        wdata = np.concatenate([pack_rows(w[g * per:(g + 1) * per].reshape(per, -1)) for g in range(group)])
    return Lowered([Step(kernel, node.name, (x,), node.outputs[0], params,
                         (ConstArray("weight", np.ascontiguousarray(wdata)), consts_bias))])
