"""A graph as a trainable network: forward and backward on batches.

Parameters are the weights and biases of Conv, Gemm and MatMul. Each can be
free, masked (pruned positions stay zero), shared (the weights are
codebook[index]: the gradient reaches the K shared values), or frozen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..op_semantics import erf, gelu, gelu_approximate
from . import ops


@dataclass
class Constraint:
    kind: str = "free"  # free | masked | shared | frozen
    mask: np.ndarray | None = None  # masked: bool, the tensor's shape
    index: np.ndarray | None = None  # shared: int, 0 = zero weight, v = codebook[v-1]
    codebook: np.ndarray | None = None  # shared: float32 [K]
    encoding: object | None = None  # frozen after encoding: the encoding whose decode it holds


class Network:
    def __init__(self, graph: Graph):
        for n in graph.nodes:
            ops.check_trainable(n)
            if n.op == "Pow" and (graph.const(n.inputs[1]) is None or graph.const(n.inputs[1]).size != 1):
                raise UnsupportedOpError(f"{n.describe()}: retraining supports Pow by a constant scalar exponent only")
        self.graph = graph
        self.values: dict[str, np.ndarray] = {k: t.data for k, t in graph.tensors.items() if t.is_const}
        self.params: list[str] = []
        for n in graph.nodes:
            if n.op in ("Conv", "Gemm", "MatMul"):
                for name in n.inputs[1:3]:
                    if name and name in self.values and self.values[name].dtype == np.float32 and name not in self.params:
                        self.params.append(name)
        self.constraints: dict[str, Constraint] = {p: Constraint() for p in self.params}
        self.output = graph.outputs[0]
        self._producer = graph.producers()
        self.input_grads = False  # gradients of the model's inputs (only tests want them)
        self.dtype = np.float32  # of every activation; the gradient checks run in float64

    # -- parameters ---------------------------------------------------------------
    def set_values(self, name: str, value: np.ndarray) -> None:
        self.values[name] = np.ascontiguousarray(value, np.float32).reshape(self.values[name].shape)

    def constrain(self, name: str, c: Constraint) -> None:
        self.constraints[name] = c
        if c.kind == "masked":
            self.set_values(name, self.values[name] * c.mask)
        elif c.kind == "shared":
            self.set_values(name, np.concatenate([[0.0], c.codebook]).astype(np.float32)[c.index])

    def export(self) -> None:
        """Write the current parameters back into the graph."""
        for p in self.params:
            self.graph.tensors[p].data = self.values[p].copy()

    # -- forward / backward ---------------------------------------------------------
    def _batch_shape(self, name: str, n: int) -> tuple[int, ...]:
        shape = self.graph.tensors[name].shape
        if not shape or shape[0] != 1:
            raise UnsupportedOpError(f"retraining needs a batch axis first; tensor '{name}' has shape {shape}")
        return (n, *shape[1:])

    def forward(self, inputs: dict[str, np.ndarray], upto: str | None = None, keep: bool = False):
        """Outputs of the graph (or of tensor `upto`); with keep, the caches for backward."""
        env = dict(inputs)
        n = next(iter(inputs.values())).shape[0]
        tape = []
        for node in self.graph.nodes:
            ins = [env[i] if i in env else self.values.get(i) if i else None for i in node.inputs]
            y, cache = self._forward_node(node, ins, n)
            if keep:
                tape.append((node, cache, ins))
            env[node.outputs[0]] = y
            if node.outputs[0] == upto:
                break
        return env, tape

    def _forward_node(self, node: Node, ins: list, n: int):
        op, g = node.op, self.graph
        if op == "Conv":
            y, c = ops.conv_forward(node, g, ins[0], ins[1], ins[2] if len(ins) > 2 else None)
        elif op == "Gemm":
            a, b = ins[0], ins[1]
            at = a.T if node.attrs.get("transA", 0) else a
            bt = b.T if node.attrs.get("transB", 0) else b
            alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
            y = alpha * (at @ bt)
            if len(ins) > 2 and ins[2] is not None:
                y = y + beta * ins[2]
            c = (at, bt)
        elif op == "MatMul":
            y, c = ins[0] @ ins[1], None
        elif op in ops.UNARY_TRAINABLE:
            y, c = _unary_forward(node, ins)
        elif op in ("Add", "Sub", "Mul", "Div"):
            a, b = ins
            y = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](a, b)
            c = None
        elif op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"):
            y, c = ops.pool_forward(node, g, ins[0])
        elif op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"):
            y, c = ins[0].reshape(self._batch_shape(node.outputs[0], n)), None
        elif op == "Transpose":
            perm = node.attrs.get("perm", list(range(ins[0].ndim))[::-1])
            if perm[0] != 0:
                raise UnsupportedOpError(f"{node.describe()}: retraining needs Transposes that keep the batch axis first")
            y, c = ins[0].transpose(perm), None
        elif op in ("Softmax", "LogSoftmax"):
            axis = node.attrs.get("axis", -1)
            p = ops.softmax(ins[0], axis)
            y, c = (p if op == "Softmax" else np.log(np.maximum(p, 1e-30))), p
        elif op == "BatchNormalization":
            scale, bias, mean, var = ins[1:5]
            s = scale / np.sqrt(var + node.attrs.get("epsilon", 1e-5))
            shape = (1, -1) + (1,) * (ins[0].ndim - 2)
            y, c = ins[0] * s.reshape(shape) + (bias - mean * s).reshape(shape), s.reshape(shape)
        elif op in ("ReduceMean", "ReduceSum"):
            axes = node.attrs.get("axes") or ([int(a) for a in self.values[node.inputs[1]]] if len(node.inputs) > 1 else None)
            axes = tuple(a % ins[0].ndim for a in axes) if axes else tuple(range(1, ins[0].ndim))
            keep = bool(node.attrs.get("keepdims", 1))
            y = ins[0].mean(axis=axes, keepdims=keep) if op == "ReduceMean" else ins[0].sum(axis=axes, keepdims=keep)
            c = (axes, keep, ins[0].shape)
        else:
            raise UnsupportedOpError(f"{node.describe()}: retraining does not support op {op}")
        y = np.asarray(y, self.dtype)
        y, act = ops.apply_act(node, y)
        return y, (c, act)

    def backward(self, tape, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Gradients of the parameters, given the gradients of some tensors."""
        pgrads: dict[str, np.ndarray] = {}
        for node, (cache, act), ins in reversed(tape):
            dy = grads.pop(node.outputs[0], None)
            if dy is None:
                continue
            dy = ops.act_backward(act, dy)
            dins = self._backward_node(node, cache, ins, dy)
            for name, d in zip(node.inputs, dins):
                if d is None or not name:
                    continue
                if name in self.constraints:
                    pgrads[name] = pgrads.get(name, 0) + d
                elif name not in self.values:
                    grads[name] = grads[name] + d if name in grads else d
        return pgrads

    def _backward_node(self, node: Node, cache, ins: list, dy: np.ndarray) -> list:
        op = node.op
        if op == "Conv":
            dx, dw, db = ops.conv_backward(cache, dy, need_dx=self.input_grads or node.inputs[0] not in self.graph.inputs)
            return [dx, dw, db if len(ins) > 2 and ins[2] is not None else None]
        if op == "Gemm":
            at, bt = cache
            alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
            da = alpha * (dy @ bt.T)
            db = alpha * (at.T @ dy)
            da = da.T if node.attrs.get("transA", 0) else da
            db = db.T if node.attrs.get("transB", 0) else db
            dc = ops.unbroadcast(beta * dy, ins[2].shape) if len(ins) > 2 and ins[2] is not None else None
            return [da, db, dc]
        if op == "MatMul":
            a, b = ins
            da = dy @ np.swapaxes(b, -1, -2)
            db = (np.swapaxes(a, -1, -2) @ dy)
            return [da, db.reshape(-1, *b.shape).sum(0) if db.ndim > b.ndim else db]
        if op in ops.UNARY_TRAINABLE:
            return [dy * cache] + [None] * (len(ins) - 1)
        if op in ("Add", "Sub", "Mul", "Div"):
            a, b = ins
            if op == "Add":
                da, db = dy, dy
            elif op == "Sub":
                da, db = dy, -dy
            elif op == "Mul":
                da, db = dy * b, dy * a
            else:
                da, db = dy / b, -dy * a / (b * b)
            return [ops.unbroadcast(da, a.shape), ops.unbroadcast(db, b.shape)]
        if op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"):
            return [ops.pool_backward(cache, dy)]
        if op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"):
            return [dy.reshape(ins[0].shape)] + [None] * (len(ins) - 1)
        if op == "Transpose":
            perm = node.attrs.get("perm", list(range(dy.ndim))[::-1])
            return [dy.transpose(np.argsort(perm))]
        if op == "Softmax":
            axis = node.attrs.get("axis", -1)
            p = cache
            return [p * (dy - (dy * p).sum(axis=axis, keepdims=True))]
        if op == "LogSoftmax":
            axis = node.attrs.get("axis", -1)
            return [dy - cache * dy.sum(axis=axis, keepdims=True)]
        if op == "BatchNormalization":
            return [dy * cache] + [None] * 4
        if op in ("ReduceMean", "ReduceSum"):
            axes, keep, shape = cache
            g = dy if keep else np.expand_dims(dy, axes)
            if op == "ReduceMean":
                g = g / np.prod([shape[a] for a in axes])
            return [np.broadcast_to(g, shape).astype(dy.dtype)] + [None] * (len(ins) - 1)
        raise UnsupportedOpError(f"{node.describe()}: no backward for op {op}")


