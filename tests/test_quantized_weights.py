"""Models whose weights are stored quantized (int8 / uint8 behind DequantizeLinear) with
float activations: the dequantization is folded at compile time, bit for bit as
onnxruntime computes it, and the model runs with the float kernels. (Quantized
activations: test_quantized.py.)"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from weightless_mcu import verify
from weightless_mcu.errors import ShapeError, UnsupportedOpError
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import fold_constants

from .conftest import make_model, rand

H = helper.make_node


def _int_weights(shape, dtype, seed):
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(info.min, info.max + 1, size=shape).astype(dtype)


def _qdq_weight_model(path):
    """Weights as onnxruntime's quantizer stores them: Conv with per-output-channel int8
    weights and an int32 bias at one scale, then Gemm with uint8 weights quantized per
    column (axis 1) around nonzero zero points."""
    rng = np.random.default_rng(2)
    w1 = _int_weights((6, 3, 3, 3), np.int8, 1)
    s1 = rng.uniform(0.001, 0.02, 6).astype(np.float32)
    b1 = rng.integers(-5000, 5000, 6).astype(np.int32)
    w2 = _int_weights((6 * 6 * 6, 5), np.uint8, 3)
    s2 = rng.uniform(0.002, 0.005, 5).astype(np.float32)
    z2 = rng.integers(100, 160, 5).astype(np.uint8)
    nodes = [H("DequantizeLinear", ["w1_q", "w1_s", "w1_z"], ["w1"], axis=0),
             H("DequantizeLinear", ["b1_q", "b1_s"], ["b1"]),
             H("Conv", ["x", "w1", "b1"], ["c"]), H("Relu", ["c"], ["r"]), H("Flatten", ["r"], ["f"]),
             H("DequantizeLinear", ["w2_q", "w2_s", "w2_z"], ["w2"], axis=1),
             H("Gemm", ["f", "w2"], ["y"])]
    inits = {"w1_q": w1, "w1_s": s1, "w1_z": np.zeros(6, np.int8), "b1_q": b1, "b1_s": np.float32(2.5e-5),
             "w2_q": w2, "w2_s": s2, "w2_z": z2}
    return make_model(path, nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 5]}, inits)


def _ort_values(path, names):
    """What onnxruntime computes for the named tensors (made graph outputs)."""
    model = onnx.load(path)
    for name in names:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 3, 8, 8), np.float32)
    return dict(zip(names, sess.run(names, {"x": x})))


def test_dequantized_weights_fold_bit_exact_to_onnxruntime(tmp_path):
    path = _qdq_weight_model(tmp_path / "qw.onnx")
    _, graph = load_model(path)
    fold_constants(graph)
    assert not any(n.op == "DequantizeLinear" for n in graph.nodes)
    ref = _ort_values(path, ["w1", "b1", "w2"])
    for name in ("w1", "b1", "w2"):
        got = graph.const(name)
        assert got.dtype == np.float32 and got.shape == ref[name].shape
        assert np.array_equal(got.view(np.uint32), ref[name].view(np.uint32)), name


def test_quantized_weights_model_runs_on_host_like_onnxruntime(tmp_path):
    res = verify(_qdq_weight_model(tmp_path / "qw.onnx"), target="host", samples=3)
    assert res["match"], res


def test_per_axis_scales_that_do_not_fit_the_axis_are_refused(tmp_path):
    w = _int_weights((4, 3), np.int8, 5)
    path = make_model(tmp_path / "bad.onnx",
                      [H("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], axis=1), H("MatMul", ["x", "w"], ["y"])],
                      {"x": [1, 4]}, {"y": [1, 3]},
                      {"w_q": w, "w_s": np.full(4, 0.01, np.float32), "w_z": np.zeros(4, np.int8)})
    _, graph = load_model(path)
    with pytest.raises(ShapeError, match="4 scales do not fit axis 1"):
        fold_constants(graph)


def test_blocked_quantization_is_refused(tmp_path):
    w = numpy_helper.from_array(_int_weights((4, 4), np.int8, 6), "w_q")
    nodes = [H("DequantizeLinear", ["w_q", "w_s"], ["w"], axis=0, block_size=2), H("MatMul", ["x", "w"], ["y"])]
    graph = helper.make_graph(nodes, "b", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [w, numpy_helper.from_array(np.full((2, 4), 0.01, np.float32), "w_s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, tmp_path / "blocked.onnx")
    _, g = load_model(tmp_path / "blocked.onnx")
    with pytest.raises(UnsupportedOpError, match="block_size"):
        fold_constants(g)
