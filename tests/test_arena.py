"""The arena planner: regions never overlap while both are live, and the
arena stays near the lower bound."""
from __future__ import annotations

import numpy as np

from weightless_mcu.arena import plan_arena


def _check_no_overlap(plan):
    for a in plan.regions:
        for b in plan.regions:
            if a.root >= b.root or a.last < b.first or b.last < a.first:
                continue
            assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)


def test_chain_reuses_two_regions():
    # a -> b -> c -> d: only neighbours are live together.
    life = {"a": (0, 1), "b": (1, 2), "c": (2, 3), "d": (3, 4)}
    sizes = {k: 400 for k in life}  # bytes
    plan = plan_arena(life, sizes, {k: k for k in life})
    _check_no_overlap(plan)
    assert plan.lower_bound == 800
    assert plan.size <= 816  # two 16-byte aligned regions


def test_random_lifetimes_never_overlap_and_stay_near_bound():
    rng = np.random.default_rng(0)
    ratios = []
    for trial in range(50):
        n = int(rng.integers(2, 30))
        life, sizes = {}, {}
        for i in range(n):
            first = int(rng.integers(0, 40))
            life[f"t{i}"] = (first, first + int(rng.integers(0, 6)))
            sizes[f"t{i}"] = 4 * int(rng.integers(1, 5000))  # float32 tensors, in bytes
        plan = plan_arena(life, sizes, {k: k for k in life})
        _check_no_overlap(plan)
        # the bound, computed here: the largest sum of sizes live at one step
        bound = max(sum(sizes[k] for k, (a, b) in life.items() if a <= s <= b) for s in range(50))
        assert plan.lower_bound == bound <= plan.size
        assert all(r.offset % 16 == 0 for r in plan.regions)
        ratios.append(plan.size / bound)
    # greedy placement: at the bound (up to alignment) on most lifetimes, never far above it
    assert max(ratios) <= 1.3 and np.mean(ratios) <= 1.02 and np.mean(np.array(ratios) <= 1.01) >= 0.9


def test_add_accumulates_into_the_operand_that_dies(tmp_path):
    """y1 = t + sigmoid(t) with t still needed afterwards: the sum takes over the
    sigmoid's region (the second operand), so only two 64-float regions are live."""
    from onnx import helper

    from weightless_mcu import verify

    from .conftest import make_model

    H = helper.make_node
    path = make_model(tmp_path / "acc.onnx", [H("Tanh", ["x"], ["t"]), H("Sigmoid", ["t"], ["s"]),
                                               H("Add", ["t", "s"], ["y1"]), H("Mul", ["y1", "t"], ["y"])],
                      {"x": [1, 64]}, {"y": None})
    res = verify(path, target="host", samples=2)
    assert res["match"]
    assert res["arena_bytes"] == res["arena_lower_bound_bytes"] == 2 * 64 * 4


def test_earliest_first_placement_is_kept_where_it_reaches_the_bound():
    """Largest first puts t3 (112 B, step 2) at 0 and t2 (80 B, steps 3-5) at 0, so t0 (48 B,
    steps 1-3) must go above t3 and t1 above t0 and t2: 208 B. Placing by first step gives
    the bound, 176 B (step 3: t0 + t1 + t2)."""
    life = {"t0": (1, 3), "t1": (3, 3), "t2": (3, 5), "t3": (2, 2)}
    sizes = {"t0": 48, "t1": 48, "t2": 80, "t3": 112}
    plan = plan_arena(life, sizes, {k: k for k in life})
    _check_no_overlap(plan)
    assert plan.lower_bound == 176 and plan.size == 176
