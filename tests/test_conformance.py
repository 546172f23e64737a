"""The ONNX backend node tests through the generated C: a representative set
on the host build, and a few under QEMU on cortex-m4."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from weightless_mcu import conformance

from .conftest import REPO

OPS = conformance.default_ops()


@pytest.fixture(scope="module")
def host_outcomes():
    return conformance.run(OPS, "host", lambda _: None)


@pytest.mark.slow
def test_node_cases_pass_on_the_host(host_outcomes):
    summary = conformance.summarize(host_outcomes)["ops"]
    failed = [f"{o.case}: {o.reason}" for o in host_outcomes if o.status == "failed"]
    assert not failed
    assert set(summary) == OPS
    for op, row in summary.items():
        assert row["passed"] >= 1, op
    # skips name their reason (e.g. 3-D pooling, training-mode BatchNormalization)
    assert all(o.reason for o in host_outcomes if o.status == "skipped")
    # onnx's pytorch-converted Conv/pool cases (batch 2, old opsets) run too, item by item
    converted = [o for o in host_outcomes if o.case.startswith("pytorch_Conv2d")]
    assert len(converted) >= 10 and all(o.status == "passed" for o in converted)
    # two activations at run time where the op takes them (Add, MatMul, Concat), constants where it needs them
    by_case = {o.case: o for o in host_outcomes}
    assert by_case["test_add"].runtime_inputs == 2 and by_case["test_matmul_3d"].runtime_inputs == 2
    assert by_case["test_basic_conv_with_padding"].status == "passed" and by_case["test_basic_conv_with_padding"].runtime_inputs == 1
    # int8 and uint8 tensors in and out: the int8 ops of the standard
    for case in ("test_quantizelinear", "test_dequantizelinear", "test_qlinearconv", "test_qlinearmatmul_2D_uint8_float32"):
        assert by_case[case].status == "passed", by_case[case]
    training = next(o for o in host_outcomes if o.case == "test_training_dropout")
    assert training.status == "skipped" and "training-mode Dropout" in training.reason  # random: refused, not bypassed


@pytest.mark.slow
def test_node_cases_pass_under_qemu(host_outcomes):
    """The same cases as firmware on cortex-m4: every case that passes on the host passes,
    except those whose tensors do not fit the board's RAM (a 1000x1000 pooling input)."""
    outcomes = conformance.run(OPS, "cortex-m4", lambda _: None)
    assert not [f"{o.case}: {o.reason}" for o in outcomes if o.status == "failed"]
    on_host = {o.case for o in host_outcomes if o.status == "passed"}
    on_board = {o.case for o in outcomes if o.status == "passed"}
    too_big = {o.case for o in outcomes if o.status == "skipped" and "does not fit" in o.reason}
    assert on_board == on_host - too_big
    assert len(too_big) <= 2 and len(on_board) >= 250


@pytest.mark.slow
def test_command_writes_the_table_and_json(tmp_path, capsys):
    js, md = tmp_path / "c.json", tmp_path / "c.md"
    assert conformance.main(["--ops", "Relu,Sigmoid,Sin", "--json", str(js), "--markdown", str(md), "-q"]) == 0
    out = capsys.readouterr().out
    assert "| Relu | 1 | 1 | 0 | 0 |" in out and "skipped: test_sin" in out
    data = json.loads(js.read_text())
    assert data["ops"]["Sigmoid"] == {"cases": 2, "passed": 2, "failed": 0, "skipped": 0}
    assert data["ops"]["Sin"]["skipped"] == data["ops"]["Sin"]["cases"] >= 1
    text = md.read_text()
    assert "| **total** |" in text and "- unsupported op Sin (" in text


def test_unknown_target_is_one_clear_error(capsys):
    assert conformance.main(["--ops", "Relu", "--target", "cortex-m99"]) == 4
    assert "unknown target 'cortex-m99'" in capsys.readouterr().err


@pytest.mark.slow
def test_no_case_recorded_as_passing_is_refused_or_fails_now(host_outcomes):
    """docs/conformance.json records each case's outcome (written by the command in
    docs/CONFORMANCE.md). A refusal is a skip, so a lowering that starts refusing
    what it handled (strided Conv, say) shows here, not as a quiet drop in a count."""
    recorded = json.loads((REPO / "docs" / "conformance.json").read_text())["cases"]
    now = {o.case: o for o in host_outcomes}
    lost = sorted(f"{c}: {now[c].status} ({now[c].reason})" if c in now else f"{c}: not run"
                  for c, s in recorded.items() if s == "passed" and (c not in now or now[c].status != "passed"))
    assert not lost
    assert sum(s == "passed" for s in recorded.values()) >= 250


def _relu_of_constant_case():
    """y = x + Relu(c): Relu of an initializer is folded at compile time."""
    c = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    x = np.array([[0.5, 0.5, 0.5, 0.5]], np.float32)
    graph = helper.make_graph([helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Add", ["x", "r"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(c, "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return conformance.DirCase("relu_of_constant", model, [([x], [x + np.maximum(c, 0)])])


def test_an_exception_while_folding_is_a_failure_not_a_refusal(tmp_path, monkeypatch):
    import weightless_mcu.passes as passes

    case = _relu_of_constant_case()
    assert conformance.run_case(case, "host", tmp_path).status == "passed"

    def broken(*_):
        raise ValueError("evaluator bug")

    monkeypatch.setattr(passes, "_evaluate", broken)
    outcome = conformance.run_case(case, "host", tmp_path)
    assert outcome.status == "failed" and "could not be evaluated" in outcome.reason


def test_the_command_fails_when_a_case_fails(monkeypatch, capsys):
    monkeypatch.setattr(conformance, "run", lambda *_: [conformance.Outcome("t", "Relu", "passed"),
                                                        conformance.Outcome("u", "Relu", "failed", "differs")])
    assert conformance.main(["--ops", "Relu", "-q"]) == 1
    assert "failed: u: differs" in capsys.readouterr().out


def test_int8_node_cases_run_with_int8_tensors_in_and_out():
    """QuantizeLinear gives uint8, DequantizeLinear and QLinearConv take it (QuantizeLinear and
    DequantizeLinear at opset 28, run by onnxruntime at 21); per-axis and float16 cases are skipped
    with their reason."""
    outcomes = {o.case: o for o in conformance.run({"QuantizeLinear", "DequantizeLinear", "QLinearConv"}, "host",
                                                   lambda _: None)}
    for case in ("test_quantizelinear", "test_dequantizelinear", "test_qlinearconv"):
        assert outcomes[case].status == "passed", outcomes[case]
        assert outcomes[case].runtime_inputs == 1
    assert not [o for o in outcomes.values() if o.status == "failed"]
    assert "per-tensor" in outcomes["test_quantizelinear_axis"].reason
