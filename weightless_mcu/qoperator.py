"""QOperator models in the QDQ form the quantized pass folds.

onnxruntime's quantizer writes a model in one of two forms: QDQ (QuantizeLinear /
DequantizeLinear pairs around float ops) or QOperator (QLinearConv, QLinearMatMul, and for
other ops its own com.microsoft ones: QGemm, QLinearAdd, QLinearAveragePool, ...). Each
QOperator op is, by its definition, DequantizeLinear on its inputs, the float op and
QuantizeLinear on its output; written that way, the model goes through the same pass as a QDQ
one (quantized.py) and gets the same int8 kernels. Ops that onnxruntime runs on int8 tensors
directly (MaxPool, Transpose, ...) keep the input's scale and zero point, so they become
DequantizeLinear -> op -> QuantizeLinear with those parameters; views (Reshape, Flatten, ...)
stay as they are and the pass gives their outputs the input's parameters.

The rewritten model is what the compiler reads; onnxruntime still runs the model as given.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import UnsupportedOpError

_MS = "com.microsoft"
# int8 ops of the ONNX standard, and the com.microsoft ones with a float op of the same name
STANDARD_QOPS = ("QLinearConv", "QLinearMatMul")
_STANDARD = set(STANDARD_QOPS)
_UNARY = {"QLinearSigmoid": "Sigmoid", "QLinearLeakyRelu": "LeakyRelu", "QLinearAveragePool": "AveragePool",
          "QLinearGlobalAveragePool": "GlobalAveragePool"}
_BINARY = {"QLinearAdd": "Add", "QLinearMul": "Mul"}
_CONTRIB = {"QGemm", "QLinearConcat", "QLinearSoftmax", "QuantizeLinear", "DequantizeLinear", *_UNARY, *_BINARY}
# ops onnxruntime runs on int8 tensors, whose output keeps the input's scale and zero point
SAME_PARAMS = ("MaxPool", "Transpose", "Pad", "Slice", "Split", "Resize", "Gather", "Tile", "Expand",
               "DepthToSpace", "SpaceToDepth", "GlobalMaxPool")
VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")


def _is_qoperator(node: onnx.NodeProto) -> bool:
    if node.domain in ("", "ai.onnx"):
        return node.op_type in _STANDARD
    return node.domain == _MS and node.op_type in _CONTRIB


def uses_qoperator(model: onnx.ModelProto) -> bool:
    return any(_is_qoperator(n) for n in model.graph.node)


class _Rewriter:
    def __init__(self, model: onnx.ModelProto):
        self.graph = model.graph
        self.consts = {i.name: i for i in self.graph.initializer}
        for n in self.graph.node:
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                value = next((a.t for a in n.attribute if a.name == "value"), None)
                if value is not None:
                    self.consts[n.output[0]] = value
        self.names = {i.name for i in self.graph.initializer} | {o for n in self.graph.node for o in n.output}
        self.names |= {i.name for i in self.graph.input}
        self.quant: dict[str, tuple[str, str]] = {}  # quantized tensor -> (scale, zero point) names
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, name: str, label: str) -> np.ndarray:
        if name not in self.consts:
            raise UnsupportedOpError(f"{label}: its scale '{name}' must be a constant")
        return numpy_helper.to_array(self.consts[name])

    def scalar(self, name: str, label: str) -> str:
        """A one-element constant as a 0-d one (per-tensor parameters, as DequantizeLinear wants them)."""
        if not name or self.const(name, label).ndim == 0 or self.const(name, label).size != 1:
            return name
        out = self.fresh(f"{name}_wl_scalar")
        self.inits.append(numpy_helper.from_array(self.const(name, label).reshape(()), out))
        self.consts[out] = self.inits[-1]
        return out

    def dq(self, x: str, scale: str, zp: str, label: str, axis: int | None = None) -> str:
        out = self.fresh(f"{x}_wl_dq")
        scale, zp = self.scalar(scale, label), self.scalar(zp, label)
        attrs = {"axis": axis} if axis is not None and self.const(scale, label).size > 1 else {}
        self.nodes.append(helper.make_node("DequantizeLinear", [x, scale, zp] if zp else [x, scale], [out],
                                           name=self.fresh(f"{label}_wl_dq"), **attrs))
        return out

    def q(self, y_float: str, scale: str, zp: str, y: str, label: str) -> None:
        scale, zp = self.scalar(scale, label), self.scalar(zp, label)
        self.nodes.append(helper.make_node("QuantizeLinear", [y_float, scale, zp] if zp else [y_float, scale], [y],
                                           name=self.fresh(f"{label}_wl_q")))
        self.quant[y] = (scale, zp)

    def float_op(self, op: str, inputs: list[str], label: str, attrs: dict, out: str | None = None) -> str:
        out = out or self.fresh(f"{label}_wl_float")
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.fresh(f"{label}_wl_{op}"), **attrs))
        return out

    def bias(self, b: str, scales: np.ndarray, label: str) -> str:
        """DequantizeLinear of an int32 bias at the accumulator's scale (zero point 0)."""
        s = self.fresh(f"{b}_wl_scale")
        arr = np.asarray(scales, np.float32)
        self.inits.append(numpy_helper.from_array(arr.reshape(()) if arr.size == 1 else arr.reshape(-1), s))
        self.consts[s] = self.inits[-1]
        return self.dq(b, s, "", label, axis=0)

    # one method per op: (node, label) -> None, appending the QDQ form
    def QLinearConv(self, n, label):
        x, xs, xz, w, ws, wz, ys, yz = list(n.input[:8])
        xf = self.dq(x, xs, xz, label)
        wf = self.dq(w, ws, wz, label, axis=0)
        ins = [xf, wf]
        if len(n.input) > 8 and n.input[8]:
            ins.append(self.bias(n.input[8], self.const(xs, label).astype(np.float32) * self.const(ws, label), label))
        self.q(self.float_op("Conv", ins, label, _attrs(n)), ys, yz, n.output[0], label)

    def QLinearMatMul(self, n, label):
        a, a_s, az, b, b_s, bz, ys, yz = list(n.input[:8])
        bf = self.dq(b, b_s, bz, label, axis=-1)
        self.q(self.float_op("MatMul", [self.dq(a, a_s, az, label), bf], label, {}), ys, yz, n.output[0], label)

    def QGemm(self, n, label):
        ins = list(n.input) + [""] * (9 - len(n.input))
        a, a_s, az, b, b_s, bz, c, ys, yz = ins[:9]
        attrs = _attrs(n)
        trans_b = attrs.get("transB", 0)
        gemm_in = [self.dq(a, a_s, az, label), self.dq(b, b_s, bz, label, axis=0 if trans_b else 1)]
        if c:  # int32 at alpha * a_scale * b_scale
            alpha = np.float32(attrs.get("alpha", 1.0))
            gemm_in.append(self.bias(c, alpha * self.const(a_s, label).astype(np.float32) * self.const(b_s, label), label))
        if ys:
            self.q(self.float_op("Gemm", gemm_in, label, attrs), ys, yz, n.output[0], label)
        else:  # float output
            self.float_op("Gemm", gemm_in, label, attrs, out=n.output[0])

    def QLinearConcat(self, n, label):
        ys, yz, rest = n.input[0], n.input[1], list(n.input[2:])
        if len(rest) % 3:
            raise UnsupportedOpError(f"{label}: QLinearConcat takes (tensor, scale, zero point) triples after Y's")
        parts = [self.dq(rest[k], rest[k + 1], rest[k + 2], label) for k in range(0, len(rest), 3)]
        self.q(self.float_op("Concat", parts, label, _attrs(n)), ys, yz, n.output[0], label)

    def QLinearSoftmax(self, n, label):
        x, xs, xz, ys, yz = list(n.input[:5])
        attrs = _attrs(n)
        axis = attrs.get("axis", -1)
        if attrs.get("opset", 13) < 13 and axis != -1:
            # before opset 13, Softmax works on the tensor flattened to 2-D at the axis: the same
            # as today's only on the last axis, and the rank is not known here
            raise UnsupportedOpError(f"{label}: QLinearSoftmax with the Softmax of opset {attrs['opset']} on axis "
                                     f"{axis} is not supported (on the last axis, -1, it is)")
        y = self.float_op("Softmax", [self.dq(x, xs, xz, label)], label, {"axis": axis})
        self.q(y, ys, yz, n.output[0], label)

    def QuantizeLinear(self, n, label):
        self.nodes.append(helper.make_node("QuantizeLinear", list(n.input), list(n.output), name=n.name, **_attrs(n)))
        self.quant[n.output[0]] = (n.input[1], n.input[2] if len(n.input) > 2 else "")

    def DequantizeLinear(self, n, label):
        self.nodes.append(helper.make_node("DequantizeLinear", list(n.input), list(n.output), name=n.name, **_attrs(n)))

    def unary(self, n, label):
        x, xs, xz, ys, yz = (list(n.input) + [""] * 5)[:5]
        attrs = _attrs(n)
        if attrs.pop("channels_last", 0):
            raise UnsupportedOpError(f"{label}: {n.op_type} with channels_last=1 is not supported (NCHW is)")
        y = self.float_op(_UNARY[n.op_type], [self.dq(x, xs, xz, label)], label, attrs)
        self.q(y, ys, yz, n.output[0], label)

    def binary(self, n, label):
        a, a_s, az, b, b_s, bz, ys, yz = (list(n.input) + [""] * 8)[:8]
        y = self.float_op(_BINARY[n.op_type], [self.dq(a, a_s, az, label), self.dq(b, b_s, bz, label)], label, {})
        self.q(y, ys, yz, n.output[0], label)

    def same_params(self, n, label):
        """An op onnxruntime runs on int8 directly: through float32 with the input's parameters."""
        scale, zp = self.quant[n.input[0]]
        ins = [self.dq(i, *self.quant[i], label) if i in self.quant else i for i in n.input]
        outs = [self.fresh(f"{o}_wl_float") if o else "" for o in n.output]
        self.nodes.append(helper.make_node(n.op_type, ins, outs, name=n.name, **_attrs(n)))
        if n.op_type == "MaxPool" and len(outs) > 1 and outs[1]:
            raise UnsupportedOpError(f"{label}: the Indices output of MaxPool is not supported")
        self.q(outs[0], scale, zp, n.output[0], label)

    def run(self) -> None:
        for i, n in enumerate(self.graph.node):
            label = n.name or f"{n.op_type}_{i}"
            if _is_qoperator(n):
                method = getattr(self, n.op_type, None)
                if method is None:
                    method = self.unary if n.op_type in _UNARY else self.binary
                method(n, label)
            elif n.domain in ("", "ai.onnx") and n.input and n.input[0] in self.quant and n.op_type in SAME_PARAMS:
                self.same_params(n, label)
            else:
                self.nodes.append(n)
                if n.domain not in ("", "ai.onnx"):
                    continue
                if n.op_type == "QuantizeLinear":
                    self.quant[n.output[0]] = (n.input[1], n.input[2] if len(n.input) > 2 else "")
                elif n.op_type in VIEWS and n.input and n.input[0] in self.quant:
                    self.quant[n.output[0]] = self.quant[n.input[0]]


def _attrs(n: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in n.attribute}


def to_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every QOperator op written as DequantizeLinear -> float op -> QuantizeLinear."""
    r = _Rewriter(model)
    r.run()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(r.nodes)
    out.graph.initializer.extend(r.inits)
    del out.graph.value_info[:]
    if not any(n.domain == _MS for n in out.graph.node):
        kept = [o for o in out.opset_import if o.domain != _MS]
        del out.opset_import[:]
        out.opset_import.extend(kept)
    return out