def _unary_forward(node: Node, ins: list):
    x = ins[0]
    op = node.op
    if op in ("Relu", "Clip"):
        lo, hi = (0.0, np.inf) if op == "Relu" else (
            float(ins[1]) if len(ins) > 1 and ins[1] is not None else -np.inf,
            float(ins[2]) if len(ins) > 2 and ins[2] is not None else np.inf)
        y = np.clip(x, lo, hi)
        return y, ((y > lo) & (y < hi)).astype(x.dtype)
    if op == "Sigmoid":
        y = 1.0 / (1.0 + np.exp(-x))
        return y, y * (1 - y)
    if op == "Tanh":
        y = np.tanh(x)
        return y, 1 - y * y
    if op == "LeakyRelu":
        a = node.attrs.get("alpha", 0.01)
        return np.where(x < 0, a * x, x), np.where(x < 0, a, 1.0).astype(x.dtype)
    if op == "HardSigmoid":
        a, b = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
        z = a * x + b
        return np.clip(z, 0, 1), (((z > 0) & (z < 1)) * a).astype(x.dtype)  # a Python float: keep x's dtype
    if op == "HardSwish":
        r = np.clip(x / 6 + 0.5, 0, 1)
        return x * r, r + x * ((x > -3) & (x < 3)) / 6
    y, dydx = _math_forward(node, x, ins)
    return y, np.asarray(dydx, x.dtype)


