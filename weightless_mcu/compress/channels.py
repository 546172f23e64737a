"""Structured pruning: removing whole output channels (filters, neurons) of a layer.

A channel whose weights are all zero outputs a constant, act(bias), at every
pixel. Through ops that keep a channel constant (activations, max pooling, a
flatten) it reaches the next layer, which adds its contribution to its own
bias; then the channel is cut out of both layers. The model computes the same
function with fewer weight positions: fewer to store, and for a Bloomier table
fewer pruned positions that can read as false positives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..ir import Graph, Node, Tensor
from ..op_semantics import activation, auto_pad, gelu, gelu_approximate

_UNARY = {
    "Relu": lambda v, n: np.maximum(v, 0),
    "LeakyRelu": lambda v, n: np.where(v < 0, n.attrs.get("alpha", 0.01) * v, v),
    "Sigmoid": lambda v, n: 1 / (1 + np.exp(-v)),
    "Tanh": lambda v, n: np.tanh(v),
    "HardSigmoid": lambda v, n: np.clip(n.attrs.get("alpha", 0.2) * v + n.attrs.get("beta", 0.5), 0, 1),
    "HardSwish": lambda v, n: v * np.clip(v / 6 + 0.5, 0, 1),
    "Gelu": lambda v, n: gelu(v, gelu_approximate(n)),
    "Identity": lambda v, n: v,
    "MaxPool": lambda v, n: v,  # padding is -inf: a constant map stays constant
    "GlobalMaxPool": lambda v, n: v,
    "GlobalAveragePool": lambda v, n: v,
}


@dataclass
class ChannelChain:
    producer: Node  # Conv or Gemm whose output channels can be removed
    path: list[Node]  # the ops between, each keeping every channel constant
    consumer: Node  # Conv or Gemm that reads the channels
    columns: int  # consumer input columns per channel (a flatten spreads a channel over H*W)


def _plain_conv(node: Node, graph: Graph) -> bool:
    w = graph.const(node.inputs[1]) if len(node.inputs) > 1 else None
    return node.op == "Conv" and w is not None and w.ndim >= 3 and node.attrs.get("group", 1) == 1


def _plain_gemm(node: Node, graph: Graph) -> bool:
    a = node.attrs
    w = graph.const(node.inputs[1]) if len(node.inputs) > 1 else None
    return (node.op == "Gemm" and w is not None and w.ndim == 2 and a.get("transB", 0) == 1 and a.get("transA", 0) == 0
            and a.get("alpha", 1.0) == 1.0 and a.get("beta", 1.0) == 1.0)


def _unpadded(node: Node) -> bool:
    return not any(node.attrs.get("pads", [])) and auto_pad(node) in ("NOTSET", "VALID")


def channel_chain(graph: Graph, node: Node) -> ChannelChain | None:
    """The chain from `node` to the one layer that reads its output channels, if
    channels can be removed along it; None otherwise."""
    if not (_plain_conv(node, graph) or _plain_gemm(node, graph)) or node.outputs[0] in graph.outputs:
        return None
    consumers = graph.consumers()
    path: list[Node] = []
    tensor = node.outputs[0]
    columns = 1
    while True:
        users = consumers.get(tensor, [])
        if len(users) != 1 or tensor in graph.outputs:
            return None
        user = users[0]
        shape = graph.tensors[tensor].shape
        if user.op in ("Conv", "Gemm"):
            if user.inputs[0] != tensor or graph.const(user.inputs[1]) is None or user.inputs[1] in graph.encodings:
                return None
            if user.op == "Gemm" and not (_plain_gemm(user, graph) and len(shape) == 2):
                return None
            if user.op == "Conv" and not (_plain_conv(user, graph) and columns == 1):
                return None
            return ChannelChain(node, path, user, columns)
        if user.op in ("Reshape", "Flatten") and columns == 1 and len(shape) >= 3:
            out = graph.tensors[user.outputs[0]].shape
            if len(out) != 2 or out[0] != shape[0] or out[1] != int(np.prod(shape[1:])):
                return None
            columns = int(np.prod(shape[2:]))
        elif user.op == "AveragePool" and _unpadded(user):
            pass
        elif user.op not in _UNARY:
            return None
        path.append(user)
        tensor = user.outputs[0]


def channel_importance(graph: Graph, chain: ChannelChain, values: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per output channel: the norm of its weights times the norm of the weights that read it."""
    get = (lambda n: values[n]) if values is not None else graph.const
    w = get(chain.producer.inputs[1])
    v = get(chain.consumer.inputs[1])
    channels = w.shape[0]
    rows = np.sqrt((w.reshape(channels, -1).astype(np.float64) ** 2).sum(axis=1))
    if chain.consumer.op == "Gemm":
        cols = v.reshape(v.shape[0], channels, chain.columns)
        reads = np.sqrt((cols.astype(np.float64) ** 2).sum(axis=(0, 2)))
    else:
        reads = np.sqrt((v.astype(np.float64) ** 2).sum(axis=tuple(i for i in range(v.ndim) if i != 1)))
    return rows * reads


