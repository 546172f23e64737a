"""The command line end to end: compile, verify with inputs/outputs/json, report."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np

from weightless_mcu.api import report
from weightless_mcu.toolchain import build_firmware
from weightless_mcu.targets import get_target
from weightless_mcu.report import read_elf

from .conftest import REPO, mlperf

EXAMPLE = REPO / "examples" / "digits_mlp.onnx"


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "weightless_mcu", *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_verify_example_with_inputs_outputs_and_json(tmp_path):
    js, outs = tmp_path / "r.json", tmp_path / "o.npz"
    proc = cli("verify", EXAMPLE, "--inputs", REPO / "examples" / "digits_test.npz", "--json", js, "--outputs", outs)
    res = json.loads(js.read_text())
    for key in ("match", "max_abs_error", "max_rel_error", "samples", "instructions", "flash_bytes", "ram_bytes",
                "image_flash_bytes", "image_ram_bytes", "target"):
        assert key in res
    assert res["match"] and res["samples"] == 32 and res["target"] == "cortex-m4"
    probs = np.load(outs)["probabilities"]
    assert probs.shape == (32, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    labels = np.load(REPO / "examples" / "digits_test.npz")["labels"]
    assert (probs.argmax(axis=1) == labels).mean() >= 0.9  # the example model really classifies digits
    assert f"{res['instructions']:,} per inference" in proc.stdout


def test_compile_is_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cli("compile", mlperf("resnet8"), "-o", a, "-q")
    cli("compile", mlperf("resnet8"), "-o", b, "-q")
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _arm_size(elf):
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = map(int, out.splitlines()[1].split()[:3])
    return text, data, bss


def test_report_totals_equal_arm_none_eabi_size(tmp_path):
    out = tmp_path / "out"
    cli("compile", mlperf("vww"), "-o", out, "-q")
    elf = build_firmware(out, get_target("cortex-m4"), tmp_path / "build")
    text, data, bss = _arm_size(elf)
    image = read_elf(elf)
    assert (image.text, image.data, image.bss) == (text, data, bss)
    rep = report(out)
    assert rep["image_flash_bytes"] == text + data and rep["image_ram_bytes"] == data + bss
    # The model's flash: every layer's weights, plus kernel code and params.
    weights = json.loads((out / "manifest.json").read_text())
    total_weights = sum(c["bytes"] for step in weights["steps"] for c in step["consts"].values())
    assert total_weights < rep["flash_bytes"] < total_weights + 16 * 1024
    assert rep["ram_bytes"] == rep["arena_bytes"]
    js = tmp_path / "sizes.json"
    cli("report", out, "--json", js)
    assert json.loads(js.read_text())["image_flash_bytes"] == text + data


def test_generated_code_is_warning_free_with_strict_flags(tmp_path):
    out = tmp_path / "out"
    cli("compile", mlperf("resnet8"), "-o", out, "-q")
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wconversion", "-Wdouble-promotion",
             f"-I{out / 'runtime'}", f"-I{out}", "-c"]
    for src in [out / "model.c", *sorted((out / "runtime").glob("*.c"))]:
        for cc, arch in (("cc", []), ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"])):
            proc = subprocess.run([cc, *arch, *flags, str(src), "-o", str(tmp_path / "x.o")], capture_output=True, text=True)
            assert proc.returncode == 0, (cc, src.name, proc.stderr[:2000])


def test_output_directory_is_a_library(tmp_path):
    """model.h declares the entry point and shapes; runtime/ holds only the kernels the model calls."""
    out = tmp_path / "out"
    cli("compile", mlperf("ad01"), "-o", out, "--name", "ad01", "-q")
    header = (out / "model.h").read_text()
    assert "int wl_ad01_run(const float *input, float *output);" in header
    assert re.search(r"#define WL_AD01_ARENA_BYTES \d+", header)
    assert sorted(p.name for p in (out / "runtime").iterdir()) == ["wl_fc_f32.c", "wl_kernels.h"]


def test_init_config_round_trip(tmp_path):
    cfg = tmp_path / "w.toml"
    proc = cli("init-config", EXAMPLE, "-o", cfg)
    assert "2 layers with weights" in proc.stdout
    text = cfg.read_text()
    assert "[defaults]" in text and "density = 1.0" in text and '[layers."fc1"]  # Gemm, 2,048 weights' in text
    again = subprocess.run([sys.executable, "-m", "weightless_mcu", "init-config", str(EXAMPLE), "-o", str(cfg)],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwritten silently
    # edit one layer, compile with it: only that layer is compressed
    cfg.write_text(text.replace('[layers."fc1"]  # Gemm, 2,048 weights\n# density = 1.0', '[layers."fc1"]\ndensity = 0.25'))
    cli("compile", EXAMPLE, "-o", tmp_path / "o", "--config", cfg, "-q")
    layers = {r["name"]: r for r in json.loads((tmp_path / "o" / "manifest.json").read_text())["layers"]}
    assert layers["fc1"]["kept"] == 512 and layers["fc1"]["encoding"] == "sparse"  # auto: the smallest at density 0.25
    assert layers["fc2"]["kept"] == layers["fc2"]["positions"] == 320  # the default density 1.0
