"""Quantized (QDQ) models: QuantizeLinear / DequantizeLinear pairs around a float op
fold into one int8 op, as onnxruntime's QDQ fusion does.

A tensor written by a QuantizeLinear of a run-time tensor, or by an int8 op, is an int8
activation: `Tensor.dtype` "int8", `Tensor.quant` (scale, zero point). uint8 activations
are held as int8 with the zero point moved by -128, which is exact: u - zu = (u - 128) -
(zu - 128). What stays of the Q/DQ nodes becomes a quantize kernel (float -> int8) or a
dequantize kernel (int8 -> float).

Runs right after loading, before constant folding, so that weights behind a
DequantizeLinear are still the integers the model stored.
"""
from __future__ import annotations

import numpy as np

from .errors import UnsupportedOpError
from .ir import Graph, Node, Tensor
from .op_semantics import clip_bounds

# Internal ops (lowering.INTERNAL_OPS): a fully connected layer and a convolution on int8
# activations and weights, int32 bias.
QFC = "QLinearFc"
QCONV = "QLinearConvS8"
# ... and ops on int8 tensors computed through float32 as onnxruntime's QDQ path does: Add, Sub,
# Mul or Div of two int8 tensors (broadcasting), and pooling.
QBINARY = "QLinearBinaryS8"
QPOOL = "QLinearPoolS8"
# ... an elementwise op on an int8 tensor, as a table of its 256 results, and Concat of int8
# tensors (each input copied, or looked up in its table when its parameters are not the output's).
QLUT = "QLinearLutS8"
QCONCAT = "QLinearConcatS8"
# ... and Softmax or LogSoftmax of an int8 tensor, to int8 or (the model's output, say) float32.
QSOFTMAX = "QLinearSoftmaxS8"
# Elementwise ops of one tensor (besides constant operands) that become a table.
LUT_OPS = ("Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Relu", "Clip", "Elu", "Selu", "Celu",
           "Softplus", "Softsign", "Mish", "Gelu", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Neg", "Abs", "Sin",
           "Cos", "Identity", "ThresholdedRelu", "Sign", "Round", "Floor", "Ceil")
# ... and the edge of a uint8 model input or output: uint8 <-> int8 by flipping the sign bit.
QSIGN = "FlipSignS8"
_POOLS = ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool")
BINARY_S8_OPS = ("Add", "Sub", "Mul", "Div")

_QTYPES = {"int8": (-128, 127, 0), "uint8": (0, 255, -128)}  # range, shift to int8


def _scalar(graph: Graph, name: str):
    v = graph.const(name) if name else None
    if v is None or v.size != 1:
        return None
    return v.reshape(-1)[0]


def q_params(graph: Graph, node: Node) -> tuple[float, int, str] | None:
    """(scale, zero point as int8, stored type) of a per-tensor Q or DQ node, or None."""
    scale = _scalar(graph, node.inputs[1])
    zp_name = node.inputs[2] if len(node.inputs) > 2 else ""
    zp = _scalar(graph, zp_name) if zp_name else 0
    if scale is None or zp is None:
        return None
    qtype = graph.tensors[zp_name].dtype if zp_name else "uint8"
    if "output_dtype" in node.attrs and node.attrs["output_dtype"]:
        raise UnsupportedOpError(f"{node.describe()}: output_dtype is not supported; give the type by the zero point")
    if qtype not in _QTYPES:
        raise UnsupportedOpError(f"{node.describe()}: {qtype} quantization is not supported (int8 and uint8 are)")
    return float(np.float32(scale)), int(zp) + _QTYPES[qtype][2], qtype