def _math_forward(node: Node, x: np.ndarray, ins: list):
    """(y, dy/dx) of the elementwise math ops."""
    op = node.op
    if op == "Abs":
        return np.abs(x), np.sign(x)
    if op == "Neg":
        return -x, np.full_like(x, -1)
    if op == "Sqrt":
        y = np.sqrt(x)
        return y, 0.5 / y
    if op == "Exp":
        y = np.exp(x)
        return y, y
    if op == "Log":
        return np.log(x), 1 / x
    if op == "Reciprocal":
        y = 1 / x
        return y, -y * y
    if op == "Erf":
        return erf(x), 2 / np.sqrt(np.pi) * np.exp(-np.square(x, dtype=np.float64))
    if op == "Gelu":
        if gelu_approximate(node) == "tanh":
            k = np.sqrt(2 / np.pi)
            u = k * (x + 0.044715 * x ** 3)
            th = np.tanh(u)
            return 0.5 * x * (1 + th), 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 3 * 0.044715 * x * x)
        phi = np.exp(-0.5 * np.square(x, dtype=np.float64)) / np.sqrt(2 * np.pi)
        return gelu(x), 0.5 * (1 + erf(x / np.sqrt(2))) + x * phi
    p = float(np.asarray(ins[1]).reshape(-1)[0])  # Pow: a constant scalar (Network.__init__ checks)
    return np.power(x, p), p * np.power(x, p - 1)

