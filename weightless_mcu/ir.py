"""The one intermediate representation every stage reads and returns.

A `Graph` of `Node`s over named `Tensor`s. Shapes are static; initializers hold
float32 (or, for integer operands, int64) numpy data, with the element type the
model declared in `dtype`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None = None  # set for constants (initializers)
    # Constants: the element type the model stored (int8 weights arrive as int64 data, "int8").
    # Activations: what the generated code holds, "float32" or "int8".
    dtype: str = "float32"
    # int8 activations: (scale, zero point), real = scale * (q - zero point).
    quant: tuple[float, int] | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]  # "" marks an omitted optional input
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.op} node '{self.name}'"


@dataclass
class Graph:
    name: str
    nodes: list[Node]
    tensors: dict[str, Tensor]
    inputs: list[str]
    outputs: list[str]
    opset: int
    # Compressed weight tensors: name -> a WeightEncoding (compress/encodings.py).
    # The tensor's data then holds the decoded weights, so the graph is the decoded model.
    encodings: dict[str, Any] = field(default_factory=dict)
    # Biases stored as shared values: name -> a BiasCodebookEncoding (the tensor holds its decode).
    bias_encodings: dict[str, Any] = field(default_factory=dict)
    # Float32 weights and biases cut out by structured pruning: part of the
    # original model's size, no longer in the graph.
    removed_parameters: int = 0
    # What compression with retraining measured: validation metric before and after, warnings, the budget.
    compression_summary: dict[str, Any] = field(default_factory=dict)
    # The element type of each model input and output as the caller sees it: "float32" (the
    # default, not listed), "int8" or "uint8".
    io_dtypes: dict[str, str] = field(default_factory=dict)
    # Inputs of the model fixed at compile time (--constant-input): name -> their values, flat.
    constant_inputs: dict[str, list] = field(default_factory=dict)

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def const(self, name: str) -> np.ndarray | None:
        t = self.tensors.get(name) if name else None
        return None if t is None else t.data

    def producers(self) -> dict[str, Node]:
        return {out: n for n in self.nodes for out in n.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        uses: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    uses.setdefault(i, []).append(n)
        return uses

    def prune(self) -> None:
        """Drop nodes whose outputs nobody needs and tensors nobody references."""
        needed = set(self.outputs)
        kept: list[Node] = []
        for n in reversed(self.nodes):
            if any(o in needed for o in n.outputs):
                kept.append(n)
                needed.update(i for i in n.inputs if i)
                needed.update(outer_scope_names(n))
        self.nodes = kept[::-1]
        # every output of a kept node stays known, used or not (an LSTM's Y_h)
        live = needed | set(self.inputs) | {o for n in kept for o in n.outputs if o}
        self.tensors = {k: v for k, v in self.tensors.items() if k in live}


def branch_graphs(node) -> list:
    """The GraphProtos an If's (or a loop's) attributes hold: of an IR Node or an onnx NodeProto."""
    if isinstance(node, Node):
        values = [v for value in node.attrs.values() for v in (value if isinstance(value, (list, tuple)) else [value])]
        return [g for g in values if hasattr(g, "node") and hasattr(g, "initializer")]
    return [g for a in node.attribute for g in ([a.g] if a.HasField("g") else []) + list(a.graphs)]


def outer_scope_names(node) -> set[str]:
    """Names an If's (or a loop's) branches read from the graph around them: inputs of their
    nodes that no node, input or initializer of the branch defines. They are the node's inputs
    too, though not in its input list (an If that folds later is replaced by a branch that reads them)."""
    names: set[str] = set()
    for g in branch_graphs(node):
        defined = {i.name for i in g.initializer} | {i.name for i in g.input}
        used: set[str] = set()
        for n in g.node:
            used.update(i for i in n.input if i)
            used |= outer_scope_names(n)
            defined.update(n.output)
        used.update(o.name for o in g.output)
        names |= used - defined
    return names
