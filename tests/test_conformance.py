"""The ONNX backend node tests through the generated C: a representative set
on the host build, and a few under QEMU on cortex-m4."""
from __future__ import annotations

import json

import pytest

from weightless_mcu import conformance

HOST_OPS = {"Conv", "Gemm", "BatchNormalization", "Softmax", "LogSoftmax", "MaxPool", "AveragePool", "Transpose",
            "Flatten", "Reshape", "LeakyRelu", "ReduceMean", "Dropout", "PRelu", "Concat", "Pad", "Gather", "MatMul", "ConvTranspose"}


def test_node_cases_pass_on_the_host():
    outcomes = conformance.run(HOST_OPS, "host", lambda _: None)
    summary = conformance.summarize(outcomes)["ops"]
    failed = [f"{o.case}: {o.reason}" for o in outcomes if o.status == "failed"]
    assert not failed
    assert set(summary) == HOST_OPS
    for op, row in summary.items():
        assert row["passed"] >= 1, op
    # skips name their reason (e.g. 3-D pooling, training-mode BatchNormalization)
    assert all(o.reason for o in outcomes if o.status == "skipped")
    # onnx's pytorch-converted Conv/pool cases (batch 2, old opsets) run too, item by item
    converted = [o for o in outcomes if o.case.startswith("pytorch_Conv2d")]
    assert len(converted) >= 10 and all(o.status == "passed" for o in converted)
    training = next(o for o in outcomes if o.case == "test_training_dropout")
    assert training.status == "skipped" and "training-mode Dropout" in training.reason  # random: refused, not bypassed


@pytest.mark.parametrize("case", ["test_conv_with_strides_padding", "test_maxpool_2d_pads", "test_gemm_all_attributes",
                                  "test_batchnorm_example", "test_prelu_broadcast"])
def test_node_cases_pass_under_qemu(case, tmp_path):
    (tc,) = [tc for tc in conformance.node_cases() if tc.name == case]
    outcome = conformance.run_case(tc, "cortex-m4", tmp_path)
    assert outcome.status == "passed", outcome.reason


def test_command_writes_the_table_and_json(tmp_path, capsys):
    js = tmp_path / "c.json"
    assert conformance.main(["--ops", "Relu,Sigmoid,Abs", "--json", str(js), "-q"]) == 0
    out = capsys.readouterr().out
    assert "| Relu | 1 | 1 | 0 | 0 |" in out and "skipped: test_abs" in out
    data = json.loads(js.read_text())
    assert data["ops"]["Sigmoid"] == {"cases": 2, "passed": 2, "failed": 0, "skipped": 0}
    assert data["ops"]["Abs"]["skipped"] == data["ops"]["Abs"]["cases"] >= 1
