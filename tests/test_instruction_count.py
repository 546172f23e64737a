"""Instruction counts under QEMU are exact: a probe whose run function executes a
known number of instructions (nops, and a two-instruction loop taken as often as
its input says) gives counts that differ by exactly the instructions added,
between two builds and between samples of one run, and the same counts again;
and each count equals what the disassembly says is executed between the two
markers: the harness's call (argument set-up, bl, saving the status) and the
run function's straight-line instructions plus the loop's extra passes."""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from weightless_mcu.qemu import run_firmware
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_image

from .conftest import REPO, rand


def _probe(tmp_path, target: str, nops: int):
    header = ("int wl_count_probe_run(const float *in, float *out);\n#define WL_HARNESS_INPUT_SIZE 1\n"
              "#define WL_HARNESS_OUTPUT_SIZE 1\n#define WL_HARNESS_RUN(in, out) wl_count_probe_run(in, out)\n"
              f'#define WL_PROBE_NOPS "{nops}"\n')
    build = tmp_path / f"build-{target}-{nops}"
    return build_image(get_target(target), build, [REPO / "tests" / "c" / "wl_count_probe.c"], [build], header)


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_counts_differ_by_exactly_the_instructions_added(tmp_path, target):
    loops = np.array([[1.0], [2.0 ** 4], [2.0 ** 104]], np.float32)  # the loop taken 1, 5 and 105 times
    counts = {}
    for nops in (10, 1010):
        elf = _probe(tmp_path, target, nops)
        run = run_firmware(elf, get_target(target), loops, 1, model="probe")
        assert np.array_equal(run.outputs[:, 0], loops[:, 0])
        counts[nops] = run.instructions
        assert run_firmware(elf, get_target(target), loops, 1, model="probe").instructions == run.instructions  # repeatable
    for c in counts.values():
        assert c[1] - c[0] == 2 * 4 and c[2] - c[1] == 2 * 100  # subs + bne per extra pass of the loop
    assert [b - a for a, b in zip(counts[10], counts[1010])] == [1000, 1000, 1000]


def _static_counts(elf) -> tuple[int, int]:
    """(instructions of main strictly between the last bl to the begin marker and the bl
    to the end marker, instructions of the probe's run function), from objdump."""
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout

    def body(fn):
        block = re.search(rf"^[0-9a-f]+ <{fn}>:\n(.*?)(?:\n\n|\Z)", dis, re.S | re.M).group(1)
        return [line for line in block.splitlines() if re.match(r"\s+[0-9a-f]+:\t[0-9a-f ]+\t", line)]

    main = body("main")
    begin = max(i for i, line in enumerate(main) if "<wlh_count_begin>" in line)
    end = next(i for i in range(begin, len(main)) if "<wlh_count_end>" in main[i])
    assert any("<wl_count_probe_run>" in line for line in main[begin:end])
    run = body("wl_count_probe_run")
    ret = next(i for i, line in enumerate(run) if re.search(r"\tbx\tlr|\tpop\t\{.*pc\}", line))
    run = run[:ret + 1]  # what follows the return is alignment padding, never executed
    assert sum("\tbne" in line for line in run) == 1 and sum("\tnop" in line for line in run) == 10
    assert not any(re.search(r"\tbl\t|\tb\.n\t|\tb\.w\t|\tc?bn?z", line) for line in run)  # straight-line but the loop
    return end - begin - 1, len(run)


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_counts_equal_the_disassembly(tmp_path, target):
    elf = _probe(tmp_path, target, 10)
    loops = np.array([[1.0], [2.0], [2.0 ** 29]], np.float32)  # 1, 2 and 30 times
    call, run = _static_counts(elf)
    got = run_firmware(elf, get_target(target), loops, 1, model="probe").instructions
    assert got == [call + run + 2 * (k - 1) for k in (1, 2, 30)]


def _mlp(tmp_path, name: str, layers: list[tuple[int, int]]):
    from onnx import helper

    from .conftest import make_model, rand
    nodes, inits, x = [], {}, "x"
    for k, (n_in, n_out) in enumerate(layers):
        nodes.append(helper.make_node("Gemm", [x, f"w{k}", f"b{k}"], [f"h{k}"], transB=1))
        inits[f"w{k}"], inits[f"b{k}"] = rand(n_out, n_in, seed=k), rand(n_out, seed=10 + k)
        x = f"h{k}"
    return make_model(tmp_path / f"{name}.onnx", nodes, {"x": [1, layers[0][0]]}, {x: [1, layers[-1][1]]}, inits)


