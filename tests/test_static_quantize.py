"""--quantize int8: a float32 model quantized by onnxruntime's quantize_static on the user's
calibration data, compiled and run as int8 firmware; what the firmware computes is checked
against onnxruntime on a model quantized here, independently, from the same data."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from weightless_mcu import compile_model, verify
from weightless_mcu.errors import OptionError

from .conftest import make_model, rand

H = helper.make_node


def _float_cnn(tmp_path, opset=13):
    nodes = [H("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), H("Relu", ["c1"], ["r1"]),
             H("Conv", ["r1", "w2", "b2"], ["c2"], group=6, pads=[1, 1, 1, 1], strides=[2, 2]),
             H("Conv", ["c2", "w3", "b3"], ["c3"]), H("Relu", ["c3"], ["r3"]),
             H("GlobalAveragePool", ["r3"], ["g"]), H("Flatten", ["g"], ["f"]),
             H("Gemm", ["f", "w4", "b4"], ["y"], transB=1)]
    inits = {"w1": rand(6, 2, 3, 3, seed=1, scale=0.4), "b1": rand(6, seed=2, scale=0.1),
             "w2": rand(6, 1, 3, 3, seed=3, scale=0.4), "b2": rand(6, seed=4, scale=0.1),
             "w3": rand(10, 6, 1, 1, seed=5, scale=0.4), "b3": rand(10, seed=6, scale=0.1),
             "w4": rand(4, 10, seed=7, scale=0.5), "b4": rand(4, seed=8, scale=0.1)}
    return make_model(tmp_path / f"cnn{opset}.onnx", nodes, {"x": [1, 2, 10, 10]}, {"y": [1, 4]}, inits, opset=opset)


def _independent_int8(src, dst, calibration):
    """The same quantization, written out here: per-channel QDQ, int8, minmax, the samples in order."""
    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": s[None]} for s in calibration])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return dst


def _ort(path, x):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": s[None]})[0] for s in x])


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_a_float_model_quantized_with_calibration_data_runs_as_int8_firmware(tmp_path, target):
    src = _float_cnn(tmp_path)
    calibration = np.stack([rand(2, 10, 10, seed=100 + i) for i in range(12)])
    np.savez(tmp_path / "cal.npz", x=calibration)
    x = np.stack([rand(2, 10, 10, seed=300 + i) for i in range(4)])
    np.savez(tmp_path / "x.npz", x=x)
    res = verify(src, target=target, inputs=tmp_path / "x.npz", quantize="int8", calibration_data=tmp_path / "cal.npz",
                 outputs=tmp_path / "y.npz")
    kernels = [s["kernel"] for s in res["steps"]]
    assert {"conv2d_s8", "depthwise_conv2d_s8", "fc_s8"} <= set(kernels) and "conv2d" not in kernels
    assert res["match"] and res["max_lsb_error"] == 0, res
    assert res["quantization"]["calibration_samples"] == 12 and res["model"] == str(src)
    # Independently: onnxruntime on the model quantize_static makes from the same data.
    ref = _ort(_independent_int8(src, tmp_path / "ref_int8.onnx", calibration), x)
    assert np.array_equal(np.load(tmp_path / "y.npz")["y"].reshape(ref.shape), ref)


def test_calibration_data_decides_the_scales(tmp_path):
    """Other calibration data, other int8 model: the data is used, not ignored."""
    src = _float_cnn(tmp_path)
    texts = []
    for name, scale in (("small", 0.2), ("large", 3.0)):
        np.savez(tmp_path / f"{name}.npz", x=np.stack([rand(2, 10, 10, seed=100 + i, scale=scale) for i in range(8)]))
        m = compile_model(src, tmp_path / name, target="host", quantize="int8", calibration_data=tmp_path / f"{name}.npz")
        assert m["quantization"]["calibration"].endswith(f"{name}.npz")
        texts.append((tmp_path / name / "model.c").read_text())
    first = [t[t.index("wl_quantize_params_t"):].split(";")[0] for t in texts]  # the input's scale and zero point
    assert first[0] != first[1]


def test_with_labelled_data_the_float_models_accuracy_is_reported(tmp_path):
    src = _float_cnn(tmp_path)
    x = np.stack([rand(2, 10, 10, seed=700 + i) for i in range(40)])
    y = _ort(src, x).argmax(axis=1)
    y[::4] = (y[::4] + 1) % 4  # a quarter of the labels wrong: the float model scores 75%
    np.savez(tmp_path / "data.npz", x=x, y=y)
    np.savez(tmp_path / "cal.npz", x=x[:16])
    res = verify(src, target="host", data=tmp_path / "data.npz", quantize="int8", calibration_data=tmp_path / "cal.npz")
    assert res["accuracy_float"] == pytest.approx(0.75)
    assert 0.0 <= res["accuracy"] <= 1.0 and res["accuracy"] == res["accuracy_onnxruntime_decoded"]


def test_an_opset_11_model_is_upgraded_for_per_channel_weights(tmp_path):
    res = verify(_float_cnn(tmp_path, opset=11), target="host", samples=4, quantize="int8")
    assert res["match"] and res["quantization"]["calibration"] == "random"


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "weightless_mcu", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_without_calibration_data_a_warning_says_the_accuracy_is_unknown(tmp_path):
    proc = _cli("compile", _float_cnn(tmp_path), "--quantize", "int8", "--target", "host", "-o", tmp_path / "out",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "warning: no --calibration-data" in proc.stderr and "accuracy is unknown" in proc.stderr
    assert "loading " in proc.stderr and "quantized to int8" in proc.stderr and "wl-quantize-" not in proc.stderr
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["quantization"]["calibration"] == "random"


def test_calibration_data_that_does_not_fit_the_input_is_exit_2_and_nothing_is_written(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 2, 9, 10), np.float32))
    proc = _cli("compile", _float_cnn(tmp_path), "--quantize", "int8", "--calibration-data", tmp_path / "bad.npz",
                "-o", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--calibration-data" in proc.stderr and "(4, 2, 9, 10)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_calibration_data_without_quantize_and_a_quantized_model_are_refused(tmp_path):
    src = _float_cnn(tmp_path)
    np.savez(tmp_path / "cal.npz", x=np.zeros((2, 2, 10, 10), np.float32))
    with pytest.raises(OptionError, match="--calibration-data needs --quantize"):
        compile_model(src, tmp_path / "a", target="host", calibration_data=tmp_path / "cal.npz")
    q = _independent_int8(src, tmp_path / "q.onnx", np.stack([rand(2, 10, 10, seed=i) for i in range(4)]))
    with pytest.raises(OptionError, match="quantized already"):
        compile_model(q, tmp_path / "b", target="host", quantize="int8")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_dynamic_quantization_is_refused_naming_the_node(tmp_path):
    nodes = [H("DynamicQuantizeLinear", ["x"], ["xq", "s", "z"], name="dyn"),
             H("DequantizeLinear", ["xq", "s", "z"], ["y"])]
    path = make_model(tmp_path / "dyn.onnx", nodes, {"x": [1, 8]}, {"y": [1, 8]})
    proc = _cli("compile", path, "-o", tmp_path / "out", "--target", "host", "-q", cwd=tmp_path)
    assert proc.returncode == 3 and "dyn" in proc.stderr and "DynamicQuantizeLinear" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
