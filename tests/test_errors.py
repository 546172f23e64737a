"""Bad input gets one clear sentence on stderr, a non-zero exit, no traceback,
and leaves the output directory as it was."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import helper

from .conftest import make_model, rand

H = helper.make_node


def run_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "weightless_mcu", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def assert_clean_error(proc, *needles):
    assert proc.returncode not in (0, 70), proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("weightless-mcu: error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def good_model(tmp_path):
    return make_model(tmp_path / "good.onnx", [H("Gemm", ["x", "w"], ["y"])], {"x": [1, 4]}, {"y": [1, 3]}, {"w": rand(4, 3)})


def test_not_onnx(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is a text file, not a model\n" * 10)
    assert_clean_error(run_cli("compile", bad, "-o", tmp_path / "out"), "notes.onnx", "not")
    assert not (tmp_path / "out").exists()


def test_missing_file(tmp_path):
    assert_clean_error(run_cli("compile", tmp_path / "nope.onnx", "-o", tmp_path / "out"), "no such model file")


def test_truncated_model(tmp_path, good_model):
    data = good_model.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    assert_clean_error(run_cli("compile", cut, "-o", tmp_path / "out"), "cut.onnx")


def test_unsupported_op_names_op_node_and_supported_list(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Relu", ["x"], ["r"]), H("Sin", ["r"], ["y"], name="my_sin")], {"x": [1, 4]}, {"y": [1, 4]})
    line = assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out"), "Sin", "my_sin", "supported ops:", "Conv")
    assert "Gemm" in line and "supported ops: Abs, Add, AveragePool, BatchNormalization, Clip, Concat, Conv, " in line


def test_symbolic_dim_needs_override(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Relu", ["x"], ["y"])], {"x": [1, "features"]}, {"y": [1, "features"]})
    assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out"), "features", "--input-shape")
    ok = run_cli("compile", path, "-o", tmp_path / "out", "--input-shape", "x=1,12", "-q")
    assert ok.returncode == 0, ok.stderr
    assert "#define WL_M_INPUT_SIZE 12" in (tmp_path / "out" / "model.h").read_text()


def test_symbolic_batch_is_fixed_to_one(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Relu", ["x"], ["y"])], {"x": ["N", 5]}, {"y": ["N", 5]})
    assert run_cli("compile", path, "-o", tmp_path / "out", "-q").returncode == 0
    assert "WL_M_INPUT_SHAPE {1, 5}" in (tmp_path / "out" / "model.h").read_text()


def test_model_too_large_for_flash(tmp_path):
    big = rand(1100, 1024)  # 4.5 MB of weights; the boards have 4 MB of flash
    path = make_model(tmp_path / "big.onnx", [H("Gemm", ["x", "w"], ["y"])], {"x": [1, 1100]}, {"y": [1, 1024]}, {"w": big})
    line = assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out"), "flash", "cortex-m4")
    assert str(big.nbytes) in line and str(4 * 1024 * 1024) in line
    assert not (tmp_path / "out").exists()


def test_model_too_large_for_ram(tmp_path):
    path = make_model(tmp_path / "wide.onnx", [H("Relu", ["x"], ["r"]), H("Sigmoid", ["r"], ["y"])],
                      {"x": [1, 600000]}, {"y": [1, 600000]})
    assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out"), "RAM", "2097152")


def test_unknown_target(tmp_path, good_model):
    assert_clean_error(run_cli("compile", good_model, "-o", tmp_path / "out", "--target", "cortex-m99"), "cortex-m99", "cortex-m4")


def test_failed_compile_leaves_out_as_it_was(tmp_path, good_model):
    out = tmp_path / "out"
    assert run_cli("compile", good_model, "-o", out, "-q").returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = make_model(tmp_path / "bad.onnx", [H("Sin", ["x"], ["y"])], {"x": [1, 4]}, {"y": [1, 4]})
    assert_clean_error(run_cli("compile", bad, "-o", out), "Sin")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_bad_inputs_file(tmp_path, good_model):
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 5), np.float32))
    assert_clean_error(run_cli("verify", good_model, "--target", "host", "--inputs", tmp_path / "x.npz"), "shape", "(samples, 4)")


def test_verify_mismatch_exit_status(tmp_path, good_model):
    """An impossible tolerance makes verify report a mismatch with status 1 (not an error)."""
    proc = run_cli("verify", good_model, "--target", "host", "--tolerance", "-1", "-q")
    assert proc.returncode == 1 and "match           NO" in proc.stdout


def test_unused_second_output_does_not_stall_the_folding_loop(tmp_path):
    """An LSTM whose Y_h nobody reads: shape inference gives Y_h a shape, pruning used to
    drop it again, and folding went round forever. Now it compiles at once, and the firmware
    (which does not write the unread Y_h) matches onnxruntime."""
    nodes = [H("LSTM", ["x", "w", "r"], ["y", "y_h"], hidden_size=3), H("Squeeze", ["y", "ax"], ["out"])]
    path = make_model(tmp_path / "lstm.onnx", nodes, {"x": [2, 1, 4]}, {"out": None},
                      {"w": rand(1, 12, 4), "r": rand(1, 12, 3, seed=1), "ax": np.array([1], np.int64)})
    proc = subprocess.run([sys.executable, "-m", "weightless_mcu", "verify", str(path), "--target", "host", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "match           yes" in proc.stdout, proc.stderr


def test_inputs_and_outputs_count_against_ram(tmp_path):
    """No arena at all, but 2 x 1.2 MB of input and output buffers: too much for a 2 MB board."""
    path = make_model(tmp_path / "io.onnx", [H("Relu", ["x"], ["y"])], {"x": [1, 300000]}, {"y": [1, 300000]})
    line = assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out"), "RAM", "2400000 inputs and outputs")
    assert "0 arena" in line
    assert run_cli("compile", path, "-o", tmp_path / "out", "--target", "host").returncode == 0


def test_conv_refusals_say_why(tmp_path):
    from weightless_mcu import compile_model
    from weightless_mcu.errors import UnsupportedOpError

    weights_in = make_model(tmp_path / "a.onnx", [H("Conv", ["x", "w"], ["y"], name="c")], {"x": [1, 2, 5, 5], "w": [3, 2, 3, 3]},
                            {"y": None})
    with pytest.raises(UnsupportedOpError, match="Conv node 'c': only Conv with constant weights and bias is supported"):
        compile_model(weights_in, tmp_path / "o", target="host")
    conv3d = make_model(tmp_path / "b.onnx", [H("Conv", ["x", "w"], ["y"], name="c3")], {"x": [1, 2, 4, 4, 4]}, {"y": None},
                        {"w": rand(3, 2, 3, 3, 3)})
    with pytest.raises(UnsupportedOpError, match=r"Conv node 'c3': only 1-D and 2-D convolutions are supported \(input rank 5\)"):
        compile_model(conv3d, tmp_path / "o", target="host")
    batch2 = make_model(tmp_path / "c.onnx", [H("Conv", ["x", "w"], ["y"], name="cb")], {"x": [2, 2, 4, 4]}, {"y": None},
                        {"w": rand(3, 2, 3, 3)})
    with pytest.raises(UnsupportedOpError, match="Conv node 'cb': batch size 2 is not supported; the batch must be 1"):
        compile_model(batch2, tmp_path / "o", target="host")
