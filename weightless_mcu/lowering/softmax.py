"""Softmax and LogSoftmax along one axis (opset 13 semantics; older models are upgraded)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Node
from . import register
from .step import Lowered, Step


@dataclass(frozen=True)
class SoftmaxParams:
    outer: int
    n: int
    inner: int
    log: int


@register("Softmax", "LogSoftmax")
def lower_softmax(node: Node, graph: Graph) -> Lowered:
    shape = graph.tensors[node.inputs[0]].shape
    axis = int(node.attrs.get("axis", -1)) % max(1, len(shape))
    params = SoftmaxParams(int(np.prod(shape[:axis])), shape[axis] if shape else 1, int(np.prod(shape[axis + 1:])),
                           int(node.op == "LogSoftmax"))
    return Lowered([Step("softmax", node.name, (node.inputs[0],), node.outputs[0], params)])
