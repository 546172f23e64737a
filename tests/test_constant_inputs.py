"""--constant-input: a graph input that is really a setting (a sample rate) becomes a
compile-time constant, so that the Equal / If / Cast arithmetic it feeds folds away; the
library takes only the real inputs. The firmware is checked against onnxruntime running
the user's original model with the same setting fed as an input."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from weightless_mcu import compile_model, verify
from weightless_mcu.cli import main
from weightless_mcu.errors import OptionError, ShapeError, UnsupportedOpError

H = helper.make_node


def _vad_like(path):
    """y = (sr == 16000 ? Relu : Neg)(x * (float(sr) / 16000) @ w): the shape of a voice activity
    detector's front end that takes the sample rate as an int64 input."""
    out = helper.make_tensor_value_info
    then_g = helper.make_graph([H("Relu", ["a"], ["t"])], "then", [], [out("t", TensorProto.FLOAT, None)])
    else_g = helper.make_graph([H("Neg", ["a"], ["e"])], "else", [], [out("e", TensorProto.FLOAT, None)])
    nodes = [H("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT), H("Div", ["srf", "ref_f"], ["scale"]),
             H("MatMul", ["x", "w"], ["h"]), H("Mul", ["h", "scale"], ["a"]), H("Equal", ["sr", "ref"], ["cond"]),
             H("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)]
    w = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    graph = helper.make_graph(nodes, "vad", [out("x", TensorProto.FLOAT, [1, 16]), out("sr", TensorProto.INT64, [])],
                              [out("y", TensorProto.FLOAT, [1, 8])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(16000, np.int64), "ref"),
                               numpy_helper.from_array(np.array(16000, np.float32), "ref_f")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
@pytest.mark.parametrize("rate", [16000, 8000])
def test_a_sample_rate_input_folds_and_the_firmware_matches_the_original_model(tmp_path, target, rate):
    model = _vad_like(tmp_path / "vad.onnx")
    x = np.random.default_rng(1).standard_normal((5, 1, 16)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    res = verify(model, target=target, inputs=tmp_path / "x.npz", outputs=tmp_path / "y.npz",
                 constant_inputs={"sr": (rate,)})
    assert res["match"]
    got = np.load(tmp_path / "y.npz")["y"]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = np.stack([sess.run(None, {"x": x[i], "sr": np.array(rate, np.int64)})[0] for i in range(len(x))])
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    # the branch the rate selects: Relu gives no negative output, Neg some
    assert ((got >= 0).all()) == (rate == 16000)


def test_the_library_takes_only_the_real_inputs_and_says_what_was_fixed(tmp_path):
    model = _vad_like(tmp_path / "vad.onnx")
    m = compile_model(model, tmp_path / "out", constant_inputs={"sr": (16000,)})
    assert [i["name"] for i in m["inputs"]] == ["x"]
    assert m["constant_inputs"] == {"sr": [16000]}
    header = (tmp_path / "out" / "model.h").read_text()
    assert "int wl_vad_run(const float *input, float *output);" in header
    assert "input 'sr' of the ONNX model is fixed at compile time to 16000" in header
    # nothing of the If, Equal or Cast is left: the MatMul, and its scaling with the Relu of the
    # branch taken fused into it
    assert [s["kernel"] for s in m["steps"]] == ["fc", "binary"]


def test_without_the_option_the_error_names_it(tmp_path):
    model = _vad_like(tmp_path / "vad.onnx")
    with pytest.raises(UnsupportedOpError, match="--constant-input sr="):
        compile_model(model, tmp_path / "out")


@pytest.mark.parametrize("given, error, match", [
    ({"rate": (1,)}, OptionError, "not an input of the model \\(inputs: x, sr\\)"),
    ({"sr": (16000.5,)}, OptionError, "of type int64"),
    ({"sr": (1, 2)}, ShapeError, "2 values for 'sr', of shape \\[\\]"),
])
def test_bad_constant_inputs_are_one_clear_error(tmp_path, given, error, match):
    model = _vad_like(tmp_path / "vad.onnx")
    with pytest.raises(error, match=match):
        compile_model(model, tmp_path / "out", constant_inputs=given)


def test_one_value_fills_a_float_input_and_the_cli_takes_the_option(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    bias = helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([H("Add", ["x", "bias"], ["y"])], "g", [x, bias], [y])
    path = tmp_path / "add.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 1, 4), np.float32))
    assert main(["verify", str(path), "--target", "host", "--inputs", str(tmp_path / "x.npz"), "--constant-input",
                 "bias=0.25", "--outputs", str(tmp_path / "y.npz"), "-q"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["y"].reshape(2, 4), np.full((2, 4), 0.25, np.float32))
    assert main(["compile", str(path), "-o", str(tmp_path / "out"), "--constant-input", "bias=1,x", "-q"]) == 2
    assert "--constant-input 'bias=1,x' is not of the form NAME=V[,V...]" in capsys.readouterr().err
