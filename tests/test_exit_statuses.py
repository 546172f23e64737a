"""Each exit status of the command line, pinned through the command itself:
0 success, 1 mismatch, 2 bad model file or option, 3 unsupported op or shape,
4 unknown target or does not fit (compile, verify and report), 5 toolchain,
6 firmware fault or hang (--timeout), 70 internal error."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from weightless_mcu import cli as cli_module
from weightless_mcu.errors import (FitError, FoldError, ModelLoadError, OptionError, RunError, ShapeError, TargetError,
                                   ToolchainError, UnsupportedOpError)
from weightless_mcu.qemu import run_firmware
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_firmware

from .conftest import REPO, make_model, rand
from .test_errors import run_cli as run

H = helper.make_node
EXAMPLE = REPO / "examples" / "digits_mlp.onnx"


def assert_status(proc, status: int, *needles: str) -> str:
    """The exact status; on failure one 'weightless-mcu: error:' line that names the fault, no traceback."""
    assert proc.returncode == status, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    if status in (0, 1, 4) and "error:" not in proc.stderr:
        return proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith("weightless-mcu: error:")]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_the_statuses_of_the_error_classes():
    assert [c.exit_status for c in (ModelLoadError, OptionError, UnsupportedOpError, ShapeError, FoldError, TargetError,
                                    FitError, ToolchainError, RunError)] == [2, 2, 3, 3, 3, 4, 4, 5, 6]
    assert cli_module.EXIT_MISMATCH == 1 and cli_module.EXIT_TOO_BIG == 4 and cli_module.EXIT_INTERNAL == 70


@pytest.fixture
def good(tmp_path):
    return make_model(tmp_path / "good.onnx", [H("Gemm", ["x", "w"], ["y"])], {"x": [1, 4]}, {"y": [1, 3]}, {"w": rand(4, 3)})


def test_0_success_and_1_mismatch(tmp_path, good):
    assert_status(run("compile", good, "-o", tmp_path / "out", "-q"), 0)
    assert "match           yes" in assert_status(run("verify", good, "--target", "host", "-q"), 0)
    assert "match           NO" in assert_status(run("verify", good, "--target", "host", "--tolerance", "-1", "-q"), 1)


def test_2_bad_model_file_and_bad_options(tmp_path, good):
    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model\n" * 10)
    assert_status(run("compile", bad, "-o", tmp_path / "out"), 2, "notes.onnx")
    assert_status(run("compile", good, "-o", tmp_path / "out", "--density", "1.5"), 2, "density")
    assert_status(run("verify", good, "--part", "nosuchpart"), 2, "nosuchpart")


def test_3_unsupported_op_and_shape(tmp_path):
    sin = make_model(tmp_path / "sin.onnx", [H("Sin", ["x"], ["y"])], {"x": [1, 4]}, {"y": [1, 4]})
    assert_status(run("compile", sin, "-o", tmp_path / "out"), 3, "Sin")
    sym = make_model(tmp_path / "sym.onnx", [H("Relu", ["x"], ["y"])], {"x": [1, "n"]}, {"y": [1, "n"]})
    assert_status(run("compile", sym, "-o", tmp_path / "out"), 3, "--input-shape")


@pytest.mark.slow
def test_4_unknown_target_and_the_fit_check_of_compile_verify_and_report(tmp_path, good):
    assert_status(run("compile", good, "-o", tmp_path / "out", "--target", "cortex-m99"), 4, "cortex-m99")
    big = make_model(tmp_path / "big.onnx", [H("Gemm", ["x", "w"], ["y"])], {"x": [1, 1100]}, {"y": [1, 1024]},
                     {"w": rand(1100, 1024)})  # 4.5 MB of weights, 4 MB of flash on the board
    assert_status(run("compile", big, "-o", tmp_path / "big"), 4, "does not fit", "flash")
    assert_status(run("verify", big), 4, "does not fit")
    # the limits of verify and report: the run completes and prints its report, then status 4
    out = assert_status(run("verify", EXAMPLE, "--flash-limit", "1K", "--samples", "1", "-q"), 4)
    assert "match           yes" in out and "FAIL" in out
    out = assert_status(run("verify", EXAMPLE, "--part", "STM32F103C8", "--samples", "1", "-q"), 0)
    assert "STM32F103C8" in out and "FAIL" not in out
    assert_status(run("compile", EXAMPLE, "-o", tmp_path / "ex", "-q"), 0)
    assert "FAIL" in assert_status(run("report", tmp_path / "ex", "--ram-limit", "100", "-q"), 4)
    assert "FAIL" not in assert_status(run("report", tmp_path / "ex", "--ram-limit", "64K", "-q"), 0)


def test_5_toolchain_missing(tmp_path, good):
    env = dict(os.environ, PATH=str(Path(sys.executable).parent))  # python, but no arm-none-eabi-gcc
    assert_status(run("verify", good, "--target", "cortex-m4", env=env), 5, "arm-none-eabi-gcc", "PATH")


def test_6_timeout_and_a_failing_firmware(tmp_path, good):
    assert_status(run("verify", good, "--timeout", "0.01"), 6, "did not finish", "cortex-m4")
    # a firmware whose run function reports an error: status 6, not a mismatch
    out = tmp_path / "out"
    assert_status(run("compile", good, "-o", out, "--target", "host", "-q"), 0)
    model_c = out / "model.c"
    head, tail = model_c.read_text().rsplit("return WL_OK;", 1)
    model_c.write_text(head + "return 3;" + tail)  # the run function's last statement
    elf = build_firmware(out, get_target("host"), tmp_path / "build")
    with pytest.raises(RunError, match="status 3"):
        run_firmware(elf, get_target("host"), np.zeros((1, 4), np.float32), 3, model="good")


def test_70_internal_error_is_one_line(monkeypatch, capsys, good):
    def bug(*_a, **_k):
        raise KeyError("a bug")

    monkeypatch.setattr(cli_module, "compile_model", bug)
    assert cli_module.main(["compile", str(good), "-o", "unused"]) == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["weightless-mcu: internal error: KeyError: 'a bug' (set WL_DEBUG=1 for a traceback)"]


def test_report_of_a_firmware_elf(tmp_path):
    """report ELF: the whole image's flash and RAM from the file itself, equal to arm-none-eabi-size."""
    out = tmp_path / "out"
    assert_status(run("compile", EXAMPLE, "-o", out, "-q"), 0)
    elf = build_firmware(out, get_target("cortex-m4"), tmp_path / "build")
    size = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = map(int, size.splitlines()[1].split()[:3])
    js = tmp_path / "r.json"
    assert_status(run("report", elf, "--json", js, "-q"), 0)
    res = json.loads(js.read_text())
    assert res["image_flash_bytes"] == text + data and res["image_ram_bytes"] == data + bss
    assert "FAIL" in assert_status(run("report", elf, "--flash-limit", str(res["flash_bytes"] - 1), "-q"), 4)
    assert "FAIL" not in assert_status(run("report", elf, "--flash-limit", str(res["flash_bytes"]), "-q"), 0)
