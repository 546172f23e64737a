"""The budget search's contract (--target-accuracy-drop), and the warnings and
protected layers of compression with explicit settings, on small models."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import helper

from weightless_mcu.api import Retraining, _prepare
from weightless_mcu.compress import make_settings
from weightless_mcu.compress.settings import LayerSettings
from weightless_mcu.export import graph_to_onnx
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train import budget_search as budget_search_module
from weightless_mcu.train.budget_search import Trial, TrialRunner, _spend_the_rest, budget_shares, preference
from weightless_mcu.train.data import Dataset
from weightless_mcu.train.network import Network
from weightless_mcu.train.trainer import Objective, TrainConfig, train
from weightless_mcu.train.weightless import Context, RetrainOptions, Step

from .conftest import make_model, rand
from .test_errors import run_cli

H = helper.make_node


def blobs(n, dims=32, classes=10, seed=0, spread=2.2):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((classes, dims)) * spread
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.standard_normal((n, dims))).astype(np.float32), y


def _train_and_save(path, xs, ys, epochs):
    """Train the model at path on the first 2,000 samples and save it; train.npz beside it
    holds those and the rest as the validation split. Its path."""
    _, graph = load_model(path)
    run_passes(graph)
    net = Network(graph)
    train(net, xs[:2000], ys[:2000], Objective(net, True), TrainConfig(epochs=epochs, lr=3e-3), lambda _: None, "t")
    net.export()
    onnx.save(graph_to_onnx(graph), path)
    npz = path.parent / "train.npz"
    np.savez(npz, x=xs[:2000], y=ys[:2000], x_val=xs[2000:], y_val=ys[2000:])
    return npz


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained 32-96-48-10 MLP and its data (train.npz with a validation split)."""
    tmp = tmp_path_factory.mktemp("budget")
    dims = [32, 96, 48, 10]
    nodes, inits, x = [], {}, "x"
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        inits[f"w{i}"], inits[f"b{i}"] = rand(b, a, seed=i, scale=np.sqrt(2 / a)), np.zeros(b, np.float32)
        nodes.append(H("Gemm", [x, f"w{i}", f"b{i}"], [f"h{i}"], transB=1, name=f"fc{i + 1}"))
        x = f"h{i}"
        if i < 2:
            nodes.append(H("Relu", [x], [x + "r"]))
            x += "r"
    path = make_model(tmp / "mlp.onnx", nodes, {"x": [1, 32]}, {x: [1, 10]}, inits)
    xs, ys = blobs(3000)
    npz = _train_and_save(path, xs, ys, epochs=6)
    return path, npz, Dataset(xs[:2000], ys[:2000], xs[2000:], ys[2000:])


def _context(path, data, **kw):
    _, graph = load_model(path)
    run_passes(graph)
    opts = RetrainOptions(TrainConfig(epochs=1, lr=2e-3), seeds=1, accuracy_budget=1.0, **kw)
    return graph, Context(graph, data, opts, lambda _: None)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failed_trial_leaves_no_trace_in_the_next(trained, jobs):
    """A trial that fails after pruning and retraining (more clusters than kept weights)
    must not hand its damaged network to the next trial: each starts from the saved state."""
    path, _, data = trained
    graph, ctx = _context(path, data)
    saved = Network(graph)
    before = {k: v.copy() for k, v in saved.values.items()}
    s = LayerSettings(clusters=40, min_positions=0, seed=7)
    fails = Trial(0, "weights", 0.01, 0.0, s, frozenset({"bits", "encoding"}))  # 31 kept weights < 40 clusters
    works = Trial(0, "weights", 0.3, 0.0, replace(s, clusters=4), frozenset({"bits", "encoding"}))
    runner = TrialRunner(ctx, jobs)
    try:
        failed, after = runner.run(saved, [fails, works])
        (alone,) = runner.run(saved, [works])
    finally:
        runner.close()
    assert failed.error is not None and "40 clusters" in failed.error and failed.net is None and not failed.passed
    assert after.error is None and after.passed and after.report.kept == int(np.ceil(0.3 * 96 * 32))
    assert after.metric == alone.metric and after.bytes == alone.bytes
    for k in alone.net.values:
        np.testing.assert_array_equal(after.net.values[k], alone.net.values[k])
    for k, v in before.items():  # the saved state itself is untouched
        np.testing.assert_array_equal(saved.values[k], v)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the diverging training overflows on purpose
