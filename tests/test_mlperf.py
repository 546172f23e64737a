"""The three MLPerf Tiny models, compiled, run under QEMU and compared with
onnxruntime on 8 inputs within 1e-4 x max|output|."""
from __future__ import annotations

import pytest

from weightless_mcu import verify

from .conftest import mlperf


@pytest.mark.parametrize("name", ["ad01", "resnet8", "vww"])
def test_mlperf_model_matches_onnxruntime_on_cortex_m4(name):
    res = verify(mlperf(name), target="cortex-m4", samples=8)
    assert res["match"] and res["max_rel_error"] <= 1e-4, res
    assert res["samples"] == 8
    per = res["instructions_per_sample"]
    # Only clamps and max() branch on data: the count barely moves between inputs.
    assert res["instructions"] == max(per) > 0 and max(per) - min(per) <= 1e-4 * max(per)
    # RAM is the arena; the arena stays within 10% of its lower bound.
    assert res["ram_bytes"] == res["arena_bytes"] <= 1.1 * res["arena_lower_bound_bytes"]
    assert res["flash_bytes"] < res["image_flash_bytes"]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m33", "cortex-m7"])
def test_ad01_on_other_cores(target):
    res = verify(mlperf("ad01"), target=target, samples=8)
    assert res["match"], res
    assert res["instructions"] > 0


def test_soft_float_core_executes_more_instructions():
    """Cortex-M3 has no FPU: the same model costs several times the instructions."""
    m3 = verify(mlperf("ad01"), target="cortex-m3", samples=1)["instructions"]
    m4 = verify(mlperf("ad01"), target="cortex-m4", samples=1)["instructions"]
    assert m3 > 3 * m4
