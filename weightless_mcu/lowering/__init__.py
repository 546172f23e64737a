"""Lowering: each supported ONNX op resolves its attributes into a frozen spec
and becomes one or more kernel `Step`s. One op family, one module; each module
registers its ops with `@register`.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from .layout import WeightLayout
from .step import ConstArray, Lowered, Step

_LOWERINGS: dict[str, Callable[[Node, Graph], Lowered]] = {}
_WEIGHTS: dict[str, Callable[[Node, Graph], "tuple[str, WeightLayout] | None"]] = {}


def register(*ops: str):
    def wrap(fn: Callable[[Node, Graph], Lowered]):
        for op in ops:
            _LOWERINGS[op] = fn
        return fn

    return wrap


def register_weights(*ops: str):
    """Register the function that names a node's compressible weight tensor and its walk order."""

    def wrap(fn):
        for op in ops:
            _WEIGHTS[op] = fn
        return fn

    return wrap


def weight_layouts(node: Node, graph: Graph) -> "list[tuple[str, WeightLayout]]":
    """(weight tensor, layout) of each tensor of a node that its kernel can read compressed (a
    recurrent layer has two: W and R), in the node's order; none for other nodes."""
    fn = _WEIGHTS.get(node.op)
    found = fn(node, graph) if fn else None
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def weight_layout(node: Node, graph: Graph) -> "tuple[str, WeightLayout] | None":
    """The first of weight_layouts, or None."""
    found = weight_layouts(node, graph)
    return found[0] if found else None


# Ops the passes make (not ONNX ops a model can hold): lowered, never listed as supported.
INTERNAL_OPS = {"QLinearFc", "QLinearConvS8", "QLinearBinaryS8", "QLinearPoolS8", "FlipSignS8", "QLinearLutS8", "QLinearConcatS8", "QLinearSoftmaxS8"}


def supported_ops() -> list[str]:
    return sorted(set(_LOWERINGS) - INTERNAL_OPS)


def lower_node(node: Node, graph: Graph) -> Lowered:
    fn = _LOWERINGS.get(node.op)
    if fn is None:
        raise UnsupportedOpError(
            f"{node.describe()} uses op {node.op}, which is not supported; supported ops: {', '.join(supported_ops())}"
        )
    for name in node.inputs + node.outputs:
        if name and name not in graph.tensors:
            raise UnsupportedOpError(f"{node.describe()}: the shape of tensor '{name}' could not be inferred")
    return fn(node, graph)


from . import conv, elementwise, gemm, pool, quantized, recurrent, reduce, resize, shape_ops, softmax  # noqa: E402,F401  (registration)

__all__ = ["ConstArray", "Lowered", "Step", "WeightLayout", "lower_node", "register", "register_weights",
           "supported_ops", "weight_layout", "weight_layouts"]