def test_the_end_of_run_check_catches_a_budget_that_was_not_met(trained):
    """Every layer's trials fail (a learning rate that makes training diverge), the layers
    stay float32, and the last retraining then ruins the model: the final check must say so."""
    path, npz, _ = trained
    log = []
    retraining = Retraining(npz, TrainConfig(epochs=1, lr=50.0, optimizer="sgd"), seeds=1, accuracy_budget=1.0,
                            final_epochs=1.0, jobs=1)
    _, graph, reports = _prepare(path, None, None, make_settings(dict(min_positions=0)), log.append, retraining)
    budget = graph.compression_summary["budget"]
    assert not budget["met"] and budget["drop_points"] > 1.0
    assert budget["float32_layers"] == ["fc1", "fc2", "fc3"] and all(r.encoding == "dense" for r in reports)
    assert any("the budget was NOT met" in w and "fc1, fc2, fc3 stayed float32" in w
               for w in graph.compression_summary["warnings"])
    assert any(line.startswith("warning: the budget was NOT met") for line in log)
    # and, first of all, that the retraining recipe itself ruins the uncompressed model
    assert any(w.startswith("retraining alone, with nothing compressed") for w in graph.compression_summary["warnings"])
    assert budget["retraining_alone_drop_points"] > 1.0


def test_searching_channels_k_and_t_stores_fewer_bytes_than_density_alone(trained):
    path, npz, _ = trained
    runs = {}
    for name, fixed in (("full", {}), ("density", dict(channels=1.0, clusters=15, bits=8, encoding="bloomier"))):
        log = []
        retraining = Retraining(npz, TrainConfig(epochs=1, lr=2e-3), seeds=1, accuracy_budget=1.0, jobs=2)
        _, graph, reports = _prepare(path, None, None, make_settings(dict(min_positions=0, **fixed)), log.append, retraining)
        assert graph.compression_summary["budget"]["met"], log
        runs[name] = (sum(r.bytes for r in reports), reports, log)
    full, density = runs["full"], runs["density"]
    assert full[0] < density[0], (full[0], density[0])
    # the output layer (protected): dense indices, K from their ladder, each trial fixed and judged
    out = full[1][2]
    assert out.encoding == "codebook" and out.clusters in (3, 15, 255) and out.bits == out.clusters.bit_length(), out
    fc3 = [line for line in full[2] if line.lstrip().startswith("trial fc3")]
    assert fc3 and all(line.lstrip().startswith(("trial fc3: density 1, K=3, codebook", "trial fc3: density 1, K=15, "
                                                                                         "codebook")) for line in fc3), fc3
    assert all(r.clusters == 15 and r.bits == 8 for r in density[1] if r.encoding == "bloomier")
    # the full search used what the density-only one may not: cut channels, K = 4, another t or dense indices
    assert any(r.positions < 96 * 32 for r in full[1][:1]) or any(r.clusters == 4 or r.encoding == "codebook"
                                                                   or (r.bits or 8) != 8 for r in full[1])
    # progress: every trial with its layer, setting, bytes and validation accuracy
    trials = [line for line in full[2] if line.lstrip().startswith("trial fc")]
    assert len(trials) >= 6 and all(" B, validation accuracy " in line for line in trials)
    assert not any(line.lstrip().startswith("trial fc") and "channels" in line for line in density[2])


