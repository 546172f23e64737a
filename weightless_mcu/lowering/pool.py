"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (1-D and 2-D)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..op_semantics import auto_pad, spatial_pads
from . import register
from .step import Lowered, Step

POOL_MAX, POOL_AVG = 0, 1


@dataclass(frozen=True)
class PoolParams:
    channels: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    dil_h: int
    dil_w: int
    mode: int
    count_include_pad: int


@register("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
def lower_pool(node: Node, graph: Graph) -> Lowered:
    return Lowered([Step("pool2d", node.name, (node.inputs[0],), node.outputs[0], pool_params(node, graph))])


def pool_params(node: Node, graph: Graph) -> PoolParams:
    """The window geometry of a pooling node (its op may be an int8 one made from it)."""
    x, y = node.inputs[0], node.outputs[0]
    if len(node.outputs) > 1 and node.outputs[1]:
        raise UnsupportedOpError(f"{node.describe()}: the Indices output of MaxPool is not supported")
    xs, ys = graph.tensors[x].shape, graph.tensors[y].shape
    if len(xs) not in (3, 4) or xs[0] != 1:
        raise UnsupportedOpError(f"{node.describe()}: only 1-D and 2-D pooling with batch 1 is supported (input shape {xs})")
    nd = len(xs) - 2
    if node.attrs.get("wl_pool_op", node.op).startswith("Global"):
        k, strides, dils, begins, ends = list(xs[2:]), [1] * nd, [1] * nd, [0] * nd, [0] * nd
    else:
        k = list(node.attrs["kernel_shape"])
        strides = list(node.attrs.get("strides", [1] * nd))
        dils = list(node.attrs.get("dilations", [1] * nd))
        begins = spatial_pads(node, xs[2:], ys[2:], k, strides, dils)
        if auto_pad(node) in ("NOTSET", ""):
            ends = list(node.attrs.get("pads", [0] * 2 * nd))[nd:]
        else:
            ends = [max(0, (o - 1) * s + (kk - 1) * d + 1 - i) - b
                    for i, o, kk, s, d, b in zip(xs[2:], ys[2:], k, strides, dils, begins)]
    if nd == 1:
        xs, ys = (*xs[:2], 1, xs[2]), (*ys[:2], 1, ys[2])
        k, strides, dils, begins, ends = [1] + k, [1] + strides, [1] + dils, [0] + begins, [0] + ends
    mode = POOL_MAX if "Max" in node.attrs.get("wl_pool_op", node.op) else POOL_AVG
    return PoolParams(xs[1], xs[2], xs[3], ys[2], ys[3], k[0], k[1], strides[0], strides[1],
                      begins[0], begins[1], ends[0], ends[1], dils[0], dils[1], mode,
                      int(node.attrs.get("count_include_pad", 0)))
