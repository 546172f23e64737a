"""Shared helpers: small models built with onnx.helper, saved to tmp_path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
MLPERF = REPO / "models" / "mlperf-tiny"
MLPERF_MODELS = {
    "ad01": MLPERF / "anomaly_detection_ad01_fp32.onnx",
    "resnet8": MLPERF / "image_classification_resnet8_fp32.onnx",
    "vww": MLPERF / "visual_wake_words_mobilenet_v1_025_fp32.onnx",
}


def make_model(path: Path, nodes, inputs: dict, outputs: dict, inits: dict | None = None, opset: int = 13) -> Path:
    """inputs/outputs: name -> shape (None for an output shape left to inference)."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for out in model.graph.output:  # outputs given as None take the inferred shape
        if outputs[out.name] is None and known.get(out.name) is not None and known[out.name].type.tensor_type.HasField("shape"):
            out.type.tensor_type.shape.CopyFrom(known[out.name].type.tensor_type.shape)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def run_c_check(tmp_path, target: str, name: str, firmware_sources: list[str], outputs: int) -> np.ndarray:
    """Build tests/c/<name>_check.c (its cases in tmp_path) with those runtime sources as the
    harness's model, run it once on the target, and return its `outputs` floats."""
    from weightless_mcu.qemu import run_firmware
    from weightless_mcu.resources import firmware_dir
    from weightless_mcu.targets import get_target
    from weightless_mcu.toolchain import build_image

    header = (f"int {name}_check_run(const float *in, float *out);\n#define WL_HARNESS_INPUT_SIZE 1\n"
              f"#define WL_HARNESS_OUTPUT_SIZE {outputs}\n#define WL_HARNESS_RUN(in, out) {name}_check_run(in, out)\n")
    fw = firmware_dir()
    elf = build_image(get_target(target), tmp_path / "build",
                      [REPO / "tests" / "c" / f"{name}_check.c", *(fw / "src" / s for s in firmware_sources)],
                      [tmp_path, fw / "include"], header)
    return run_firmware(elf, get_target(target), np.zeros((1, 1), np.float32), outputs, model=name).outputs[0]


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@pytest.fixture
def model_path(tmp_path):
    return tmp_path / "model.onnx"


def mlperf(name: str) -> Path:
    """A bundled MLPerf Tiny model (models/mlperf-tiny/, carried by the repository)."""
    path = MLPERF_MODELS[name]
    assert path.exists(), f"{path} is missing from the checkout"
    return path


# --- skips --------------------------------------------------------------------------
# After scripts/install.sh nothing is missing, so a skip means a test did not run for
# want of something: the run fails, unless the skip's reason starts with "optional:"
# (documented optional; none today).
_undocumented_skips: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _note_skip(report)


def pytest_collectreport(report):  # a module skipped as a whole (pytest.importorskip at its top)
    if report.skipped:
        _note_skip(report)


def _note_skip(report):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not reason.startswith("optional:"):
        _undocumented_skips.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    if _undocumented_skips:
        terminalreporter.write_line(f"{len(_undocumented_skips)} test(s) skipped for want of something that "
                                    f"scripts/install.sh installs; this run fails:", red=True)
        for line in _undocumented_skips:
            terminalreporter.write_line(f"  {line}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if _undocumented_skips and session.exitstatus == 0:
        session.exitstatus = 1