def test_a_protected_layer_that_misses_its_share_at_2_and_4_bits_takes_8_bit_indices(trained, monkeypatch):
    """The output layer's trials at K = 3 and 15 are made to miss the layer's share by a hair
    (as validation noise does): the K ladder goes on to 8-bit indices instead of leaving the
    layer float32."""
    path, npz, _ = trained
    real = budget_search_module.run_trial
    tried = []

    def run_trial(ctx, net, trial):
        r = real(ctx, net, trial)
        if trial.layer == 2:
            tried.append(trial.settings.clusters)
            assert trial.kind == "weights" and trial.value == 1.0 and "clusters" not in trial.searched
            if trial.settings.clusters < 255 and r.error is None:
                r = replace(r, metric=trial.allowed - 1e-4)
        return r

    monkeypatch.setattr(budget_search_module, "run_trial", run_trial)
    log = []
    retraining = Retraining(npz, TrainConfig(epochs=1, lr=2e-3), seeds=1, accuracy_budget=1.0, jobs=1)
    # channels fixed, so that fc3 keeps its 480 weights: 8-bit indices store fewer bytes than float32
    _, graph, reports = _prepare(path, None, None, make_settings(dict(min_positions=0, channels=1.0)), log.append,
                                 retraining)
    assert 255 in tried and set(tried) <= {3, 15, 255} and len(tried) >= 2, tried
    assert (reports[2].encoding, reports[2].clusters, reports[2].bits) == ("codebook", 255, 8), reports[2]
    assert reports[2].bytes < 4 * 480  # fewer than float32's
    assert "fc3" not in graph.compression_summary["budget"]["float32_layers"]
    assert any("fc3: density 1, K=255, codebook chosen" in line for line in log), log


def test_what_the_layers_left_goes_to_the_layer_with_the_most_bytes(trained):
    """fc1 chosen at density 0.8 under a tight threshold; with the whole budget left, the
    pass that spends the rest finds a cheaper setting for it (from its unpruned weights, the
    rest of the model as it is) that keeps the new floor; fc3, under a quarter of the bytes,
    is not searched again."""
    path, _, data = trained
    graph, ctx = _context(path, data)
    searched = frozenset({"clusters", "bits", "encoding"})
    s = LayerSettings(min_positions=0, seed=7)
    runner = TrialRunner(ctx, 1)
    try:
        saved = Network(graph)
        unpruned = {0: saved.values["w0"].copy(), 2: saved.values["w2"].copy()}
        (first,) = runner.run(saved, [Trial(0, "weights", 0.8, 0.0, s, searched)])
        (last,) = runner.run(first.net, [Trial(2, "weights", 1.0, 0.0, s, searched)])
        reports, chosen = {0: first.report, 2: last.report}, {0: first.trial, 2: last.trial}
        log = []
        ctx.progress = log.append
        floor = last.metric - 0.02
        starts = []
        run = runner.run
        runner.run = lambda saved, trials: (starts.append(saved), run(saved, trials))[1]
        net, retrained = _spend_the_rest(runner, last.net, ctx, reports, chosen, floor, unpruned,
                                         lambda r: log.append(r.setting))
    finally:
        runner.close()
    assert retrained  # no final retraining (--final-epochs 0): the checked copy is the network
    # every trial started from fc1's unpruned weights, free again, and fc3's table as it was
    assert starts and all(np.array_equal(n.values["w0"], unpruned[0]) and n.constraints["w0"].kind == "free"
                          and np.array_equal(n.constraints["w2"].index, last.net.constraints["w2"].index) for n in starts)
    assert reports[0].bytes < first.report.bytes and reports[0].kept < first.report.kept
    assert last.report.bytes < 0.25 * (first.report.bytes + last.report.bytes)
    assert chosen[0].value < 0.8 and chosen[0].allowed == floor
    assert Step(net, ctx).scorer.metric() >= floor
    assert np.count_nonzero(net.values["w0"]) <= reports[0].kept + reports[0].false_positives
    assert reports[2] is last.report and not any(line.startswith("fc3") for line in log)
    assert any(line.startswith("fc1: searching again with what the layers left") for line in log)


