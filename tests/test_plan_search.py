"""The planned budget search (--budget-search plan): its plan over measured costs,
checked against brute force, and its contract on a small model."""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from weightless_mcu.api import Retraining, _prepare
from weightless_mcu.compress import make_settings
from weightless_mcu.compress.settings import LayerSettings
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train.budget_search import TrialRunner
from weightless_mcu.train.network import Network
from weightless_mcu.train.plan_search import MAX_PLANS, LayerOptions, LayerPlan, Option, PlanTrial, frontier, monotone, plan_for
from weightless_mcu.train.trainer import TrainConfig
from weightless_mcu.train.weightless import Context, RetrainOptions

from .test_budget_search import trained  # noqa: F401 (fixture)


def test_monotone_makes_a_lighter_cut_cost_no_more_than_a_deeper_one():
    # from the deepest cut to the lightest; noise made the 0.4 rung cheaper than the 0.6 one
    assert monotone([0.30, 0.10, 0.02, 0.05, -0.01]) == [0.30, 0.10, 0.02, 0.02, 0.0]
    assert monotone([0.0, 0.2]) == [0.0, 0.0]


def _layers(rng, n, feeds):
    layers = []
    for i in range(n):
        positions = int(rng.integers(50, 400))
        channels = [(c, float(cost)) for c, cost in zip((0.25, 0.5), sorted(rng.uniform(0, 0.3, 2))[::-1])]
        options = [Option(1.0, 0, "dense", 0, 4 * positions, 0.0)]
        for d in (0.1, 0.3):
            for k in (4, 15):
                options.append(Option(d, k, "sparse", 0, int(rng.integers(10, 2 * positions)), float(rng.uniform(0, 0.5))))
        layers.append(LayerOptions(i, f"l{i}", positions, channels + [(1.0, 0.0)], options, feeds[i]))
    return layers


def _brute_force(mu, layers):
    """Every combination of channel fraction and option per layer."""
    best = None
    for choice in itertools.product(*[[(c, cc, o) for c, cc in lay.channels for o in lay.options] for lay in layers]):
        value, prev, ok = 0.0, 1.0, True
        for lay, (c, cc, o) in zip(layers, choice):
            scale = c * prev
            if o.encoding != "dense" and o.clusters > o.density * lay.positions * scale:
                ok = False
                break
            value += o.bytes * scale + mu * (cc + o.cost)
            prev = c if lay.feeds_next else 1.0
        if ok and (best is None or value < best - 1e-9):
            best = value
    return best


@pytest.mark.parametrize("seed", range(4))
def test_the_plan_is_the_brute_force_optimum_of_bytes_plus_mu_cost(seed):
    rng = np.random.default_rng(seed)
    layers = _layers(rng, 3, [True, bool(seed % 2), False])
    for mu in (0.0, 30.0, 300.0, 3000.0, 1e6):
        nbytes, cost, plan = plan_for(mu, layers)
        assert [p.layer for p in plan] == [0, 1, 2]
        assert nbytes + mu * cost == pytest.approx(_brute_force(mu, layers), rel=1e-9)
        # the totals it reports are those of the plan it returns
        prev, b, c = 1.0, 0.0, 0.0
        for lay, p in zip(layers, plan):
            b += p.option.bytes * p.channels * prev
            c += dict(lay.channels)[p.channels] + p.option.cost
            prev = p.channels if lay.feeds_next else 1.0
        assert (b, c) == pytest.approx((nbytes, cost))


def test_the_frontier_runs_from_fewest_bytes_to_least_cost():
    layers = _layers(np.random.default_rng(7), 4, [True, True, False, False])
    plans = frontier(layers)
    assert 2 <= len(plans) <= MAX_PLANS
    nbytes = [p[0] for p in plans]
    costs = [p[1] for p in plans]
    assert nbytes == sorted(nbytes) and all(a > b for a, b in zip(costs, costs[1:]))
    assert costs[-1] == 0.0 and all(p.option.encoding == "dense" and p.channels == 1.0 for p in plans[-1][2])
    assert nbytes[0] == pytest.approx(plan_for(0.0, layers)[0])


def test_the_planned_search_compresses_within_the_budget_or_says_so(trained):  # noqa: F811
    path, npz, _ = trained
    log = []
    retraining = Retraining(npz, TrainConfig(epochs=1, lr=2e-3), seeds=1, accuracy_budget=1.0, jobs=2, search="plan")
    _, graph, reports = _prepare(path, None, None, make_settings(dict(min_positions=0)), log.append, retraining)
    budget = graph.compression_summary["budget"]
    assert any(line.startswith("profile:") for line in log) and any(line.startswith("plan:") for line in log)
    (chosen,) = [line for line in log if " chosen: " in line]
    stored = sum(r.bytes for r in reports)
    assert f"{stored:,} B" in chosen
    # the smallest plan that kept the budget among those checked
    kept = [int(m.group(1).replace(",", "")) for m in (re.search(r": ([\d,]+) B, validation accuracy [\d.]+% "
                                                                  r"\(needs [\d.]+%\) keeps it", line) for line in log) if m]
    assert kept and min(kept) == stored
    assert budget["met"] and budget["drop_points"] <= 1.0 + 1e-6
    assert stored < 4 * (32 * 96 + 96 * 48 + 48 * 10) / 20


def test_a_failed_plan_leaves_no_trace_in_the_next(trained):  # noqa: F811
    path, _, data = trained
    _, graph = load_model(path)
    run_passes(graph)
    ctx = Context(graph, data, RetrainOptions(TrainConfig(epochs=1, lr=2e-3), seeds=1, accuracy_budget=1.0), lambda _: None)
    saved = Network(graph)
    s = LayerSettings(min_positions=0, seed=7)
    dense = LayerPlan(2, 1.0, Option(1.0, 0, "dense", 0, 0, 0.0))
    fails = PlanTrial(0, (LayerPlan(0, 0.5, Option(0.01, 40, "sparse", 0, 0, 0.0)), dense), (s, s))  # 40 clusters, 16 kept
    works = PlanTrial(1, (LayerPlan(0, 0.5, Option(0.3, 4, "sparse", 0, 0, 0.0)), dense), (s, s))
    runner = TrialRunner(ctx, 1)
    try:
        failed, after = runner.run(saved, [fails, works])
        (alone,) = runner.run(saved, [works])
    finally:
        runner.close()
    assert failed.error is not None and "40 clusters" in failed.error and failed.net is None
    assert after.error is None and after.metric == alone.metric and after.bytes == alone.bytes > 0
    for k in alone.net.values:
        np.testing.assert_array_equal(after.net.values[k], alone.net.values[k])