def test_a_profile_splits_the_count_among_the_steps(tmp_path):
    """verify --profile: the steps' counts add up to the inference's count (but for the run
    function's return), and a step costs what the same layer costs alone in another model."""
    from weightless_mcu import verify
    both = verify(_mlp(tmp_path, "two", [(64, 48), (48, 8)]), target="cortex-m4", samples=2, profile=True)
    alone = verify(_mlp(tmp_path, "one", [(48, 8)]), target="cortex-m4", samples=2, profile=True)
    plain = verify(_mlp(tmp_path, "two", [(64, 48), (48, 8)]), target="cortex-m4", samples=2)
    steps = [s["instructions"] for s in both["steps"]]
    assert [s["kernel"] for s in both["steps"]] == ["fc", "fc"] and min(steps) > 0
    assert 0 <= both["instructions"] - sum(steps) <= 12
    assert steps[0] > 5 * steps[1]  # 3,072 against 384 multiply-adds
    # The second layer alone: the same kernel call; only the run function's prologue differs.
    assert abs(alone["steps"][0]["instructions"] - steps[1]) <= 12
    # The markers cost a few instructions per step; a build without them counts that much less.
    assert 0 < both["instructions"] - plain["instructions"] <= 8 * len(steps)
    assert "instructions" not in plain["steps"][0]
    # MACs and instructions per MAC per step, and per weight layer in layers[].
    assert [s["macs"] for s in both["steps"]] == [64 * 48, 48 * 8]
    assert [s["instructions_per_mac"] for s in both["steps"]] == [round(n / m, 4) for n, m in zip(steps, (3072, 384))]
    assert [(r["instructions"], r["macs"]) for r in both["layers"]] == list(zip(steps, (3072, 384)))
    # ... in the terminal report and on the HTML page.
    from weightless_mcu.report_html import render_html
    from weightless_mcu.report_text import size_lines

    text = "\n".join(size_lines(both))
    assert "per MAC" in text and f"{steps[0] / 3072:.2f}" in text and f"{sum(steps) / 3456:.2f}" in text
    html = render_html(both)
    assert "Instructions per layer" in html and f"<td>{steps[1]:,}</td>" in html and f"<td>{steps[1] / 384:.2f}</td>" in html
    assert "Instructions per layer" not in render_html(plain)


def test_the_macs_of_each_step_float_int8_and_on_tables(tmp_path):
    """The MACs the manifest gives each step: a convolution out_c x out_h x out_w x in_c / group x
    k_h x k_w, a fully connected layer in x out, none for the other steps; the same for the int8
    kernels and for int8 layers on tables."""
    from weightless_mcu import compile_model
    from weightless_mcu.compress import make_settings

    from .test_static_quantize import _float_cnn

    src = _float_cnn(tmp_path)
    want = [2 * 6 * 10 * 10 * 9, 6 * 5 * 5 * 9, 6 * 10 * 5 * 5, 10 * 4]  # conv, depthwise (stride 2), pointwise, fc
    np.savez(tmp_path / "cal.npz", x=np.stack([rand(2, 10, 10, seed=i) for i in range(4)]))
    for out, kwargs in (("f", {}), ("q", dict(quantize="int8", calibration_data=tmp_path / "cal.npz")),
                        ("t", dict(quantize="int8", calibration_data=tmp_path / "cal.npz",
                                   compression=make_settings(dict(density=0.5, clusters=4, encoding="codebook",
                                                                  min_positions=0))))):
        manifest = compile_model(src, tmp_path / out, target="host", **kwargs)
        macs = [(s["kernel"], s["macs"]) for s in manifest["steps"] if s["macs"]]
        assert [m for _, m in macs] == want, macs
        assert all(s["macs"] == 0 for s in manifest["steps"] if "conv" not in s["kernel"] and "fc" not in s["kernel"])
    assert {k for k, _ in macs} == {"conv2d_encoded_s8", "depthwise_conv2d_encoded_s8", "fc_encoded_s8"}


def test_the_macs_of_a_transposed_convolution_and_a_matmul(tmp_path):
    from onnx import helper

    from weightless_mcu import compile_model

    from .conftest import make_model

    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["c"]),
             helper.make_node("MatMul", ["a", "b"], ["m"])]
    src = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 2, 4, 4], "a": [2, 3, 4], "b": [2, 4, 5]},
                     {"c": [1, 3, 6, 6], "m": [2, 3, 5]}, {"w": rand(2, 3, 3, 3)})
    manifest = compile_model(src, tmp_path / "out", target="host")
    assert [(s["kernel"], s["macs"]) for s in manifest["steps"]] == [("conv_transpose2d", 2 * 4 * 4 * 3 * 9),
                                                                      ("matmul", 2 * 3 * 4 * 5)]
