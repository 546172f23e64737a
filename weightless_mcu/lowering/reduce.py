"""ReduceMean, ReduceSum, ReduceMax over one contiguous block of axes (e.g. the
spatial axes: what torch's exporter writes for adaptive average pooling)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from . import register
from .step import Lowered, Step

REDUCE_OPS = {"ReduceMean": 0, "ReduceSum": 1, "ReduceMax": 2}


@dataclass(frozen=True)
class ReduceParams:
    op: int
    outer: int
    n: int  # elements reduced into one output
    inner: int


@register(*REDUCE_OPS)
def lower_reduce(node: Node, graph: Graph) -> Lowered:
    x, y = node.inputs[0], node.outputs[0]
    shape = graph.tensors[x].shape
    if len(node.inputs) > 1 and node.inputs[1]:
        axes_data = graph.const(node.inputs[1])
        if axes_data is None:
            raise UnsupportedOpError(f"{node.describe()}: only constant reduction axes are supported")
        axes = [int(a) for a in np.asarray(axes_data).reshape(-1)]
    else:
        axes = list(node.attrs.get("axes", []))
    if not axes:
        if node.attrs.get("noop_with_empty_axes", 0):
            return Lowered([Step("view", node.name, (x,), y, None, view=True)])
        axes = list(range(len(shape)))
    reduced = {a % len(shape) for a in axes}
    # Unit axes are free to move: the reduced axes must form one block among the others.
    kept = [i for i, d in enumerate(shape) if d != 1]
    flags = [i in reduced for i in kept]
    first = flags.index(True) if True in flags else len(flags)
    last = len(flags) - 1 - flags[::-1].index(True) if True in flags else -1
    if not all(flags[first:last + 1]):
        raise UnsupportedOpError(f"{node.describe()}: reducing the non-adjacent axes {sorted(reduced)} of shape {shape} is not supported")
    dims = [shape[i] for i in kept]
    outer = int(np.prod(dims[:first])) if first <= len(dims) else 1
    n = int(np.prod(dims[first:last + 1])) if last >= first else 1
    inner = int(np.prod(dims[last + 1:])) if last >= first else int(np.prod(dims[first:]))
    return Lowered([Step("reduce", node.name, (x,), y, ReduceParams(REDUCE_OPS[node.op], outer, n, inner))])
