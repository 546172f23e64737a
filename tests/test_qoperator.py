"""QOperator models (QLinearConv, QLinearMatMul and onnxruntime's com.microsoft int8 ops) as
onnxruntime's quantizer writes them: read in their QDQ form, compiled to the int8 kernels, and
equal to onnxruntime running the model as given."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

from weightless_mcu import verify
from weightless_mcu.errors import UnsupportedOpError
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.qoperator import to_qdq, uses_qoperator

from .conftest import make_model, rand
from .test_quantized import _Calibration

H = helper.make_node


def _float_cnn(tmp_path, opset):
    """Every op the quantizer writes a QOperator op for: convolutions (general, depthwise,
    pointwise), Add, AveragePool, Sigmoid, Concat, GlobalAveragePool, Gemm, MatMul, Softmax; and
    MaxPool and Flatten, which it leaves on the int8 tensors."""
    nodes = [H("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), H("Relu", ["c1"], ["r1"]),
             H("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=4), H("Add", ["c2", "r1"], ["a"]),
             H("MaxPool", ["a"], ["m"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             H("AveragePool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             H("Conv", ["p", "w3", "b3"], ["c3"]), H("Sigmoid", ["c3"], ["s"]), H("Concat", ["s", "p"], ["cc"], axis=1),
             H("GlobalAveragePool", ["cc"], ["g"]), H("Flatten", ["g"], ["f"]),
             H("Gemm", ["f", "w4", "b4"], ["y0"], transB=1), H("MatMul", ["y0", "w5"], ["y1"]), H("Softmax", ["y1"], ["y"])]
    inits = {"w1": rand(4, 3, 3, 3, seed=1, scale=0.3), "b1": rand(4, seed=2, scale=0.1),
             "w2": rand(4, 1, 3, 3, seed=3, scale=0.3), "b2": rand(4, seed=4, scale=0.1),
             "w3": rand(6, 4, 1, 1, seed=5, scale=0.3), "b3": rand(6, seed=6, scale=0.1),
             "w4": rand(8, 10, seed=7, scale=0.3), "b4": rand(8, seed=8, scale=0.1), "w5": rand(8, 5, seed=9, scale=0.3)}
    return make_model(tmp_path / f"cnn{opset}.onnx", nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 5]}, inits, opset=opset)


def _qoperator(tmp_path, opset=13, activations=QuantType.QInt8, weights=QuantType.QInt8, per_channel=True):
    out = tmp_path / f"qop{opset}_{activations.name}_{weights.name}_{int(per_channel)}.onnx"
    quantize_static(str(_float_cnn(tmp_path, opset)), str(out), _Calibration((1, 3, 8, 8), 16),
                    quant_format=QuantFormat.QOperator, per_channel=per_channel, activation_type=activations,
                    weight_type=weights)
    return out


def test_the_quantizer_writes_the_ops_this_file_is_about(tmp_path):
    ops = {(n.domain, n.op_type) for n in onnx.load(_qoperator(tmp_path)).graph.node}
    assert {("", "QLinearConv"), ("", "QLinearMatMul"), ("com.microsoft", "QGemm"), ("com.microsoft", "QLinearAdd"),
            ("com.microsoft", "QLinearAveragePool"), ("com.microsoft", "QLinearGlobalAveragePool"),
            ("com.microsoft", "QLinearConcat"), ("com.microsoft", "QLinearSigmoid"),
            ("com.microsoft", "QLinearSoftmax"), ("", "MaxPool")} <= ops


@pytest.mark.parametrize("opset,activations", [(13, QuantType.QInt8), (13, QuantType.QUInt8), (11, QuantType.QUInt8)])
def test_the_qdq_form_computes_what_onnxruntime_computes_on_the_qoperator_model(tmp_path, opset, activations):
    """The rewrite checked against onnxruntime alone: both forms run by onnxruntime give the
    same integers (the compiler is not involved)."""
    model, _ = load_model(_qoperator(tmp_path, opset, activations))  # upgraded to opset 13 as the compiler reads it
    assert uses_qoperator(model)
    qdq = to_qdq(model)
    assert not uses_qoperator(qdq) and all(n.domain in ("", "ai.onnx") for n in qdq.graph.node)
    onnx.checker.check_model(qdq)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    a = ort.InferenceSession(model.SerializeToString(), opts)
    b = ort.InferenceSession(qdq.SerializeToString(), opts)
    for i in range(16):
        x = {"x": rand(1, 3, 8, 8, seed=300 + i, scale=1.5)}
        np.testing.assert_array_equal(a.run(None, x)[0], b.run(None, x)[0])


@pytest.mark.parametrize("opset,activations", [(13, QuantType.QInt8), (13, QuantType.QUInt8), (11, QuantType.QUInt8)])
def test_qoperator_cnn_on_the_host_gives_onnxruntimes_outputs_exactly(tmp_path, opset, activations):
    res = verify(_qoperator(tmp_path, opset, activations), target="host", samples=48)
    assert res["match"] and res["max_lsb_error"] == 0 and res["lsb_differing_share"] == 0.0, res
    kernels = [s["kernel"] for s in res["steps"]]
    # the layers, Add and pooling (MaxPool included) run as int8 kernels; Sigmoid, Concat and
    # Softmax through float32 between dequantize and quantize steps
    assert kernels.count("conv2d_s8") == 2 and kernels.count("depthwise_conv2d_s8") == 1, kernels
    assert kernels.count("fc_s8") == 2 and kernels.count("add_s8") == 1 and kernels.count("pool2d_s8") == 3, kernels
    assert not {"conv2d", "fc", "pool2d", "binary"} & set(kernels), kernels


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_qoperator_cnn_under_qemu_gives_onnxruntimes_outputs_exactly(tmp_path, target):
    res = verify(_qoperator(tmp_path, 13, QuantType.QInt8), target=target, samples=8)
    assert res["match"] and res["max_lsb_error"] == 0, res
    assert res["instructions"] > 0


def _uint8_weights_conv(tmp_path, w_zero_point: int):
    """x -> QuantizeLinear (uint8) -> QLinearConv with uint8 weights at a zero point -> DequantizeLinear."""
    rng = np.random.default_rng(5)
    w = rng.integers(max(0, w_zero_point - 127), min(255, w_zero_point + 127) + 1, (6, 3, 3, 3)).astype(np.uint8)
    w[0, 0, 0, 0] = 0  # the lowest and highest the type holds, when the zero point allows them
    w[0, 0, 0, 1] = 255 if w_zero_point >= 128 else w[0, 0, 0, 1]
    consts = {"xs": np.array(0.02, np.float32), "xz": np.array(131, np.uint8), "w": w,
              "ws": np.array(0.004, np.float32), "wz": np.array(w_zero_point, np.uint8),
              "ys": np.array(0.05, np.float32), "yz": np.array(120, np.uint8),
              "b": rng.integers(-2000, 2000, 6).astype(np.int32)}
    nodes = [H("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             H("QLinearConv", ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["yq"], pads=[1, 1, 1, 1]),
             H("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 6, 6])],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"u8w_{w_zero_point}.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("w_zero_point,int8_layer", [(128, True), (200, False)])
def test_uint8_weights_with_a_zero_point_stay_int8_where_they_fit(tmp_path, w_zero_point, int8_layer):
    """uint8 weights: when every weight less its zero point fits int8 (zero point 128), the layer
    runs as an int8 one with those differences; when not (zero point 200, weights down to 0),
    in float32 on the dequantized weights. Either way the outputs equal onnxruntime's."""
    model = _uint8_weights_conv(tmp_path, w_zero_point)
    _, graph = load_model(model)
    run_passes(graph)
    assert ("QLinearConvS8" in [n.op for n in graph.nodes]) == int8_layer
    res = verify(model, target="host", samples=32)
    assert res["match"] and res["max_lsb_error"] == 0, res
    assert ("conv2d_s8" in [s["kernel"] for s in res["steps"]]) == int8_layer


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "weightless_mcu", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_an_unknown_com_microsoft_op_is_one_line_naming_it_exit_3(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [H("QuantizeLinear", ["x", "s", "z"], ["q"]),
             H("QLinearReduceMean", ["q", "s", "z", "s", "z"], ["r"], name="odd_one", domain="com.microsoft"),
             H("DequantizeLinear", ["r", "s", "z"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    proc = _cli("compile", tmp_path / "m.onnx", "--target", "host", "-o", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "odd_one" in proc.stderr and "QLinearReduceMean" in proc.stderr and "com.microsoft" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_float_op_on_an_int8_tensor_is_refused_naming_the_node(tmp_path):
    # Relu takes int8 from opset 14: a model may apply it to a quantized tensor directly
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [H("QuantizeLinear", ["x", "s", "z"], ["q"]), H("Relu", ["q"], ["r"], name="int8_relu"),
             H("DequantizeLinear", ["r", "s", "z"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "s"), numpy_helper.from_array(np.array(3, np.int8), "z")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    _, graph = load_model(tmp_path / "m.onnx")
    with pytest.raises(UnsupportedOpError, match="int8_relu.*takes the int8 tensor 'q' directly"):
        run_passes(graph)


def test_an_old_softmax_on_another_axis_than_the_last_is_refused(tmp_path):
    model = onnx.load(_qoperator(tmp_path, 11, QuantType.QUInt8))
    for n in model.graph.node:
        if n.op_type == "QLinearSoftmax":
            n.attribute.append(helper.make_attribute("axis", 0))
    with pytest.raises(UnsupportedOpError, match="QLinearSoftmax with the Softmax of opset 11 on axis 0"):
        to_qdq(model)