def _constants(graph: Graph, chain: ChannelChain) -> np.ndarray:
    """What each channel holds where it reaches the consumer if its weights were all zero."""
    p = chain.producer
    bias = graph.const(p.inputs[2]) if len(p.inputs) > 2 and p.inputs[2] else None
    v = np.zeros(graph.const(p.inputs[1]).shape[0], np.float64) if bias is None else bias.astype(np.float64)
    v = np.clip(v, *activation(p))  # a fused activation
    for n in chain.path:
        if n.op in _UNARY:
            v = _UNARY[n.op](v, n)
        v = np.clip(v, *activation(n))
    return v


def remove_channels(graph: Graph, chain: ChannelChain, keep: np.ndarray) -> int:
    """Cut the producer's output channels where `keep` is False out of the graph,
    folding what they still contribute (their weights must be zero) into the
    consumer's bias. Returns the number of float32 parameters removed, which
    the graph also adds to its removed_parameters (the original size counts them)."""
    p, c = chain.producer, chain.consumer
    keep = np.asarray(keep, bool)
    w = graph.const(p.inputs[1])
    if keep.shape != (w.shape[0],) or not keep.any():
        raise OptionError(f"layer '{p.name}': a channel mask must keep some of its {w.shape[0]} channels")
    if np.any(w[~keep]):
        raise OptionError(f"layer '{p.name}': only channels whose weights are all zero can be removed")
    if p.inputs[1] in graph.encodings:
        raise OptionError(f"layer '{p.name}' is already encoded; remove channels before encoding")
    const = _constants(graph, chain)
    v = graph.const(c.inputs[1])
    gone = ~keep
    # The consumer's input columns of each removed channel, and what they added.
    if c.op == "Gemm":
        cols = v.reshape(v.shape[0], keep.size, chain.columns)
        folded = (cols[:, gone, :].astype(np.float64).sum(axis=2) @ const[gone])
        new_v = cols[:, keep, :].reshape(v.shape[0], -1)
    else:
        if np.any(const[gone]) and not _unpadded(c):
            raise OptionError(f"layer '{c.name}' pads its input; channels of '{p.name}' with a non-zero bias cannot be "
                              f"folded into it")
        folded = v[:, gone].astype(np.float64).sum(axis=tuple(range(2, v.ndim))) @ const[gone]
        new_v = v[:, keep]
    removed = int(w.size - w[keep].size + v.size - new_v.size)
    _set(graph, p.inputs[1], w[keep])
    if len(p.inputs) > 2 and p.inputs[2]:
        b = graph.const(p.inputs[2])
        _set(graph, p.inputs[2], b[keep])
        removed += int(gone.sum())
    _set(graph, c.inputs[1], new_v)
    if np.any(folded):
        if len(c.inputs) > 2 and c.inputs[2]:
            _set(graph, c.inputs[2], (graph.const(c.inputs[2]).astype(np.float64) + folded).astype(np.float32))
        else:
            name = f"{c.name}.folded_bias"
            graph.tensors[name] = Tensor(name, (v.shape[0],), folded.astype(np.float32))
            c.inputs = [*c.inputs[:2], name]
            removed -= v.shape[0]
    # Shapes along the chain: the channel axis shrinks (a flatten's columns with it).
    n_keep = int(keep.sum())
    tensors = [p.outputs[0]] + [n.outputs[0] for n in chain.path]
    for name in tensors:
        t = graph.tensors[name]
        if t.shape[1] == keep.size:
            t.shape = (t.shape[0], n_keep, *t.shape[2:])
        else:  # flattened
            t.shape = (t.shape[0], n_keep * chain.columns)
    for n in chain.path:
        if n.op == "Reshape":
            out = np.array(graph.tensors[n.outputs[0]].shape, np.int64)
            target = n.inputs[1]
            if sum(target in m.inputs for m in graph.nodes) > 1:
                target = f"{n.name}.shape"
                n.inputs = [n.inputs[0], target]
            graph.tensors[target] = Tensor(target, out.shape, out)
    graph.removed_parameters += removed
    return removed


def _set(graph: Graph, name: str, value: np.ndarray) -> None:
    t = graph.tensors[name]
    t.data = np.ascontiguousarray(value, dtype=t.data.dtype)
    t.shape = tuple(t.data.shape)


def strongest_channels(graph: Graph, chain: ChannelChain, fraction: float,
                       values: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Mask of the round(fraction * C) most important output channels (at least one)."""
    scores = channel_importance(graph, chain, values)
    n = max(1, int(round(fraction * scores.size)))
    keep = np.zeros(scores.size, bool)
    keep[np.argsort(-scores, kind="stable")[:n]] = True
    return keep


def cut_channels(graph: Graph, chain: ChannelChain, keep: np.ndarray) -> int:
    """Zero the weights of the channels not kept and remove them (without retraining)."""
    w = graph.tensors[chain.producer.inputs[1]]
    w.data = w.data * keep.reshape((-1,) + (1,) * (w.data.ndim - 1)).astype(w.data.dtype)
    return remove_channels(graph, chain, keep)