def test_the_rest_pass_takes_a_setting_only_if_it_holds_after_the_final_retraining(trained, monkeypatch):
    """The pass's settings land near the floor, and the final retraining can take one below
    it. Here the final retraining of the first (cheapest) candidate loses its largest
    weights: that candidate is not taken, the next one is checked, and what is returned
    is the checked network, already retrained (the real final retraining, one epoch at a
    tenth of the rate: it changes the weights)."""
    path, _, data = trained
    graph, ctx = _context(path, data, final_epochs=1.0)
    searched = frozenset({"clusters", "bits", "encoding"})
    s = LayerSettings(min_positions=0, seed=7)
    real = budget_search_module.final_retraining
    checked = []

    def final_retraining(step):
        real(step)
        checked.append(np.count_nonzero(step.net.values["w0"]))
        if len(checked) == 1:  # the first candidate collapses
            w = step.net.values["w0"]
            step.net.set_values("w0", np.where(np.abs(w) >= np.quantile(np.abs(w[w != 0]), 0.5), 0, w))

    monkeypatch.setattr(budget_search_module, "final_retraining", final_retraining)
    runner = TrialRunner(ctx, 1)
    try:
        saved = Network(graph)
        unpruned = {0: saved.values["w0"].copy()}
        (first,) = runner.run(saved, [Trial(0, "weights", 1.0, 0.0, s, searched)])
        reports, chosen = {0: first.report}, {0: first.trial}
        log = []
        ctx.progress = log.append
        floor = first.metric - 0.03
        results = []
        run = runner.run
        runner.run = lambda saved, trials: (lambda rs: (results.extend(rs), rs)[1])(run(saved, trials))
        net, retrained = _spend_the_rest(runner, first.net, ctx, reports, chosen, floor, unpruned, lambda r: None)
    finally:
        runner.close()
    cheaper = sorted((r for r in results if r.passed and r.bytes < first.report.bytes),
                     key=lambda r: preference(r.metric, r.bytes, r.trial.allowed), reverse=True)
    assert len(cheaper) >= 2, "the test needs two cheaper settings that pass"
    assert sum(": not taken" in line for line in log) == 1 and len(checked) == 2
    assert retrained and reports[0] is cheaper[1].report and chosen[0] is cheaper[1].trial
    assert Step(net, ctx).scorer.metric() >= floor
    # the returned network is the taken one after the final retraining, not before it
    assert not np.array_equal(net.values["w0"], cheaper[1].net.values["w0"])
    taken = cheaper[1].net.constraints["w0"]
    assert np.array_equal(net.constraints["w0"].index, taken.index)


def test_no_channel_trials_where_half_the_room_is_under_one_validation_sample(trained):
    """1,000 validation samples, a 0.05-point budget: half of any layer's room is under one
    sample, so no channel trial runs; the weights are still searched."""
    path, npz, _ = trained
    log = []
    retraining = Retraining(npz, TrainConfig(epochs=1, lr=2e-3), seeds=1, accuracy_budget=0.05, jobs=1)
    _prepare(path, None, None, make_settings(dict(min_positions=0)), log.append, retraining)
    assert sum("channels not searched" in line for line in log) == 2  # fc1 and fc2 (fc3 has no channel chain)
    assert not any(line.lstrip().startswith("trial fc") and ": channels " in line for line in log)
    assert any(line.lstrip().startswith("trial fc1: density") for line in log)


def test_small_layers_get_a_floor_of_the_budget():
    shares = budget_shares([500, 25_000, 400_000, 5_000])  # LeNet-5's layers
    assert shares[-1] == pytest.approx(1.0) and np.all(np.diff(shares) > 0)
    mean = np.mean(np.sqrt([500, 25_000, 400_000, 5_000]))
    total = 0.5 * mean + np.sqrt(25_000) + np.sqrt(400_000) + 0.5 * mean
    assert shares[0] == pytest.approx(0.5 * mean / total) and shares[0] > 0.1
    assert shares[2] - shares[1] == pytest.approx(np.sqrt(400_000) / total)


