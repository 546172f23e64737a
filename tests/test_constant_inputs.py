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
    # its --input-shape is checked as any input's is
    with pytest.raises(ShapeError, match="--input-shape gives 3 dimensions for 'bias', which has 2"):
        compile_model(path, tmp_path / "o3", input_shapes={"bias": (1, 4, 1)}, constant_inputs={"bias": (0.25,)})
    assert main(["compile", str(path), "-o", str(tmp_path / "out"), "--constant-input", "bias=1,x", "-q"]) == 2
    assert "--constant-input 'bias=1,x' is not of the form NAME=V[,V...]" in capsys.readouterr().err


def _nested_ifs(path):
    """The shape of Silero VAD's graph: the whole model inside an If on the sample rate (so the
    top-level graph has two nodes), and in it three Ifs on shapes that each fold only once the If
    before it is inlined (five rounds of folding and inference), whose branches read tensors of
    the graph around them by name (one only they read; one an inlined If's output)."""
    vi = helper.make_tensor_value_info
    t = TensorProto.FLOAT
    inner_then = helper.make_graph([H("Mul", ["o1", "b"], ["m"])], "then3", [], [vi("m", t, None)])
    inner_else = helper.make_graph([H("Sub", ["o1", "b"], ["m2"])], "else3", [], [vi("m2", t, None)])
    model_nodes = [
        H("Relu", ["x"], ["a"]), H("Sigmoid", ["x"], ["b"]),  # b: read only inside a branch
        H("Shape", ["a"], ["s"]), H("Gather", ["s", "one"], ["n"], axis=0), H("Equal", ["n", "four"], ["c1"]),
        H("If", ["c1"], ["o1"], then_branch=helper.make_graph([H("Identity", ["a"], ["t1"])], "then1", [], [vi("t1", t, None)]),
          else_branch=helper.make_graph([H("Neg", ["a"], ["e1"])], "else1", [], [vi("e1", t, None)])),
        H("Shape", ["o1"], ["s2"]), H("Size", ["s2"], ["r"]), H("Equal", ["r", "two"], ["c2"]),
        H("If", ["c2"], ["o2"], then_branch=inner_then, else_branch=inner_else),  # reads o1 and b by name
        H("Shape", ["o2"], ["s3"]), H("Size", ["s3"], ["r3"]), H("Equal", ["r3", "two"], ["c3"]),
        H("If", ["c3"], ["o3"], then_branch=helper.make_graph([H("Tanh", ["o2"], ["t3"])], "then4", [], [vi("t3", t, None)]),
          else_branch=helper.make_graph([H("Neg", ["o2"], ["e3"])], "else4", [], [vi("e3", t, None)])),
        H("Add", ["o3", "x"], ["y_in"])]
    whole = helper.make_graph(model_nodes, "model", [], [vi("y_in", t, None)])
    other = helper.make_graph([H("Identity", ["x"], ["y_other"])], "other", [], [vi("y_other", t, None)])
    nodes = [H("Equal", ["sr", "rate"], ["c0"]), H("If", ["c0"], ["y"], then_branch=whole, else_branch=other)]
    inits = [numpy_helper.from_array(np.array(16000, np.int64), "rate"), numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array(4, np.int64), "four"), numpy_helper.from_array(np.array(2, np.int64), "two")]
    graph = helper.make_graph(nodes, "nested", [vi("x", t, [1, 4]), vi("sr", TensorProto.INT64, [])],
                              [vi("y", t, [1, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)]), path)
    return path


@pytest.mark.parametrize("rate", [16000, 8000])
def test_nested_ifs_on_a_constant_input_and_on_shapes_fold_away(tmp_path, rate):
    """Each If folds to its branch, the tensors branches read by name survive pruning and
    inlining, and the firmware equals ONNX's reference evaluator running the model with the rate
    fed as an input (onnxruntime cannot run this one so: it misses o1 in the nested branch)."""
    model = _nested_ifs(tmp_path / "nested.onnx")
    m = compile_model(model, tmp_path / "out", constant_inputs={"sr": (rate,)})
    kernels = [s["kernel"] for s in m["steps"]]
    assert kernels == (["unary", "unary", "binary", "unary", "binary"] if rate == 16000 else ["copy"])
    x = np.random.default_rng(2).standard_normal((4, 1, 4)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    res = verify(model, target="host", inputs=tmp_path / "x.npz", outputs=tmp_path / "y.npz", constant_inputs={"sr": (rate,)})
    assert res["match"]
    from onnx.reference import ReferenceEvaluator

    ref = ReferenceEvaluator(str(model))
    want = np.stack([ref.run(None, {"x": x[i], "sr": np.array(rate, np.int64)})[0] for i in range(4)])
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["y"].reshape(want.shape), want, rtol=1e-6, atol=1e-7)
