"""What ONNX ops mean, where more than one stage needs it: the fused activation
that passes attach to a producer and lowering, training and channel cutting
all apply; and how a convolution's or pooling window's padding resolves.

This module sits below passes, lowering, compress and train, and imports none
of them: each stage reads these facts here instead of from another stage.
"""
from __future__ import annotations

import numpy as np

from .errors import UnsupportedOpError
from .ir import Graph, Node

# Node attribute under which a fused activation travels: (low, high) clamp bounds.
ACT = "wl_activation"
NO_ACT = (float("-inf"), float("inf"))


def activation(node: Node) -> tuple[float, float]:
    """The clamp bounds a node applies to its output (none: -inf, inf)."""
    return node.attrs.get(ACT, NO_ACT)


def clip_bounds(graph: Graph, node: Node) -> tuple[float, float] | None:
    """The (low, high) a Relu or Clip node clamps to; None when a Clip bound is not constant."""
    if node.op == "Relu":
        return (0.0, float("inf"))
    lo = graph.const(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else -float("inf")
    hi = graph.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else float("inf")
    if lo is None or hi is None:
        return None
    return (float(lo), float(hi))


def text(value) -> str:
    """An ONNX string attribute (or one item of a list of them) as text: they arrive as bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


def text_attr(node: Node, name: str, default: str) -> str:
    """A node's string attribute as text, or default."""
    return text(node.attrs.get(name, default))


def auto_pad(node: Node) -> str:
    return text_attr(node, "auto_pad", "NOTSET")


def spatial_pads(node: Node, in_hw, out_hw, k_hw, strides, dils) -> list[int]:
    """Begin pads per spatial axis of a Conv, ConvTranspose or pooling node,
    auto_pad resolved from the output shape (SAME_UPPER puts the odd pad at the end)."""
    auto = auto_pad(node)
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


def erf(x: np.ndarray) -> np.ndarray:
    """erf, vectorized (numpy has none): Abramowitz and Stegun 7.1.26, absolute error below
    1.5e-7, about one float32 ulp of values near 1. For retraining and channel cutting (the
    firmware calls erff)."""
    v = np.asarray(x, np.float64)
    a = np.abs(v)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(v) * (1.0 - poly * np.exp(-a * a))


def gelu_approximate(node: Node) -> str:
    """A Gelu node's approximate attribute: "none" or "tanh"."""
    return text_attr(node, "approximate", "none")


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))