def test_a_layer_may_always_lose_two_validation_samples_within_the_budget():
    from weightless_mcu.train.budget_search import MIN_SAMPLES, layer_threshold

    assert MIN_SAMPLES == 2
    # LeNet-5's first layer at 0.2 points: its share (0.013 points) is under a sample of 5,000
    assert layer_threshold(0.9914, 0.002, 0.0665, 0.9914, 5000) == pytest.approx(0.9914 - 2 / 5000)
    # the threshold is met by the metric it equals in exact arithmetic (0.9906 - 0.0004 rounds up)
    assert 0.9902 >= layer_threshold(0.9914, 0.002, 0.0665, 0.9906, 5000)
    # a large share stays as it is
    assert layer_threshold(0.9914, 0.002, 0.8, 0.9914, 5000) == pytest.approx(0.9914 - 0.8 * 0.002)
    # never below the whole budget's floor
    assert layer_threshold(0.9914, 0.002, 0.1, 0.9895, 5000) == pytest.approx(0.9894)
    # a layer starting well above its share's threshold keeps the share's threshold
    assert layer_threshold(0.99, 0.01, 0.5, 0.999, 1000) == pytest.approx(0.985)


def test_the_budget_needs_labels_and_a_positive_budget(trained, tmp_path):
    path, _, data = trained
    np.savez(tmp_path / "unlabelled.npz", x=data.x)
    for npz, budget, needle in ((tmp_path / "unlabelled.npz", 1.0, "needs labels"), (trained[1], 0.0, "must be > 0")):
        with pytest.raises(Exception, match=needle):
            _prepare(path, None, None, None, lambda _: None,
                     Retraining(npz, TrainConfig(epochs=0.1), seeds=1, accuracy_budget=budget, jobs=1))


def _collapse_model(tmp_path):
    """A 64-128-10 classifier on blobs whose output layer cannot lose 90% of its weights."""
    inits = {"w1": rand(128, 64, seed=1, scale=0.15), "b1": np.zeros(128, np.float32),
             "w2": rand(10, 128, seed=2, scale=0.1), "b2": np.zeros(10, np.float32)}
    nodes = [H("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"), H("Relu", ["h"], ["r"]),
             H("Gemm", ["r", "w2", "b2"], ["y"], transB=1, name="out")]
    path = make_model(tmp_path / "c.onnx", nodes, {"x": [1, 64]}, {"y": [1, 10]}, inits)
    xs, ys = blobs(2400, dims=64, spread=0.9, seed=3)
    return path, _train_and_save(path, xs, ys, epochs=8)


