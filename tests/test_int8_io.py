"""Models whose inputs or outputs are int8 or uint8 (a QuantizeLinear at the output, a
DequantizeLinear at the input, as the ONNX node tests and some exporters write them): the run
function takes and gives int8_t / uint8_t, and the firmware equals onnxruntime."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from weightless_mcu import compile_model, verify
from weightless_mcu.api import load_inputs, random_inputs
from weightless_mcu.errors import OptionError, UnsupportedOpError

H = helper.make_node
_NP = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8}


def _int8_io_model(tmp_path, x_type, y_type):
    """x (int8 or uint8) -> DequantizeLinear -> Gemm (int8 weights) -> Relu -> QuantizeLinear -> y
    (int8 or uint8): the layer folds into the int8 kernel between the model's own integers."""
    rng = np.random.default_rng(3)
    consts = {"xs": np.array(0.05, np.float32), "xz": np.array(3 if x_type == TensorProto.INT8 else 131, _NP[x_type]),
              "w": rng.integers(-127, 128, (6, 10)).astype(np.int8), "ws": np.array(0.004, np.float32),
              "b": rng.integers(-300, 300, 6).astype(np.int32), "bs": np.array(0.05 * 0.004, np.float32),
              "ys": np.array(0.03, np.float32), "yz": np.array(-5 if y_type == TensorProto.INT8 else 120, _NP[y_type])}
    nodes = [H("DequantizeLinear", ["x", "xs", "xz"], ["xf"]), H("DequantizeLinear", ["w", "ws"], ["wf"]),
             H("DequantizeLinear", ["b", "bs"], ["bf"]), H("Gemm", ["xf", "wf", "bf"], ["m"], transB=1),
             H("Relu", ["m"], ["r"]), H("QuantizeLinear", ["r", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", x_type, [1, 10])],
                              [helper.make_tensor_value_info("y", y_type, [1, 6])],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"io_{x_type}_{y_type}.onnx"
    onnx.save(model, path)
    return path


TYPES = [(TensorProto.INT8, TensorProto.INT8), (TensorProto.INT8, TensorProto.UINT8),
         (TensorProto.UINT8, TensorProto.INT8), (TensorProto.UINT8, TensorProto.UINT8)]


@pytest.mark.parametrize("x_type,y_type", TYPES)
def test_int8_and_uint8_inputs_and_outputs_on_the_host(tmp_path, x_type, y_type):
    res = verify(_int8_io_model(tmp_path, x_type, y_type), target="host", samples=64, outputs=tmp_path / "y.npz")
    assert res["match"] and res["max_abs_error"] == 0.0 and res["max_lsb_error"] == 0, res
    kernels = [s["kernel"] for s in res["steps"]]
    # uint8 crosses the edge with its sign bit flipped; int8 goes straight to the kernel
    assert kernels == ["flip_sign_s8"] * (x_type == TensorProto.UINT8) + ["fc_s8"] + ["flip_sign_s8"] * (
        y_type == TensorProto.UINT8), kernels
    y = np.load(tmp_path / "y.npz")["y"]
    lo, hi = (-128, 127) if y_type == TensorProto.INT8 else (0, 255)
    assert y.min() >= lo and y.max() <= hi and np.all(y == np.rint(y)) and len(np.unique(y)) > 10


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_uint8_input_and_output_under_qemu(tmp_path, target):
    res = verify(_int8_io_model(tmp_path, TensorProto.UINT8, TensorProto.UINT8), target=target, samples=16)
    assert res["match"] and res["max_lsb_error"] == 0, res


def test_the_run_function_takes_the_models_types(tmp_path):
    manifest = compile_model(_int8_io_model(tmp_path, TensorProto.UINT8, TensorProto.INT8), tmp_path / "out",
                             target="host")
    header = (tmp_path / "out" / "model.h").read_text()
    assert "#include <stdint.h>" in header
    assert f"int wl_{manifest['name']}_run(const uint8_t *input, int8_t *output);" in header
    assert manifest["inputs"][0]["dtype"] == "uint8" and manifest["outputs"][0]["dtype"] == "int8"
    assert manifest["outputs"][0]["lsb"] == 1.0
    # a uint8 input costs its int8 copy in the arena, nothing more
    assert manifest["arena_lower_bound_bytes"] == 10
    # a C caller with those types compiles without a warning against the library
    (tmp_path / "main.c").write_text('#include "model.h"\nint main(void) {\n'
                                     "    static const uint8_t x[10] = {0, 255, 128};\n    static int8_t y[6];\n"
                                     f"    int status = wl_{manifest['name']}_run(x, y);\n    (void)y[0];\n    return status;\n}}\n")
    sources = [str(tmp_path / "main.c"), str(tmp_path / "out" / "model.c"), *map(str, (tmp_path / "out" / "runtime").glob("*.c"))]
    proc = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wconversion", f"-I{tmp_path / 'out'}",
                           f"-I{tmp_path / 'out' / 'runtime'}", *sources, "-lm", "-o", str(tmp_path / "a.out")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([str(tmp_path / "a.out")]).returncode == 0


def test_int8_inputs_from_a_file_must_hold_integers_of_the_type(tmp_path):
    inputs = [{"name": "x", "shape": [1, 3], "dtype": "uint8"}]
    np.savez(tmp_path / "ok.npz", x=np.array([[0, 17, 255]], np.uint8))
    assert load_inputs(tmp_path / "ok.npz", inputs)[0].tolist() == [[0.0, 17.0, 255.0]]
    for bad in (np.array([[0, 17, 256]]), np.array([[0.5, 1, 2]]), np.array([[-1, 1, 2]])):
        np.savez(tmp_path / "bad.npz", x=bad)
        with pytest.raises(OptionError, match="'x' is a uint8 input.*not integers in \\[0, 255\\]"):
            load_inputs(tmp_path / "bad.npz", inputs)
    drawn = random_inputs([{"name": "x", "shape": [1, 1000], "dtype": "int8"}], 4)[0]
    assert drawn.min() >= -128 and drawn.max() <= 127 and np.all(drawn == np.rint(drawn)) and drawn.min() < -100


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "weightless_mcu", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_a_uint8_input_not_dequantized_is_refused_exit_3(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [H("Cast", ["x"], ["c"], to=TensorProto.FLOAT), H("Relu", ["c"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    proc = _cli("compile", tmp_path / "m.onnx", "--target", "host", "-o", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "input 'x' (uint8) goes to Cast node 'Cast_0'" in errors[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_int16_input_is_refused_naming_it(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.INT16, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    model = helper.make_model(helper.make_graph([H("DequantizeLinear", ["x", "s"], ["y"])], "g", [x], [y],
                                                [numpy_helper.from_array(np.array(0.5, np.float32), "s")]),
                              opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedOpError, match="input 'x' has element type INT16; only float32, int8 and uint8"):
        compile_model(tmp_path / "m.onnx", tmp_path / "out", target="host")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_an_int8_output_that_is_a_view_of_another_output_is_copied_as_bytes(tmp_path, target):
    """q and Reshape(q) are both int8 outputs: one buffer cannot be both, so the view is copied,
    by the int8 copy (a float32 copy would read and write four times the bytes)."""
    consts = {"s": np.array(0.05, np.float32), "z": np.array(3, np.int8), "shape": np.array([1, 12], np.int64)}
    nodes = [H("QuantizeLinear", ["x", "s", "z"], ["q"]), H("Reshape", ["q", "shape"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 12]),
                               helper.make_tensor_value_info("q", TensorProto.INT8, [1, 3, 4])],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    res = verify(tmp_path / "m.onnx", target=target, samples=16, outputs=tmp_path / "y.npz")
    assert [s["kernel"] for s in res["steps"]] == ["quantize", "copy_s8"]
    assert res["match"] and res["max_abs_error"] == 0.0, res
    out = np.load(tmp_path / "y.npz")
    np.testing.assert_array_equal(out["y"].reshape(16, -1), out["q"].reshape(16, -1))
