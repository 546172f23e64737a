"""The generated C and the runtime hold up: warning-free under -Wall -Wextra -Werror
-Wshadow -Wconversion for every target, clean under AddressSanitizer and
UndefinedBehaviorSanitizer on the host over random tables and models, and a
firmware that hangs or faults is reported as such, with its model and target."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from weightless_mcu import compile_model, verify
from weightless_mcu.compress import make_settings
from weightless_mcu.errors import RunError
from weightless_mcu.qemu import run_firmware
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import WARN_FLAGS, build_firmware, build_image

from .conftest import make_model, rand
from .test_bloomier_c import all_cases, build_dump, expected_dump
from .test_ops import CASES

H = helper.make_node
TARGETS = ["cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "host"]


def kitchen_sink(path):
    """One model through most kernels: conv (dense and depthwise), pools, pad, slice,
    transposed conv, transpose, reduce, concat, gather, compressible Gemm and MatMul."""
    nodes = [
        H("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), H("Relu", ["c1"], ["r1"]),
        H("Conv", ["r1", "wd"], ["d"], pads=[1, 1, 1, 1], group=8),
        H("MaxPool", ["d"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        H("AveragePool", ["d"], ["ap"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        H("Add", ["mp", "ap"], ["s"]), H("Pad", ["s", "pads"], ["ps"], mode="reflect"),
        H("Slice", ["ps", "st", "en", "axs"], ["sl"]),
        H("ConvTranspose", ["sl", "wt"], ["ct"], strides=[2, 2]), H("Transpose", ["ct"], ["tr"], perm=[0, 2, 3, 1]),
        H("ReduceMean", ["tr"], ["rm"], axes=[1, 2], keepdims=0),
        H("GlobalAveragePool", ["s"], ["gp"]), H("Flatten", ["gp"], ["fl"]),
        H("Concat", ["rm", "fl"], ["cat"], axis=1), H("Gather", ["cat", "idx"], ["ga"], axis=1),
        H("Gemm", ["ga", "wg", "bg"], ["g"], transB=1), H("Tanh", ["g"], ["t"]),
        H("MatMul", ["t", "wm"], ["mm"]), H("Softmax", ["mm"], ["y"]),
    ]
    inits = {"w1": rand(8, 3, 3, 3, seed=1), "b1": rand(8, seed=2), "wd": rand(8, 1, 3, 3, seed=3),
             "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "st": np.array([1, 1], np.int64),
             "en": np.array([5, 5], np.int64), "axs": np.array([2, 3], np.int64), "wt": rand(8, 4, 2, 2, seed=4),
             "idx": np.array([11, 0, 5, 3, 7, 1, 2, 4, 6, 8, 9, 10], np.int64), "wg": rand(32, 12, seed=5),
             "bg": rand(32, seed=6), "wm": rand(32, 10, seed=7)}
    return make_model(path, nodes, {"x": [1, 3, 8, 8]}, {"y": None}, inits, 13)


@pytest.mark.parametrize("target", TARGETS)
def test_generated_c_builds_without_warnings_on_every_target(tmp_path, target):
    assert {"-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wconversion"} <= set(WARN_FLAGS)
    out = tmp_path / "out"
    m = compile_model(kitchen_sink(tmp_path / "k.onnx"), out, target=target,
                      compression=make_settings({"density": 0.4, "clusters": 7, "bits": 5}))
    assert any(r["encoding"] == "bloomier" for r in m["layers"])
    assert len({s["kernel"] for s in m["steps"]}) >= 12
    assert build_firmware(out, get_target(target), tmp_path / "build").exists()  # -Werror: any warning fails


def _sanitized_outputs(tmp_path, model, compression, inputs):
    out = tmp_path / "out"
    m = compile_model(model, out, target="host", compression=compression)
    elf = build_firmware(out, get_target("host"), tmp_path / "asan", sanitize=True)
    size = sum(int(np.prod(o["shape"])) for o in m["outputs"])
    return run_firmware(elf, get_target("host"), inputs, size, model=m["name"]).outputs


def test_decoder_reads_only_its_tables_under_sanitizers(tmp_path):
    """Every position of every table shape decodes, under ASan (a read outside a
    table's array aborts) and UBSan, to exactly what the Python decoder says."""
    cases = all_cases()
    elf, total = build_dump(tmp_path, "host", cases, sanitize=True)
    out = run_firmware(elf, get_target("host"), np.zeros((1, 1), np.float32), max(total, 1), model="decode-dump").outputs[0]
    want = expected_dump(cases)
    assert np.array_equal(out.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("seed", range(4))
def test_random_compressed_models_under_sanitizers(tmp_path, seed):
    """The kitchen-sink model with random table settings, and a random draw of the op
    cases: sanitized host builds run clean and give the verified outputs."""
    rng = np.random.default_rng(seed)
    bits = int(rng.integers(3, 12))
    settings = make_settings({"density": float(rng.uniform(0.1, 1.0)), "bits": bits,  # >= 21 weights kept per layer
                              "clusters": int(rng.integers(1, min(16, 2**bits - 1) + 1)), "hashes": int(rng.integers(2, 5)),
                              "min_positions": 200})
    model = kitchen_sink(tmp_path / "k.onnx")
    x = rand(3, 3, 8, 8, seed=seed)
    np.savez(tmp_path / "x.npz", x=x)
    res = verify(model, target="host", inputs=tmp_path / "x.npz", outputs=tmp_path / "y.npz", compression=settings)
    assert res["match"]
    got = _sanitized_outputs(tmp_path, model, settings, x.reshape(3, -1))
    assert np.allclose(got, np.load(tmp_path / "y.npz")["y"].reshape(3, -1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", sorted(np.random.default_rng(7).choice(sorted(CASES), 12, replace=False)))
def test_op_cases_under_sanitizers(tmp_path, case):
    nodes, inputs, outputs, inits, *opset = CASES[case]
    path = make_model(tmp_path / f"{case}.onnx", nodes, inputs, outputs, inits, *opset)
    arrays = [rand(2, *shape[1:] if shape and shape[0] == 1 else shape, seed=i) for i, shape in enumerate(inputs.values())]
    np.savez(tmp_path / "x.npz", **dict(zip(inputs, arrays)))
    res = verify(path, target="host", inputs=tmp_path / "x.npz", outputs=tmp_path / "y.npz")
    assert res["match"]
    got = _sanitized_outputs(tmp_path, path, None, np.concatenate([a.reshape(2, -1) for a in arrays], axis=1))
    want = np.concatenate([v.reshape(2, -1) for v in np.load(tmp_path / "y.npz").values()], axis=1)
    assert np.allclose(got, want, rtol=1e-6, atol=1e-7)


def _broken_firmware(tmp_path, body: str, name: str):
    src = tmp_path / f"{name}.c"
    src.write_text(f"int wl_{name}_run(const float *in, float *out);\n"
                   f"int wl_{name}_run(const float *in, float *out)\n{{\n    (void)in;\n    (void)out;\n{body}\n}}\n")
    header = (f"int wl_{name}_run(const float *in, float *out);\n#define WL_HARNESS_INPUT_SIZE 1\n"
              f"#define WL_HARNESS_OUTPUT_SIZE 1\n#define WL_HARNESS_RUN(in, out) wl_{name}_run(in, out)\n")
    return build_image(get_target("cortex-m4"), tmp_path / f"build-{name}", [src], [tmp_path], header)


def test_hang_is_reported_as_a_timeout(tmp_path):
    elf = _broken_firmware(tmp_path, "    for (;;)\n        __asm volatile(\"\");", "spin")
    with pytest.raises(RunError, match=r"model 'spin' for cortex-m4 did not finish within 3 s under QEMU \(mps2-an386\) \(hung\?\)"):
        run_firmware(elf, get_target("cortex-m4"), np.zeros((1, 1), np.float32), 1, model="spin", timeout=3)


def test_fault_is_reported_as_a_fault(tmp_path):
    elf = _broken_firmware(tmp_path, "    __builtin_trap();", "trap")  # an undefined instruction: HardFault
    with pytest.raises(RunError, match=r"model 'trap' for cortex-m4 faulted under QEMU \(mps2-an386\) \(HardFault"):
        run_firmware(elf, get_target("cortex-m4"), np.zeros((1, 1), np.float32), 1, model="trap", timeout=30)


def test_sanitized_build_catches_an_out_of_bounds_read(tmp_path):
    """The instrumentation is really there: a table read one past its end aborts the run."""
    src = tmp_path / "oob.c"
    src.write_text("static const float table[4] = {1.0f, 2.0f, 3.0f, 4.0f};\n"
                   "int wl_oob_run(const float *in, float *out);\n"
                   "int wl_oob_run(const float *in, float *out)\n{\n    out[0] = table[(int)in[0]];\n    return 0;\n}\n")
    header = ("int wl_oob_run(const float *in, float *out);\n#define WL_HARNESS_INPUT_SIZE 1\n"
              "#define WL_HARNESS_OUTPUT_SIZE 1\n#define WL_HARNESS_RUN(in, out) wl_oob_run(in, out)\n")
    elf = build_image(get_target("host"), tmp_path / "b", [src], [tmp_path], header, sanitize=True)
    assert run_firmware(elf, get_target("host"), np.array([[3.0]], np.float32), 1, model="oob").outputs[0, 0] == 4.0
    with pytest.raises(RunError, match="model 'oob' for host failed on the host"):
        run_firmware(elf, get_target("host"), np.array([[4.0]], np.float32), 1, model="oob")


def test_long_runs_report_progress(tmp_path, monkeypatch):
    """A QEMU run tells how many samples are done every few seconds (here every 2 ms: an idle
    machine runs these 400 samples in well under a tenth of a second)."""
    import weightless_mcu.qemu as qemu

    from .conftest import REPO

    monkeypatch.setattr(qemu, "PROGRESS_EVERY", 0.002)
    messages: list[str] = []
    res = verify(REPO / "examples" / "digits_mlp.onnx", samples=400, progress=messages.append)
    assert res["match"] and len(res["instructions_per_sample"]) == 400
    done = [int(m.split("/")[0]) for m in messages if m.endswith(")") and "/400 samples done" in m]
    assert done and done == sorted(done) and done[-1] <= 400