def test_uniform_settings_protect_the_output_layer_or_say_what_collapsed(tmp_path):
    path, npz = _collapse_model(tmp_path)
    uniform = ["--density", "0.05", "--clusters", "8", "--bits", "6", "--train-data", npz, "--epochs", "0.5",
               "--seeds", "1", "--target", "host"]
    # protect none: the output layer is pruned to 5% like the others, and the run says what that cost
    proc = run_cli("compile", path, "-o", tmp_path / "bare", *uniform, "--protect", "none", "-q", "--json", tmp_path / "b.json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "b.json").read_text())["retraining"]
    drop = 100 * (summary["validation_accuracy_original"] - summary["validation_accuracy_compressed"])
    assert drop > 5, summary
    assert "out: pruning to density 0.05 cost" in proc.stderr and "--target-accuracy-drop" in proc.stderr
    assert "the compressed model lost" in proc.stderr
    # by default the output layer keeps dense indices, and the model keeps its accuracy
    proc = run_cli("compile", path, "-o", tmp_path / "auto", *uniform, "--json", tmp_path / "a.json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "a.json").read_text())
    out = next(r for r in manifest["layers"] if r["name"] == "out")
    assert out["encoding"] == "codebook" and out["kept"] == out["positions"] and out["false_positives"] == 0
    summary = manifest["retraining"]
    protected_drop = 100 * (summary["validation_accuracy_original"] - summary["validation_accuracy_compressed"])
    assert protected_drop < drop - 5, (protected_drop, drop)
    # within 2 points, or the run ends with the warning naming what cost too much
    assert protected_drop <= 2 or (summary["warnings"] and proc.stderr.rstrip().splitlines()[-1].startswith(
        "weightless-mcu: warning: the compressed model lost")), summary
    assert "validation      accuracy" in proc.stdout and "out: every weight kept as a dense cluster index" in proc.stderr
    # a layer's own setting wins over the protection
    _, graph, reports = _prepare(path, None, None, make_settings(dict(density=0.5, clusters=8, bits=6, min_positions=0)),
                                 lambda _: None)
    assert reports[1].encoding == "codebook" and reports[1].kept == reports[1].positions
    cfg = tmp_path / "c.toml"
    cfg.write_text('[defaults]\ndensity = 0.5\nclusters = 8\nbits = 6\n[layers.out]\ndensity = 0.5\n')
    _, graph, reports = _prepare(path, None, None, make_settings({}, cfg), lambda _: None)
    assert reports[1].kept == int(np.ceil(0.5 * reports[1].positions))
    assert reports[0].kept == int(np.ceil(0.5 * reports[0].positions))


def test_pricing_takes_the_cheapest_encoding_and_k_that_keep_accuracy(trained):
    """Inside a trial: with nothing to keep, the cheapest K and t win; with an accuracy no
    setting reaches, the most accurate encoding."""
    from weightless_mcu.compress import candidates, encode_indices
    from weightless_mcu.train.budget_search import _cheapest_encoding, run_trial
    from weightless_mcu.train.weightless import Step, prune, share

    path, _, data = trained
    graph, ctx = _context(path, data)
    searched = frozenset({"clusters", "bits", "encoding"})
    s = LayerSettings(density=0.1, min_positions=0)
    cheap = run_trial(ctx, Network(copy.deepcopy(graph)), Trial(0, "weights", 0.1, float("-inf"), s, searched))
    assert cheap.report.clusters == 4 and cheap.report.encoding == "bloomier" and cheap.report.bits == 3, cheap.report
    net = Network(copy.deepcopy(graph))
    step = Step(net, ctx)
    node, tensor, layout = candidates(net.graph)[0]
    mask = prune(step, node.name, tensor, 0.1)
    flat_index, codebook = share(step, node.name, tensor, layout, mask, 4)
    prices = {t: encode_indices("fc1", tensor, flat_index.astype(np.uint32), codebook,
                                replace(s, clusters=4, bits=t, encoding="bloomier"), s.seed)[1].bytes for t in range(3, 17)}
    assert sorted(prices.values()) == list(prices.values())  # bytes grow with t
    metric, nbytes, chosen = _cheapest_encoding(step, node.name, tensor, layout, flat_index, codebook, replace(s, clusters=4),
                                                Trial(0, "weights", 0.1, float("-inf"), s, searched))
    assert (chosen.encoding, chosen.bits, nbytes) == ("bloomier", 3, prices[3])
    shared_metric = step.scorer.metric()
    metric, nbytes, chosen = _cheapest_encoding(step, node.name, tensor, layout, flat_index, codebook, replace(s, clusters=4),
                                                Trial(0, "weights", 0.1, 2.0, s, searched))
    # dense indices are among the options, so the most accurate is at least as good as they are
    # (a table whose false positives happen to help may beat them)
    assert metric >= shared_metric
    assert (chosen.encoding == "codebook") or (nbytes == prices[chosen.bits] and chosen.bits > 3)
    # the network is left holding the shared weights, whatever was priced
    assert step.scorer.metric() == shared_metric


def test_the_channel_stage_also_returns_the_deepest_cut_that_kept_the_whole_room(trained):
    """channel_cuts: the fewest channels that keep the trials' threshold (half the room),
    and, among the cuts tried below it, the deepest that kept the whole room."""
    path, _, data = trained
    graph, ctx = _context(path, data)
    saved = Network(graph)
    s = LayerSettings(min_positions=0, seed=7)
    fractions = [0.06, 0.1, 0.15, 0.25, 0.4, 0.5, 0.6, 0.8]
    runner = TrialRunner(ctx, 1)
    try:
        seen = []
        best, deeper = budget_search_module.channel_cuts(
            runner, saved, fractions, lambda c: Trial(0, "channels", c, 0.999, s, frozenset()), 0.95, seen.append)
        _, none_deeper = budget_search_module.channel_cuts(
            runner, saved, fractions, lambda c: Trial(0, "channels", c, 0.999, s, frozenset()), 0.9995, lambda r: None)
        none_seen = []
        no_best, deeper_only = budget_search_module.channel_cuts(
            runner, saved, fractions, lambda c: Trial(0, "channels", c, 1.01, s, frozenset()), 0.9, none_seen.append)
    finally:
        runner.close()
    assert best is not None and best.passed
    assert best.trial.value == min(r.trial.value for r in seen if r.metric >= 0.999)
    assert deeper is not None, "the test needs a cut below the chosen one that keeps 95%"
    assert deeper.trial.value < best.trial.value and 0.95 <= deeper.metric < 0.999
    assert deeper.trial.value == min(r.trial.value for r in seen if r.metric >= 0.95)
    assert none_deeper is None  # the same cuts against a whole room that the deeper one does not keep
    # nothing keeps an impossible threshold; the deepest tried cut that keeps 90% is still offered
    assert no_best is None and deeper_only is not None
    assert deeper_only.trial.value == min(r.trial.value for r in none_seen if r.metric >= 0.9)


def test_a_deeper_cut_is_judged_together_with_its_weights(trained, monkeypatch):
    """When a deeper channel cut kept the whole room (here: the stage is made to report
    fc1's cut as that, with no cut keeping half the room), the weights are searched on the
    uncut layer and on the cut one, and the one storing fewer bytes is kept (on this
    model the uncut one: its weights prune to 2%)."""
    path, npz, _ = trained
    real = budget_search_module.channel_cuts
    offered = []

    def channel_cuts(runner, saved, fractions, make, allowed, report):
        best, deeper = real(runner, saved, fractions, make, allowed, report)
        if make(1.0).layer == 0 and best is not None:
            offered.append(best)
            return None, best
        return best, deeper

    monkeypatch.setattr(budget_search_module, "channel_cuts", channel_cuts)
    real_ladder = budget_search_module.ladder_search
    starts = []  # fc1's output channels where each of its weights ladders started, and its bytes

    def ladder_search(runner, saved, values, make, report):
        if make(1.0).kind == "weights" and make(1.0).layer == 0:
            found = real_ladder(runner, saved, values, make, report)
            starts.append((saved.values["w0"].shape[0], found.bytes))
            return found
        return real_ladder(runner, saved, values, make, report)

    monkeypatch.setattr(budget_search_module, "ladder_search", ladder_search)
    log = []
    retraining = Retraining(npz, TrainConfig(epochs=1, lr=2e-3), seeds=1, accuracy_budget=2.0, jobs=1)
    _, graph, reports = _prepare(path, None, None, make_settings(dict(min_positions=0)), log.append, retraining)
    (cut,) = offered
    kept = int(np.ceil(cut.trial.value * 96 - 1e-9))
    assert kept < 96
    assert any(line.startswith(f"fc1: {cut.setting} kept the layer's whole room") for line in log)
    # two weights ladders ran for fc1, on the uncut layer and on the cut one; the cheaper won
    assert sorted(c for c, _ in starts) == [kept, 96]
    channels, nbytes = min(starts, key=lambda cb: cb[1])
    assert starts[0][1] != starts[1][1], "the test needs the two ladders to store different bytes"
    assert reports[0].bytes == nbytes and reports[0].positions == channels * 32
    assert any(line.startswith(f"fc1: {cut.setting} kept, its weights storing") for line in log) == (channels == kept)
