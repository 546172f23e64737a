"""Reshape, Flatten, Squeeze, Unsqueeze (views: no code) and Transpose (a view
when it does not move data, a kernel otherwise)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from . import register
from .step import Lowered, Step

MAX_DIMS = 6  # WL_MAX_DIMS in firmware/include/wl_kernels.h


@dataclass(frozen=True)
class CopyParams:
    size: int


@dataclass(frozen=True)
class TransposeParams:
    ndim: int
    out_shape: tuple[int, ...]
    in_strides: tuple[int, ...]  # element stride in the input of each output axis


def _squeeze_units(shape, perm):
    """The permutation restricted to non-unit axes: a transpose is a view iff it keeps their order."""
    return [p for p in perm if shape[p] != 1]


def transpose_step(layer: str, x: str, y: str, in_shape: tuple[int, ...], perm: tuple[int, ...]) -> Step:
    moved = _squeeze_units(in_shape, perm)
    if moved == sorted(moved):
        return Step("view", layer, (x,), y, None, view=True)
    out_shape = tuple(in_shape[p] for p in perm)
    strides = np.cumprod((list(in_shape[1:]) + [1])[::-1])[::-1]
    in_strides = tuple(int(strides[p]) for p in perm)
    # Merge away unit output axes so small ranks stay within MAX_DIMS.
    keep = [i for i, d in enumerate(out_shape) if d != 1] or [0]
    out_shape = tuple(out_shape[i] for i in keep)
    in_strides = tuple(in_strides[i] for i in keep)
    if len(out_shape) > MAX_DIMS:
        raise UnsupportedOpError(f"Transpose node '{layer}': more than {MAX_DIMS} non-unit dimensions are not supported")
    pad = MAX_DIMS - len(out_shape)
    return Step("transpose", layer, (x,), y, TransposeParams(len(out_shape), out_shape + (1,) * pad, in_strides + (0,) * pad))


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
