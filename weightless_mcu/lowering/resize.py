"""Resize (nearest and linear, the coordinate modes torch's interpolate and Upsample write) and
DepthToSpace / SpaceToDepth (copies: a transpose of a reshaped view).

Every source index and weight of a Resize is known at compile time: each resized axis gets a
table of (index, index, weight, weight) per output coordinate, computed as onnxruntime computes
them (float32 arithmetic, its rounding and clamping), and the kernel reads its input through
them. Only the last two axes may be resized (an image's H and W, or a sequence's length)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..op_semantics import text_attr
from . import register
from .shape_ops import transpose_step
from .step import ConstArray, Lowered, Step

F = np.float32
COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


@dataclass(frozen=True)
class ResizeParams:
    outer: int  # the product of the axes not resized (batch, channels)
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    linear: int  # 0: nearest (the first index of each pair), 1: linear


def original_coordinate(mode: str, out: int, scale, length_out, length_in: int) -> np.ndarray:
    """The input coordinate of each output coordinate 0..out-1, in float32 as onnxruntime computes it."""
    x = np.arange(out, dtype=F)
    s = F(scale)
    if mode == "asymmetric":
        return x / s
    if mode == "pytorch_half_pixel":
        return (x + F(0.5)) / s - F(0.5) if length_out > 1 else np.zeros(out, F)
    if mode == "tf_half_pixel_for_nn":
        return (x + F(0.5)) / s
    if mode == "align_corners":
        return x * F(length_in - 1) / (F(length_out) - F(1)) if length_out != 1 else np.zeros(out, F)
    return (x + F(0.5)) / s - F(0.5)  # half_pixel


def _nearest(x: np.ndarray, mode: str) -> np.ndarray:
    half_away = np.sign(x) * np.floor(np.abs(x) + F(0.5))  # std::round
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    if mode == "round_prefer_ceil":
        return half_away
    return np.where(x == np.trunc(x) + F(0.5), np.floor(x), half_away)  # round_prefer_floor


def axis_table(n_in: int, n_out: int, scale, coord_mode: str, linear: bool, nearest_mode: str):
    """(indices [out, 2] int32, weights [out, 2] float32) of one axis: y[o] = w0 * x[i0] + w1 * x[i1]
    (nearest: i0, and weights 1, 0)."""
    if F(scale) == F(1):
        orig = np.arange(n_out, dtype=F)  # onnxruntime reads an unscaled axis as it is
    else:
        # the resized length as the ONNX spec defines it: the input's times the scale, unrounded
        orig = original_coordinate(coord_mode, n_out, scale, F(n_in) * F(scale), n_in)
    if not linear:
        i0 = np.clip(_nearest(orig, nearest_mode), 0, n_in - 1).astype(np.int32)
        return np.stack([i0, i0], 1), np.tile(np.array([1, 0], F), (n_out, 1))
    x = np.clip(orig, F(0), F(n_in - 1)).astype(F)
    i1 = np.minimum(x.astype(np.int64), n_in - 1)
    i2 = np.minimum(i1 + 1, n_in - 1)
    d1 = np.abs(x - i1.astype(F)).astype(F)
    d2 = np.abs(x - i2.astype(F)).astype(F)
    same = i1 == i2
    d1[same], d2[same] = F(0.5), F(0.5)
    return np.stack([i1, i2], 1).astype(np.int32), np.stack([d2, d1], 1).astype(F)


@register("Resize")
def lower_resize(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    in_shape, out_shape = graph.tensors[x].shape, graph.tensors[y].shape
    rank = len(in_shape)
    mode = text_attr(node, "mode", "nearest")
    coord = text_attr(node, "coordinate_transformation_mode", "half_pixel")
    nearest = text_attr(node, "nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear"):
        raise UnsupportedOpError(f"{node.describe()}: mode '{mode}' is not supported (nearest and linear are)")
    if coord not in COORDINATE_MODES:
        raise UnsupportedOpError(f"{node.describe()}: coordinate_transformation_mode '{coord}' is not supported "
                                 f"({', '.join(COORDINATE_MODES)} are)")
    if nearest not in NEAREST_MODES:
        raise UnsupportedOpError(f"{node.describe()}: nearest_mode '{nearest}' is not supported")
    if text_attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        raise UnsupportedOpError(f"{node.describe()}: only keep_aspect_ratio_policy 'stretch' is supported")
    operands = [graph.const(n) if n else None for n in (list(node.inputs) + ["", "", ""])[1:4]]
    if node.inputs[1:] and any(n and graph.const(n) is None for n in node.inputs[1:]):
        raise UnsupportedOpError(f"{node.describe()}: only constant roi, scales and sizes are supported")
    axes = [a % rank for a in node.attrs.get("axes", range(rank))]
    scales = [F(1)] * rank
    given = operands[1] if len(node.inputs) > 2 else (operands[0] if len(node.inputs) == 2 else None)  # opset 10: X, scales
    if given is not None and given.size:
        for a, v in zip(axes, given.reshape(-1)):
            scales[a] = F(v)
    else:
        scales = [F(out_shape[a]) / F(in_shape[a]) for a in range(rank)]
    resized = [a for a in range(rank) if in_shape[a] != out_shape[a] or scales[a] != F(1)]
    if any(a < rank - 2 for a in resized):
        raise UnsupportedOpError(f"{node.describe()}: only the last two axes can be resized "
                                 f"(input {list(in_shape)}, output {list(out_shape)})")
    linear = mode == "linear"
    if linear and int(node.attrs.get("antialias", 0)) and any(scales[a] < 1 for a in resized):
        raise UnsupportedOpError(f"{node.describe()}: antialiased linear downsampling is not supported")
    shape_in = (1,) * (2 - min(rank, 2)) + tuple(in_shape[-2:])
    shape_out = (1,) * (2 - min(rank, 2)) + tuple(out_shape[-2:])
    scale_hw = ([F(1)] * (2 - min(rank, 2)) + scales[-2:])
    tables = [axis_table(shape_in[k], shape_out[k], scale_hw[k], coord, linear, nearest) for k in (0, 1)]
    outer = int(np.prod(in_shape[:-2])) if rank > 2 else 1
    params = ResizeParams(outer, shape_in[0], shape_in[1], shape_out[0], shape_out[1], int(linear))
    consts = (ConstArray("h_index", tables[0][0].reshape(-1)), ConstArray("h_weight", tables[0][1].reshape(-1)),
              ConstArray("w_index", tables[1][0].reshape(-1)), ConstArray("w_weight", tables[1][1].reshape(-1)))
    return Lowered([Step("resize", node.name, (x,), y, params, consts)])


@register("DepthToSpace", "SpaceToDepth")
def lower_depth_space(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    shape = graph.tensors[x].shape
    if len(shape) != 4:
        raise UnsupportedOpError(f"{node.describe()}: only 4-D (NCHW) inputs are supported")
    n, c, h, w = shape
    b = int(node.attrs["blocksize"])
    if node.op == "SpaceToDepth":
        crd = text_attr(node, "mode", "DCR") == "CRD"
        view, perm = (n, c, h // b, b, w // b, b), ((0, 1, 3, 5, 2, 4) if crd else (0, 3, 5, 1, 2, 4))
    elif text_attr(node, "mode", "DCR") == "CRD":
        view, perm = (n, c // (b * b), b, b, h, w), (0, 1, 4, 2, 5, 3)
    else:
        view, perm = (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2)
    return Lowered([transpose_step(node.name, x, y, view, perm)])