def _weight_dq(graph: Graph, name: str, producers: dict[str, Node]):
    """(int8 weights less their zero points, per-output or per-tensor scales, axis) of a
    DequantizeLinear of a constant int8 or uint8 tensor, or None. Zero points other than 0 (uint8
    weights, say) are taken when every weight less its zero point fits int8: then the layer is
    the same with those differences as int8 weights and zero points 0."""
    dq = producers.get(name)
    if dq is None or dq.op != "DequantizeLinear":
        return None
    w = graph.tensors.get(dq.inputs[0])
    if w is None or not w.is_const or w.dtype not in ("int8", "uint8") or w.data.ndim < 2:
        return None
    scale = graph.const(dq.inputs[1])
    zp = graph.const(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else np.zeros(1, np.int64)
    if scale is None or zp is None or dq.attrs.get("block_size", 0):
        return None
    axis = dq.attrs.get("axis", 1) % w.data.ndim
    zp = np.asarray(zp, np.int64).reshape(-1)
    if zp.size not in (1, w.data.shape[axis]):
        return None
    shape = [1] * w.data.ndim
    shape[axis] = zp.size
    data = w.data.astype(np.int64) - (zp.reshape(shape) if zp.size > 1 else zp[0])
    if data.min(initial=0) < -128 or data.max(initial=0) > 127:
        return None
    return data, np.asarray(scale, np.float32).reshape(-1), axis


def _bias_dq(graph: Graph, name: str, producers: dict[str, Node], scale: np.ndarray):
    """int32 bias of a DequantizeLinear whose scale is the input's times the weights' (the
    accumulator's scale, as quantizers write it), or None."""
    dq = producers.get(name)
    if dq is None or dq.op != "DequantizeLinear":
        return None
    b = graph.tensors.get(dq.inputs[0])
    zp = graph.const(dq.inputs[2]) if len(dq.inputs) > 2 and dq.inputs[2] else np.zeros(1, np.int64)
    b_scale = graph.const(dq.inputs[1])
    if b is None or not b.is_const or b.dtype != "int32" or zp is None or np.any(zp != 0) or b_scale is None:
        return None
    if not np.allclose(np.asarray(b_scale, np.float64).reshape(-1), scale, rtol=1e-6, atol=0):
        return None
    return b.data.reshape(-1)


def _float_bias(graph: Graph, name: str, acc_scale: np.ndarray):
    """A float32 bias constant (tflite2onnx dequantizes the int32 bias of TFLite) as int32 at the
    accumulator's scale, or None when it does not fit. A bias made from int32 at that scale comes
    back exactly; another is rounded to it, a difference below half a step of the sum, which the
    requantization may carry into one output step now and then (within verify's rule)."""
    data = graph.const(name)
    if data is None or graph.tensors[name].dtype != "float32":
        return None
    data = np.asarray(data, np.float64).reshape(-1)
    if data.size not in (1, acc_scale.size):
        return None
    q = np.rint(data / acc_scale)
    if not np.all(np.isfinite(q)) or np.abs(q).max(initial=0) >= 2 ** 31:
        return None
    return q.astype(np.int64)


def _only_consumer(graph: Graph, tensor: str, consumers) -> Node | None:
    uses = consumers.get(tensor, [])
    return uses[0] if len(uses) == 1 and tensor not in graph.outputs else None


def fold_qdq(graph: Graph) -> None:
    """Mark int8 activations and fold DQ -> Gemm/MatMul -> [Relu] -> Q into QLinearFc."""
    if not graph.io_dtypes and not any(n.op == "QuantizeLinear" for n in graph.nodes):
        return
    _quantize_constants(graph)
    _int8_io(graph)
    for node in graph.nodes:
        src, t = graph.tensors.get(node.inputs[0]), graph.tensors.get(node.outputs[0])
        if node.op != "QuantizeLinear" or src is None or src.is_const or t is None:
            continue  # a tensor without a shape yet stays as it is; lowering then refuses the node
        params = q_params(graph, node)
        if params is None:
            raise UnsupportedOpError(f"{node.describe()}: only per-tensor quantization of activations is supported")
        t.dtype, t.quant = "int8", params[:2]
    _int8_views(graph)
    producers, consumers = graph.producers(), graph.consumers()
    for node in list(graph.nodes):
        if node.op in ("Gemm", "MatMul"):
            fused = _fc_pattern(graph, node, producers, consumers)
        elif node.op == "Conv":
            fused = _conv_pattern(graph, node, producers, consumers)
        elif node.op in BINARY_S8_OPS or node.op in _POOLS:
            fused = _float_op_pattern(graph, node, producers, consumers)
        elif node.op in LUT_OPS:
            fused = _lut_pattern(graph, node, producers, consumers)
        elif node.op == "Concat":
            fused = _concat_pattern(graph, node, producers, consumers)
        elif node.op in _VIEWS:
            fused = _view_pattern(graph, node, producers, consumers)
        elif node.op in ("Softmax", "LogSoftmax"):
            fused = _softmax_pattern(graph, node, producers, consumers)
        else:
            continue
        if fused is None:
            continue
        new, removed = fused
        graph.nodes[graph.nodes.index(node)] = new
        for r in removed:
            graph.nodes.remove(r)
        producers, consumers = graph.producers(), graph.consumers()
        out = graph.tensors[new.outputs[0]]
        if new.attrs["y_quant"] is not None:  # None: a float32 output (Softmax)
            out.dtype, out.quant = "int8", new.attrs["y_quant"]
        if new.op in _VIEWS:  # an ONNX op again, with its own attributes only
            del new.attrs["y_quant"]
    graph.prune()
    _int8_outputs_checked(graph)
    _refuse_float_ops_on_int8(graph)


def _quantize_constants(graph: Graph) -> None:
    """QuantizeLinear of a float constant (weights stored in float32 behind a Q/DQ pair, as
    tflite2onnx writes them) becomes the integer constant it makes, as onnxruntime computes it
    (a float32 division, half to even, the zero point added, saturated), so that the layer
    after the DequantizeLinear sees int8 weights."""
    for node in [n for n in graph.nodes if n.op == "QuantizeLinear"]:
        x, scale = graph.const(node.inputs[0]), graph.const(node.inputs[1])
        zp_name = node.inputs[2] if len(node.inputs) > 2 else ""
        zp = graph.const(zp_name) if zp_name else np.zeros((), np.int64)
        qtype = graph.tensors[zp_name].dtype if zp_name else "uint8"
        if x is None or scale is None or zp is None or qtype not in _QTYPES or node.attrs.get("block_size", 0):
            continue
        x = np.asarray(x, np.float32)
        scale, zp = np.asarray(scale, np.float32), np.asarray(zp, np.int64)
        if scale.size > 1:  # per axis
            view = [1] * x.ndim
            view[node.attrs.get("axis", 1) % max(1, x.ndim)] = scale.size
            scale, zp = scale.reshape(view), zp.reshape(view)
        lo, hi, _ = _QTYPES[qtype]
        q = np.clip(np.rint((x / scale).astype(np.float32)).astype(np.int64) + zp, lo, hi)
        out = node.outputs[0]
        graph.tensors[out] = Tensor(out, tuple(q.shape), q.astype(np.int64), qtype)
        graph.nodes.remove(node)


def _int8_io(graph: Graph) -> None:
    """int8 and uint8 model inputs and outputs. An input takes the parameters of the
    DequantizeLinear nodes it goes to. uint8 ones are converted at the edge: the kernels hold
    uint8 as int8 less 128 (the sign bit flipped, QSIGN), so a uint8 input is flipped into
    the arena first and a uint8 output flipped from it last."""
    consumers = graph.consumers()
    for name in [i for i in graph.inputs if graph.io_dtypes.get(i, "float32") != "float32"]:
        kind, uses = graph.io_dtypes[name], consumers.get(name, [])
        params = set()
        for n in uses:
            if n.op != "DequantizeLinear":
                raise UnsupportedOpError(f"input '{name}' ({kind}) goes to {n.describe()}; such an input must go to "
                                         f"DequantizeLinear nodes (or a QOperator op)")
            given = q_params(graph, n)
            if given is None:
                raise UnsupportedOpError(f"{n.describe()}: only per-tensor dequantization of an input is supported")
            params.add(given[:2])
        if len(params) > 1:
            raise UnsupportedOpError(f"input '{name}' is dequantized with {len(params)} different scales or zero points")
        t = graph.tensors[name]
        quant = params.pop() if params else (1.0, 0)
        if kind == "int8":
            t.dtype, t.quant = "int8", quant
            continue
        inner = f"{name}_wl_int8"
        graph.tensors[inner] = Tensor(inner, t.shape, None, "int8", quant)
        for n in uses:
            n.inputs = [inner if i == name else i for i in n.inputs]
        graph.nodes.insert(0, Node(QSIGN, f"{name}_to_int8", [name], [inner]))
    for name in [o for o in graph.outputs if graph.io_dtypes.get(o) == "uint8"]:
        inner = f"{name}_wl_int8"
        t = graph.tensors.get(name)
        graph.tensors[inner] = Tensor(inner, t.shape if t is not None else (), None)
        for n in graph.nodes:
            n.inputs = [inner if i == name else i for i in n.inputs]
            n.outputs = [inner if o == name else o for o in n.outputs]
        graph.nodes.append(Node(QSIGN, f"{name}_to_uint8", [inner], [name]))


def _int8_outputs_checked(graph: Graph) -> None:
    for name in graph.outputs:
        kind = graph.io_dtypes.get(name, "float32")
        src = graph.producers().get(name)
        produced = graph.tensors.get(src.inputs[0] if src is not None and src.op == QSIGN else name)
        if kind != "float32" and (produced is None or produced.dtype != "int8"):
            raise UnsupportedOpError(f"output '{name}' is {kind} but not written by a QuantizeLinear or an int8 op")
        if kind == "uint8":
            graph.tensors[name].dtype = "uint8"


# Views of an int8 tensor (a QOperator model flattens its int8 tensors directly) are int8 with
# its parameters; they cost no code.
_VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
_TAKE_INT8 = (*_VIEWS, "DequantizeLinear", "Shape", QFC, QCONV, QBINARY, QPOOL, QSIGN, QLUT, QCONCAT, QSOFTMAX)


def _int8_views(graph: Graph) -> None:
    for node in graph.nodes:  # in order: a view of a view follows its input
        src, out = graph.tensors.get(node.inputs[0]) if node.inputs else None, graph.tensors.get(node.outputs[0])
        if node.op in _VIEWS and src is not None and src.dtype == "int8" and not src.is_const and out is not None:
            out.dtype, out.quant = "int8", src.quant


def _refuse_float_ops_on_int8(graph: Graph) -> None:
    for node in graph.nodes:
        for name in node.inputs:
            t = graph.tensors.get(name)
            if t is not None and t.dtype == "int8" and not t.is_const and node.op not in _TAKE_INT8:
                raise UnsupportedOpError(f"{node.describe()}: takes the int8 tensor '{name}' directly; int8 tensors "
                                         f"go to DequantizeLinear, a view or a quantized layer")


def _fc_pattern(graph: Graph, node: Node, producers, consumers):
    x_q = _int8_input(graph, node.inputs[0], producers)
    if x_q is None or node.outputs[0] not in graph.tensors or len(x_q.shape) != 2:
        return None
    if node.op == "Gemm":
        if node.attrs.get("transA", 0) or node.attrs.get("alpha", 1.0) != 1.0 or node.attrs.get("beta", 1.0) != 1.0:
            return None
        trans_b = bool(node.attrs.get("transB", 0))
    else:
        trans_b = False
    weights = _weight_dq(graph, node.inputs[1], producers)
    if weights is None:
        return None
    w, w_scale, axis = weights
    if w.ndim != 2:
        return None
    rows = w if trans_b else w.T  # (out, in)
    n_out = rows.shape[0]
    out_axis = 0 if trans_b else 1
    if w_scale.size not in (1, n_out) or (w_scale.size > 1 and axis != out_axis):
        return None
    bias_name = node.inputs[2] if node.op == "Gemm" and len(node.inputs) > 2 else ""
    return _int8_layer(graph, node, QFC, x_q, rows, w_scale, bias_name, {}, producers, consumers)


def _const_name(graph: Graph, name: str, data: np.ndarray, dtype: str) -> str:
    graph.tensors[name] = Tensor(name, tuple(data.shape), np.asarray(data, np.int64), dtype)
    return name


def _next_quantize(graph: Graph, tensor: str, consumers):
    """The per-tensor QuantizeLinear that is the only reader of tensor, with its (scale, zero
    point), or None."""
    tail = _only_consumer(graph, tensor, consumers)
    if tail is None or tail.op != "QuantizeLinear":
        return None
    y_params = q_params(graph, tail)
    return None if y_params is None else (tail, y_params[:2])


def _output_quantize(graph: Graph, node: Node, consumers):
    """The QuantizeLinear a layer's output goes to, through at most one Relu or Clip:
    (nodes to remove, real clamp bounds, (scale, zero point), the QuantizeLinear), or None."""
    act_real = (float("-inf"), float("inf"))
    out = node.outputs[0]
    act = _only_consumer(graph, out, consumers)
    removed = []
    if act is not None and act.op in ("Relu", "Clip"):
        act_real = clip_bounds(graph, act)
        if act_real is None:
            return None
        removed.append(act)
        out = act.outputs[0]
    found = _next_quantize(graph, out, consumers)
    if found is None:
        return None
    tail, y_quant = found
    removed.append(tail)
    return removed, act_real, y_quant, tail


def _conv_pattern(graph: Graph, node: Node, producers, consumers):
    x_q = _int8_input(graph, node.inputs[0], producers)
    if x_q is None or node.outputs[0] not in graph.tensors or len(x_q.shape) not in (3, 4):
        return None
    weights = _weight_dq(graph, node.inputs[1], producers)
    if weights is None:
        return None
    w, w_scale, axis = weights
    n_out = w.shape[0]
    if w.ndim != len(x_q.shape) or w_scale.size not in (1, n_out) or (w_scale.size > 1 and axis != 0):
        return None
    attrs = dict(node.attrs)  # strides, pads, dilations, group, auto_pad, kernel_shape
    return _int8_layer(graph, node, QCONV, x_q, w, w_scale, node.inputs[2] if len(node.inputs) > 2 else "", attrs,
                       producers, consumers)


def _int8_layer(graph: Graph, node: Node, op: str, x_q: Tensor, w: np.ndarray, w_scale: np.ndarray, bias_name: str,
                attrs: dict, producers, consumers):
    """The int8 node of a layer whose input and weights (output channels first) passed: its
    int32 bias behind a DequantizeLinear at the accumulator's scale (or none), and the
    QuantizeLinear after it; None where either is not there."""
    n_out = w.shape[0]
    w_scale = np.broadcast_to(w_scale, (n_out,)).astype(np.float32)
    b = np.zeros(n_out, np.int64)
    if bias_name:
        acc_scale = np.float64(x_q.quant[0]) * w_scale.astype(np.float64)
        bias = _bias_dq(graph, bias_name, producers, acc_scale)
        if bias is None:
            bias = _float_bias(graph, bias_name, acc_scale)
        if bias is None or bias.size not in (1, n_out):
            return None
        b = np.broadcast_to(bias, (n_out,)).astype(np.int64)
    end = _output_quantize(graph, node, consumers)
    if end is None:
        return None
    removed, act_real, y_quant, tail = end
    attrs = {**attrs, "x_quant": x_q.quant, "y_quant": y_quant, "w_scale": w_scale, "act_real": act_real}
    inputs = [x_q.name, _const_name(graph, node.name + "_wl_q_weight", np.ascontiguousarray(w), "int8"),
              _const_name(graph, node.name + "_wl_q_bias", b, "int32")]
    return Node(op, node.name, inputs, list(tail.outputs), attrs), removed


def _int8_input(graph: Graph, name: str, producers):
    """The int8 tensor behind DequantizeLinear(name) with its own parameters, or None."""
    dq = producers.get(name)
    x_q = graph.tensors.get(dq.inputs[0]) if dq is not None and dq.op == "DequantizeLinear" else None
    if x_q is None or x_q.dtype != "int8":
        return None
    given = q_params(graph, dq)
    return x_q if given is not None and given[:2] == x_q.quant else None


def _int8_constant(graph: Graph, name: str, producers) -> Tensor | None:
    """The int8 constant behind a per-tensor DequantizeLinear(name) of a constant int8 or uint8
    tensor (an operand a quantizer stored that way: Mul by a constant, say), as a constant int8
    tensor with its parameters (uint8 moved by -128, as activations are), or None."""
    dq = producers.get(name)
    src = graph.tensors.get(dq.inputs[0]) if dq is not None and dq.op == "DequantizeLinear" else None
    if src is None or not src.is_const or src.dtype not in _QTYPES or dq.attrs.get("block_size", 0):
        return None
    given = q_params(graph, dq)
    if given is None:
        return None
    inner = f"{dq.name}_wl_int8"
    data = np.asarray(src.data, np.int64) + _QTYPES[src.dtype][2]
    graph.tensors[inner] = Tensor(inner, tuple(data.shape), data, "int8", given[:2])
    return graph.tensors[inner]


def _float_op_pattern(graph: Graph, node: Node, producers, consumers):
    """DequantizeLinear -> Add | Sub | Mul | Div (broadcasting; one operand may be a constant
    behind its own DequantizeLinear) or pooling -> [Relu | Clip] -> QuantizeLinear."""
    if node.outputs[0] not in graph.tensors or (len(node.outputs) > 1 and node.outputs[1]):
        return None
    n_in = 2 if node.op in BINARY_S8_OPS else 1
    if len(node.inputs) != n_in:
        return None
    ins = [_int8_input(graph, i, producers) for i in node.inputs]
    if n_in == 2 and sum(t is None for t in ins) == 1:
        k = ins.index(None)
        ins[k] = _int8_constant(graph, node.inputs[k], producers)
    if any(t is None for t in ins):
        return None
    end = _output_quantize(graph, node, consumers)
    if end is None:
        return None
    removed, act_real, y_quant, tail = end
    attrs = {**node.attrs, "wl_pool_op": node.op, "in_quant": tuple(t.quant for t in ins), "y_quant": y_quant,
             "act_real": act_real}
    op = QBINARY if node.op in BINARY_S8_OPS else QPOOL
    return Node(op, node.name, [t.name for t in ins], list(tail.outputs), attrs), removed


def int8_table(graph: Graph, chain: list[Node], x_quant: tuple[float, int], y_quant: tuple[float, int]) -> np.ndarray:
    """The 256 int8 results of DequantizeLinear -> chain -> QuantizeLinear, one per int8 input,
    as onnxruntime computes them: the table is the op as the reference runs it, rounding included
    (a C sigmoid would differ from onnxruntime's in the last bit, and so in an output step now
    and then). uint8 tensors are held as int8 here with their zero points moved by -128, which
    gives the same reals and the same steps."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(x_quant[0], np.float32), "wl_xs"),
             numpy_helper.from_array(np.array(x_quant[1], np.int8), "wl_xz"),
             numpy_helper.from_array(np.array(y_quant[0], np.float32), "wl_ys"),
             numpy_helper.from_array(np.array(y_quant[1], np.int8), "wl_yz")]
    nodes = [helper.make_node("DequantizeLinear", ["wl_v", "wl_xs", "wl_xz"], ["wl_f0"])]
    for k, n in enumerate(chain):
        ins = [f"wl_f{k}"]
        for j, name in enumerate(n.inputs[1:]):
            if name:
                data = graph.const(name)
                inits.append(numpy_helper.from_array(np.asarray(data, np.float32 if graph.tensors[name].dtype == "float32"
                                                                else graph.tensors[name].dtype), f"wl_c{k}_{j}"))
            ins.append(f"wl_c{k}_{j}" if name else "")
        attrs = {a: v for a, v in n.attrs.items() if not a.startswith("wl_")}
        nodes.append(helper.make_node(n.op, ins, [f"wl_f{k + 1}"], **attrs))
    nodes.append(helper.make_node("QuantizeLinear", [f"wl_f{len(chain)}", "wl_ys", "wl_yz"], ["wl_q"]))
    model = helper.make_model(
        helper.make_graph(nodes, "table", [helper.make_tensor_value_info("wl_v", TensorProto.INT8, [256])],
                          [helper.make_tensor_value_info("wl_q", TensorProto.INT8, [256])], inits),
        opset_imports=[helper.make_opsetid("", graph.opset)])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # as verify's reference runs
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        (out,) = sess.run(None, {"wl_v": np.arange(-128, 128, dtype=np.int8)})
    except Exception as exc:  # an op onnxruntime cannot run this way: the caller keeps it in float32
        raise _NoTable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return np.asarray(out, np.int8)


class _NoTable(Exception):
    pass


def _lut_pattern(graph: Graph, node: Node, producers, consumers):
    """DequantizeLinear -> an elementwise op [-> Relu | Clip] -> QuantizeLinear: one table lookup."""
    x_q = _int8_input(graph, node.inputs[0], producers)
    if x_q is None or node.outputs[0] not in graph.tensors or len(node.outputs) != 1:
        return None
    if any(name and graph.const(name) is None for name in node.inputs[1:]):
        return None
    end = _output_quantize(graph, node, consumers)
    if end is None:
        return None
    removed, _, y_quant, tail = end
    chain = [node, *removed[:-1]]  # the op and the Relu or Clip after it, computed into the table
    try:
        table = int8_table(graph, chain, x_q.quant, y_quant)
    except (_NoTable, ValueError, TypeError):  # kept in float32 between dequantize and quantize steps
        return None
    attrs = {"table": table, "y_quant": y_quant, "wl_ops": tuple(n.op for n in chain)}
    return Node(QLUT, node.name, [x_q.name], list(tail.outputs), attrs), removed


def _concat_pattern(graph: Graph, node: Node, producers, consumers):
    """DequantizeLinear of int8 tensors -> Concat -> QuantizeLinear: the inputs copied, each
    through the table of DequantizeLinear -> QuantizeLinear where its parameters differ."""
    names = [i for i in node.inputs if i]
    ins = [_int8_input(graph, i, producers) for i in names]
    if not ins or any(t is None for t in ins) or node.outputs[0] not in graph.tensors:
        return None
    found = _next_quantize(graph, node.outputs[0], consumers)
    if found is None:
        return None
    tail, y_quant = found
    try:
        tables = tuple(None if t.quant == y_quant else int8_table(graph, [], t.quant, y_quant) for t in ins)
    except _NoTable:
        return None
    attrs = {"axis": node.attrs.get("axis", 0), "tables": tables, "y_quant": y_quant}
    return Node(QCONCAT, node.name, [t.name for t in ins], list(tail.outputs), attrs), [tail]


def _view_pattern(graph: Graph, node: Node, producers, consumers):
    """DequantizeLinear -> Reshape | Flatten | Squeeze | Unsqueeze -> QuantizeLinear with the same
    parameters (the QDQ form of a view): the view of the int8 tensor, at no cost."""
    x_q = _int8_input(graph, node.inputs[0], producers)
    if x_q is None or node.outputs[0] not in graph.tensors:
        return None
    found = _next_quantize(graph, node.outputs[0], consumers)
    if found is None or found[1] != x_q.quant:
        return None
    tail = found[0]
    attrs = {**node.attrs, "y_quant": x_q.quant}
    return Node(node.op, node.name, [x_q.name, *node.inputs[1:]], list(tail.outputs), attrs), [tail]


def _softmax_pattern(graph: Graph, node: Node, producers, consumers):
    """DequantizeLinear -> Softmax | LogSoftmax [-> QuantizeLinear]: of the int8 tensor, to int8
    or, without a QuantizeLinear after it, to float32 (a classifier's output)."""
    x_q = _int8_input(graph, node.inputs[0], producers)
    if x_q is None or node.outputs[0] not in graph.tensors:
        return None
    attrs = {"axis": node.attrs.get("axis", -1), "log": int(node.op == "LogSoftmax"), "x_quant": x_q.quant,
             "y_quant": None}
    tail = _only_consumer(graph, node.outputs[0], consumers)
    if tail is not None and tail.op == "QuantizeLinear":
        y_params = q_params(graph, tail)
        if y_params is None:
            return None
        return Node(QSOFTMAX, node.name, [x_q.name], list(tail.outputs), {**attrs, "y_quant": y_params[:2]}), [tail]
    return Node(QSOFTMAX, node.name, [x_q.name], list(node.outputs), attrs), []
