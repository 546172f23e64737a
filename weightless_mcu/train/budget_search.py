"""The budget search (--target-accuracy-drop P): each layer's setting chosen on
validation data, one layer at a time from the input side.

Layer k may bring the validation accuracy down to baseline - P * (w_0 + ... + w_k)
/ (w_0 + ... + w_n-1), w being the square root of a layer's weights (at least
half the mean w): the large layers, where the bytes are, get more of the budget
without starving the small ones, and what an earlier layer did not spend a
later one may. For each layer:

  1. channels: trials on CHANNEL_LADDER (the kept fraction of its output
     channels); the fewest channels whose accuracy keeps within half the
     layer's room wins. Layers whose output does not lead into one layer that
     can absorb the cut skip this stage, and so do layers whose half of the
     room is less than one validation sample. The deepest cut tried below the
     winner that kept the whole room is judged together with its weights: the
     weights stage runs on both cuts and the fewer stored bytes win.
  2. weights: trials on DENSITY_LADDER (only density 1 for the layers that
     uniform settings protect: the output layer under a quarter of the
     weights, any layer under 2%; for them K is searched on a ladder of its
     own, DENSE_CLUSTER_CHOICES, up to 8-bit indices). A trial prunes, then for each K in
     CLUSTER_CHOICES shares the weights and prices its encodings: dense
     indices (codebook), and Bloomier tables from the t whose false positives
     are about a quarter of the kept weights, down while accuracy holds and up
     until it does; the cheapest one that keeps accuracy is fixed and
     retrained (first with up to REFINE_BITS fewer bits, since retraining
     recovers part of what false positives cost). The trial with the fewest
     stored bytes that keeps the layer within its share wins; if none does,
     the layer stays float32.

Trials are independent: each starts from a copy of the same saved state (a
failed one leaves nothing behind), so they run in parallel processes (jobs),
each with one BLAS thread. The ladders are searched by parallel bisection,
on the assumption that accuracy grows with channels and density. Settings the
user gave (uniform or per layer) are kept as given rather than searched.
When every layer is done, what they left of the budget goes to the layers
that hold the most bytes: their density ladder is searched again, from where
they are, down to the whole budget (a setting is taken only if the budget
still holds after the final retraining). At the end the whole model's drop is
checked against P and reported plainly when it was not met.
"""
from __future__ import annotations

import copy
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

import numpy as np

from ..compress import LayerReport, candidates, dense_report, encode_indices, plan_layers, protected_layers
from ..compress.channels import channel_chain
from ..compress.settings import CompressionSettings, LayerSettings
from ..errors import OptionError, WeightlessError
from ..ir import Graph
from .network import Constraint, Network
from .weightless import (Context, Step, describe_setting, encode, final_retraining, finish, fix_and_retrain, prune,
                         prune_channels, share)

CHANNEL_LADDER = (0.06, 0.1, 0.15, 0.25, 0.4, 0.5, 0.6, 0.8)
DENSITY_LADDER = (0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5, 0.7, 1.0)
CLUSTER_CHOICES = (4, 15)  # 15: the most that 4-bit dense indices hold (0 is a pruned weight)
# Dense indices (density 1: nothing pruned) at the most K their 2, 4 and 8 bits hold. The 8-bit
# ones are as near the float32 weights as int8 is, at a quarter of their bytes: a layer whose 2-
# and 4-bit indices miss its share by an image of validation noise does not stay float32
# (LeNet-5's output layer did: 12,000 B where 3-bit indices stored 1,180 B).
DENSE_CLUSTER_CHOICES = (3, 15, 255)
CHANNEL_SHARE = 0.5  # of the room a layer has, what cutting its channels may spend
REFINE_BITS = 2  # t below the one priced without retraining, tried with retraining
SHARE_FLOOR = 0.5  # a layer's part of the budget is at least this much of the mean part
REST_SHARE = 0.25  # layers holding at least this part of the stored bytes get what the others left
# A layer may always lose this many validation samples (within the budget): a trial's retraining
# alone moves the accuracy by a sample or two, so a smaller share is a coin toss (LeNet-5's conv1
# at 0.2 points had 0.013, two thirds of a sample of 5,000).
MIN_SAMPLES = 2
# Thresholds are differences of floats (0.9906 - 2/5000 is 0.99020000000000008): a metric of
# k/n meets one that is k/n in exact arithmetic. Far below one sample of any validation set.
SLACK = 1e-9


@dataclass(frozen=True)
class Trial:
    layer: int  # index among the graph's compressible layers
    kind: str  # "channels" | "weights"
    value: float  # the channel fraction or the density
    allowed: float  # the validation metric the trial must keep
    settings: LayerSettings  # the layer's settings (the searched ones are overridden)
    searched: frozenset[str]  # which of clusters, bits, encoding the trial chooses


@dataclass
class TrialResult:
    trial: Trial
    net: Network | None  # the network after the trial (None if it failed)
    metric: float
    bytes: int
    report: LayerReport | None
    setting: str
    error: str | None
    seconds: float

    @property
    def passed(self) -> bool:
        return self.error is None and self.metric >= self.trial.allowed


def bits_for(density: float, clusters: int) -> int:
    """Bits for which the false positives are about a quarter of the kept weights."""
    need = int(np.ceil(np.log2(4 * clusters * (1 - density) / max(density, 1e-6) + 1)))
    return int(min(16, max(need, clusters.bit_length())))


def run_trial(ctx: Context, net: Network, trial: Trial) -> TrialResult:
    """One trial on `net` (the caller's copy of the saved state). Never raises for
    a setting that cannot be built: the result carries the error instead."""
    if not isinstance(trial, Trial):  # a trial of another search, which knows how to run itself
        return trial.run(ctx, net)
    t0 = time.perf_counter()
    step = Step(net, ctx)
    node, tensor, layout = candidates(net.graph)[trial.layer]
    try:
        if trial.kind == "channels":
            prune_channels(step, node, trial.value)
            positions = candidates(net.graph)[trial.layer][2].positions
            return TrialResult(trial, net, step.scorer.metric(), 4 * positions, None, f"channels {trial.value:g}",
                               None, time.perf_counter() - t0)
        net, metric, report, setting = _weights_trial(step, node.name, tensor, layout, trial)
        return TrialResult(trial, net, metric, report.bytes, report, setting, None, time.perf_counter() - t0)
    except (WeightlessError, ValueError) as exc:
        return TrialResult(trial, None, float("-inf"), 0, None, f"{trial.kind} {trial.value:g}", str(exc),
                           time.perf_counter() - t0)


def preference(metric: float, nbytes: int, allowed: float) -> tuple:
    """The one ranking of options, trials and encodings alike (the larger key wins): those
    that keep `allowed` before those that do not; among them the fewest bytes, then the
    better metric; among the others the better metric, then the fewest bytes."""
    if metric >= allowed:
        return (True, -nbytes, metric)
    return (False, metric, -nbytes)


def _weights_trial(step: Step, name: str, tensor: str, layout, trial: Trial):
    """Prune, share at each K, price the encodings, fix and retrain the cheapest:
    (the trial's network, metric, report, setting)."""
    s = replace(trial.settings, density=trial.value)
    mask = prune(step, name, tensor, s.density)
    kept = int(mask.sum())
    if "clusters" in trial.searched:
        dense = s.density >= 1.0 and "encoding" in trial.searched  # dense indices are all it can be
        choices = DENSE_CLUSTER_CHOICES if dense else CLUSTER_CHOICES
        ks = [k for k in choices if k <= kept] or [kept]
    else:
        ks = [s.clusters]  # more than the kept weights: share() says so
    best = None  # (key, branch, flat index, codebook, option)
    for n, k in enumerate(ks):
        branch = step if n == len(ks) - 1 else Step(copy.deepcopy(step.net), step.ctx)
        flat_index, codebook = share(branch, name, tensor, layout, mask, k)
        option = _cheapest_encoding(branch, name, tensor, layout, flat_index, codebook, replace(s, clusters=k), trial)
        key = preference(option[0], option[1], trial.allowed)
        if best is None or key > best[0]:
            best = (key, branch, flat_index, codebook, option)
    _, step, flat_index, codebook, (metric, nbytes, settings) = best
    # Retraining recovers part of what false positives cost, so the t priced without it is
    # an upper bound: try up to two bits fewer with the table fixed and retrained.
    if settings.encoding == "bloomier" and "bits" in trial.searched:
        for bits in range(max(int(codebook.size).bit_length(), settings.bits - REFINE_BITS), settings.bits):
            candidate = Step(copy.deepcopy(step.net), step.ctx)
            done = _encode_fix(candidate, name, tensor, layout, flat_index, codebook, replace(settings, bits=bits))
            if done[0] >= trial.allowed:
                return (candidate.net, *done)
    return (step.net, *_encode_fix(step, name, tensor, layout, flat_index, codebook, settings))


def _encode_fix(step: Step, name, tensor, layout, flat_index, codebook, settings: LayerSettings):
    """Encode (the hash seed chosen on the calibration batch), fix the table, retrain: (metric, report, setting)."""
    loss, enc, report, seed = encode(step, name, tensor, layout, flat_index, codebook, settings, step.ctx.opts.seeds)
    fix_and_retrain(step, name, tensor, layout, enc, codebook, settings.bias_clusters)
    return step.scorer.metric(), report, describe_setting(settings, report.encoding)


def _cheapest_encoding(step: Step, name: str, tensor: str, layout, flat_index, codebook, s: LayerSettings, trial: Trial):
    """(validation metric, bytes, settings) of the cheapest encoding of the shared
    layer that keeps trial.allowed before the table is fixed and retrained, or the
    most accurate one if none does. Prices dense indices, the sparse stream and Bloomier tables
    over t."""
    net = step.net
    shared = net.values[tensor].copy()
    shared_metric = step.scorer.metric()
    encodings = ("codebook", "sparse", "bloomier") if "encoding" in trial.searched else (s.encoding,)
    if s.density >= 1.0 and "encoding" in trial.searched:
        encodings = ("codebook",)  # nothing pruned: a table would store every position
    tried: list[tuple[float, int, LayerSettings]] = []
    if "codebook" in encodings or "auto" in encodings:
        cs = replace(s, encoding="codebook")
        _, report = encode_indices(name, tensor, flat_index.astype(np.uint32), codebook, cs, s.seed)
        tried.append((shared_metric, report.bytes, cs))
    if "sparse" in encodings or "auto" in encodings:  # no false positives: the shared model's accuracy
        ss = replace(s, encoding="sparse")
        _, report = encode_indices(name, tensor, flat_index.astype(np.uint32), codebook, ss, s.seed,
                                   block=layout.block_positions)
        tried.append((shared_metric, report.bytes, ss))

    def bloomier(bits: int) -> tuple[float, int, LayerSettings]:
        bs = replace(s, encoding="bloomier", bits=bits)
        enc, report = encode_indices(name, tensor, flat_index.astype(np.uint32), codebook, bs, s.seed)
        net.set_values(tensor, layout.unwalk(enc.decode()))
        result = (step.scorer.metric(), report.bytes, bs)
        tried.append(result)
        return result

    if "bloomier" in encodings or "auto" in encodings:
        low = max(1, codebook.size.bit_length())
        if "bits" not in trial.searched:
            bloomier(s.bits)
        else:
            t = max(low, bits_for(s.density, int(codebook.size)))
            first = bloomier(t)
            if first[0] >= trial.allowed:
                while t > low and bloomier(t - 1)[0] >= trial.allowed:
                    t -= 1
            else:
                cheapest_safe = min((b for m, b, _ in tried if m >= trial.allowed), default=None)
                while t < 16:
                    t += 1
                    m, b, _ = bloomier(t)
                    if m >= trial.allowed or (cheapest_safe is not None and b >= cheapest_safe):
                        break
    net.set_values(tensor, shared)
    return max(tried, key=lambda o: preference(o[0], o[1], trial.allowed))


# -- trials in processes -----------------------------------------------------------
_WORKER_CONTEXT: Context | None = None


def _init_worker() -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # two processes on two cores: oversubscribed BLAS threads spin
    except ImportError:
        pass


def _trial_in_worker(net: Network, trial: Trial) -> TrialResult:
    return run_trial(_WORKER_CONTEXT.quiet(), net, trial)


class TrialRunner:
    """Runs batches of trials from one saved state: in this process (jobs 1) or in a pool of forked ones."""

    def __init__(self, ctx: Context, jobs: int):
        self.ctx, self.jobs, self.pool = ctx, max(1, jobs), None
        if self.jobs > 1:
            global _WORKER_CONTEXT
            _WORKER_CONTEXT = ctx  # the workers are forked: they inherit the data instead of receiving it
            self.pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("fork"),
                                            initializer=_init_worker)

    def run(self, saved: Network, trials: list[Trial]) -> list[TrialResult]:
        if self.pool is None:
            return [run_trial(self.ctx.quiet(self.ctx.progress), copy.deepcopy(saved), t) for t in trials]
        try:
            return [f.result() for f in [self.pool.submit(_trial_in_worker, saved, t) for t in trials]]
        except BrokenProcessPool:
            raise WeightlessError("a trial process of the budget search died (out of memory?); try --jobs 1") from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def ladder_search(runner: TrialRunner, saved: Network, values: list[float], make, report) -> TrialResult | None:
    """The passing trial with the fewest bytes among those tried, searching the
    ascending `values` (accuracy assumed to grow along them) by parallel bisection."""
    passing = ladder_passing(runner, saved, values, make, report)
    return passing[0] if passing else None


def ladder_passing(runner: TrialRunner, saved: Network, values: list[float], make, report,
                   seen: list[TrialResult] | None = None) -> list[TrialResult]:
    """The trials that passed in ladder_search's bisection, the preferred first (every
    trial run is appended to `seen`, if given)."""
    lo, hi = -1, len(values)  # values[lo] fails, values[hi] passes (sentinels: none known)
    results: list[TrialResult] = []
    while hi - lo > 1:
        width = min(runner.jobs, hi - lo - 1)
        probes = sorted({lo + max(1, round((hi - lo) * (k + 1) / (width + 1))) for k in range(width)} - {hi})
        batch = runner.run(saved, [make(values[i]) for i in probes])
        for i, r in zip(probes, batch):
            report(r)
            results.append(r)
            if seen is not None:
                seen.append(r)
        passed = [i for i, r in zip(probes, batch) if r.passed]
        if passed:
            hi = min(passed)
        failed = [i for i, r in zip(probes, batch) if not r.passed and i < hi]
        if failed:
            lo = max(failed)
        if not passed and not failed:
            break
    return sorted((r for r in results if r.passed), key=lambda r: preference(r.metric, r.bytes, r.trial.allowed),
                  reverse=True)


def channel_cuts(runner: TrialRunner, saved: Network, fractions: list[float], make, allowed: float, report):
    """The channel stage: (the fewest channels that keep the trials' threshold, half the
    layer's room, or None; a deeper cut among those tried that kept the whole room, or
    None). A cut is measured before any weights trial has retrained the model around it,
    and on the 5,000 images of a typical validation set one image is 0.02 points: a cut
    that misses half the room by an image may still store fewer bytes once its weights
    are searched, so the deeper cut is judged together with its weights, against the
    whole room."""
    seen: list[TrialResult] = []
    passing = ladder_passing(runner, saved, fractions, make, report, seen)
    best = passing[0] if passing else None
    deeper = [r for r in seen if r.error is None and r.metric >= allowed
              and (best is None or r.trial.value < best.trial.value)]
    return best, min(deeper, key=lambda r: r.trial.value, default=None)


def _control(net: Network, ctx: Context, baseline: float, budget: float) -> tuple[float, Network]:
    """One retraining step of the uncompressed model: what the recipe alone does to the
    validation accuracy. When it spends a good part of the budget, the user should know.
    (The search does not lower the learning rate itself: on LeNet-5 a rate low enough for
    the control to keep the budget left the trials unable to recover from cuts; see
    docs/budget-search.md.)"""
    step = Step(copy.deepcopy(net), ctx.quiet())
    step.train("control")
    control = step.scorer.metric()
    ctx.progress(f"control: one retraining step with nothing compressed gives {step.scorer.describe(control)}")
    if baseline - control > 0.25 * budget:
        ctx.warn(f"retraining alone, with nothing compressed, moves {step.scorer.describe(baseline)} to "
                 f"{100 * control:.2f}%: {100 * (baseline - control):.2f} of the {100 * budget:g} points of the budget; "
                 f"a lower --lr (the model may be past the learning rate it was trained down to) or other --epochs "
                 f"may leave more of it for compression")
    return control, step.net


def budget_shares(positions) -> np.ndarray:
    """The cumulative part of the budget each layer may have spent once it is done: by the
    square root of its weights, and at least SHARE_FLOOR of the mean share, so that a
    small first layer is not held to a drop no validation set can resolve."""
    w = np.sqrt(np.asarray(positions, np.float64))
    w = np.maximum(w, SHARE_FLOOR * w.mean())
    return np.cumsum(w) / w.sum()


def layer_threshold(baseline: float, budget: float, share: float, current: float, samples: int) -> float:
    """The validation metric a layer's trials must keep: baseline minus its cumulative share of
    the budget, but at least MIN_SAMPLES samples below where the layer starts (`current`), and
    never below the whole budget's floor (all less SLACK)."""
    floor = baseline - budget
    return max(floor, min(baseline - budget * share, current - MIN_SAMPLES / samples)) - SLACK


def budget_search(graph: Graph, settings: CompressionSettings, ctx: Context) -> list[LayerReport]:
    opts = ctx.opts
    if not ctx.labelled:
        raise OptionError("--target-accuracy-drop needs labels: give y (and y_val) in --train-data")
    if not opts.accuracy_budget > 0:
        raise OptionError(f"--target-accuracy-drop must be > 0 percentage points, not {opts.accuracy_budget}")
    progress = ctx.progress
    cands, per_layer, active = plan_layers(graph, settings)
    net = Network(graph)
    step = Step(net, ctx)
    baseline = step.scorer.metric()
    budget = opts.accuracy_budget / 100
    progress(f"original model: {step.scorer.describe(baseline)}; budget {opts.accuracy_budget:g} points over "
             f"{len(active)} layers, {opts.jobs} trial process{'es' if opts.jobs > 1 else ''}")
    control, control_net = _control(net, ctx, baseline, budget)
    if opts.search == "plan":
        from .plan_search import plan_search

        runner = TrialRunner(ctx, opts.jobs)
        try:
            net, reports, dense_layers = plan_search(graph, settings, ctx, runner, baseline, control_net, control)
        finally:
            runner.close()
        return _conclude(graph, net, ctx, reports, baseline, control, dense_layers, True)
    shares = budget_shares([cands[i][2].positions for i in active])
    small = set(protected_layers(graph, replace(settings, protect="auto", given=frozenset()), cands, per_layer))
    reports: dict[int, LayerReport] = {}
    chosen: dict[int, Trial] = {}  # the weights trial each compressed layer kept
    unpruned: dict[int, np.ndarray] = {}  # each density-searched layer's weights before its weights trials
    dense_layers: list[str] = []
    runner = TrialRunner(ctx, opts.jobs)

    def show(r: TrialResult):
        verdict = "error: " + r.error if r.error else ("keeps it" if r.passed else "too costly")
        name = candidates(r.net.graph)[r.trial.layer][0].name if r.net is not None else f"layer {r.trial.layer}"
        progress(f"  trial {name}: {r.setting}: {r.bytes:,} B, {step.scorer.describe(r.metric) if not r.error else ''}"
                 f" (needs {100 * r.trial.allowed:.3f}%) {verdict}, {r.seconds:.0f} s")

    try:
        for k, i in enumerate(active):
            t0 = time.perf_counter()
            cands = candidates(net.graph)  # a chosen trial's network brings its own graph
            node, tensor, _ = cands[i]
            s = per_layer[i]
            given = settings.given_for(node.name, tensor)
            searched = frozenset({"clusters", "bits", "encoding"} - given)
            current = step.scorer.metric()
            allowed = layer_threshold(baseline, budget, float(shares[k]), current, len(ctx.y_val))
            progress(f"{node.name}: searching from {step.scorer.describe(current)}, "
                     f"may go down to {step.scorer.describe(allowed)}")
            chain = channel_chain(net.graph, node)
            room = max(0.0, current - allowed)
            deeper = None  # a deeper channel cut that kept the whole room
            if "channels" not in given and chain is not None:
                cut_room = CHANNEL_SHARE * room
                allowed_c = current - cut_room - SLACK
                if cut_room < 1 / len(ctx.y_val):
                    # a cut that may not lose one validation sample is not worth its trials
                    progress(f"{node.name}: channels not searched: cutting them may cost "
                             f"{100 * cut_room:.3f} points, less than one validation sample")
                else:
                    total = net.values[tensor].shape[0]
                    fractions = sorted({c for c in CHANNEL_LADDER if 1 <= int(np.ceil(c * total - 1e-9)) < total})
                    best, deeper = channel_cuts(runner, net, fractions,
                                                lambda c: Trial(i, "channels", c, allowed_c, s, searched), allowed, show)
                    if best is not None:
                        net, step = best.net, Step(best.net, ctx)
                        progress(f"{node.name}: {best.setting} chosen")
                    if deeper is not None:
                        progress(f"{node.name}: {deeper.setting} kept the layer's whole room "
                                 f"({step.scorer.describe(deeper.metric)}): its weights are searched too, and the cut "
                                 f"whose weights store fewer bytes is kept")
            elif s.channels < 1.0:
                prune_channels(step, node, s.channels)

            def weights_stage(start: Network):
                tensor = candidates(start.graph)[i][1]
                if i in small and "density" not in given:
                    # as under uniform settings, dense indices only (see compress/settings.py), K on a
                    # ladder of its own: each K fixed and retrained, judged after it, in parallel
                    positions = candidates(start.graph)[i][2].positions
                    ks = [k for k in DENSE_CLUSTER_CHOICES if k <= positions] or [positions]
                    if not {"clusters", "encoding"} <= searched:
                        ks = [s.clusters]
                    found = ladder_search(runner, start, ks,
                                          lambda k: Trial(i, "weights", 1.0, allowed, replace(s, clusters=int(k)),
                                                          searched - {"clusters"}), show)
                    return found, start.values[tensor].copy()
                densities = [s.density] if "density" in given else list(DENSITY_LADDER)
                found = ladder_search(runner, start, densities, lambda d: Trial(i, "weights", d, allowed, s, searched),
                                      show)
                return found, start.values[tensor].copy()

            best, before = weights_stage(net)
            if deeper is not None:
                other, other_before = weights_stage(deeper.net)
                if other is not None and (best is None or preference(other.metric, other.bytes, allowed)
                                          > preference(best.metric, best.bytes, allowed)):
                    progress(f"{node.name}: {deeper.setting} kept, its weights storing {other.bytes:,} B"
                             + (f" against {best.bytes:,} B" if best is not None else ""))
                    best, before = other, other_before
            cands = candidates(net.graph if best is None else best.net.graph)
            node, tensor, layout = cands[i]
            if "density" not in given and i not in small:
                unpruned[i] = before
            if best is not None:
                net, step = best.net, Step(best.net, ctx)
                reports[i], chosen[i] = best.report, best.trial
                progress(f"{node.name}: {best.setting} chosen, {best.bytes:,} B, {step.scorer.describe(best.metric)}, "
                         f"layer done in {time.perf_counter() - t0:.0f} s")
            else:
                dense_layers.append(node.name)
                progress(f"{node.name}: no setting kept {step.scorer.describe(allowed)}; the layer stays float32 "
                         f"({4 * layout.positions:,} B)")
        net, retrained = _spend_the_rest(runner, net, ctx, reports, chosen, baseline - budget - SLACK,
                                         {i: w for i, w in unpruned.items() if i in chosen}, show)
    finally:
        runner.close()
    return _conclude(graph, net, ctx, reports, baseline, control, dense_layers, retrained)


def _conclude(graph: Graph, net: Network, ctx: Context, reports: dict[int, LayerReport], baseline: float,
              control: float, dense_layers: list[str], retrained: bool) -> list[LayerReport]:
    """The searched network becomes the caller's graph; the final retraining (unless it has
    had it), the whole model's drop checked against the budget and said plainly if missed."""
    opts, progress = ctx.opts, ctx.progress
    cands = candidates(net.graph)
    graph.__dict__.update(net.graph.__dict__)  # the caller's graph becomes the searched one
    net.graph = graph
    step = Step(net, ctx)
    final = finish(step, graph, cands, reports, baseline, retrained)
    drop = 100 * (baseline - final)
    met = drop <= opts.accuracy_budget + 1e-9
    graph.compression_summary["budget"] = {"target_drop_points": opts.accuracy_budget, "drop_points": round(drop, 4),
                                           "met": met, "float32_layers": dense_layers,
                                           "retraining_alone_drop_points": round(100 * (baseline - control), 4)}
    if met:
        progress(f"budget met: validation accuracy dropped {drop:.2f} of {opts.accuracy_budget:g} points")
    else:
        instead = (f"layers {', '.join(dense_layers)} stayed float32 and " if dense_layers else "")
        how = ("each other layer kept the cheapest setting that met its share when it was tried" if opts.search == "layers"
               else "no plan that was checked kept the budget, and this is the most accurate of them")
        ctx.warn(f"the budget was NOT met: validation accuracy dropped {drop:.2f} points "
                 f"({step.scorer.describe(baseline)} -> {step.scorer.describe(final)}), more than the {opts.accuracy_budget:g} "
                 f"allowed; {instead}{how}. "
                 f"The output holds this model; a larger budget, more --epochs or --final-epochs may meet it")
    graph.compression_summary["warnings"] = list(ctx.warnings)
    return [reports.get(i) or dense_report(n, t, lay) for i, (n, t, lay) in enumerate(cands)]


def _spend_the_rest(runner: TrialRunner, net: Network, ctx: Context, reports: dict[int, LayerReport],
                    chosen: dict[int, Trial], floor: float, unpruned: dict[int, np.ndarray], show):
    """Retraining between layers often gives back part of what a layer spent, and a layer
    seldom lands on its threshold: what the layers left of the budget goes to the ones
    that hold the most bytes (at least REST_SHARE of them), searched again at their chosen
    density and below, down to the whole budget (floor). Each trial starts from the model
    as it is with that layer's weights as they were before its first trials (`unpruned`:
    pruning the decoded table instead would keep its false positives and drop kept weights).
    A setting found this way lands near the floor, where the final retraining (at a tenth
    of the learning rate) can take it below: it is taken only if the floor still holds
    after that retraining, run on a copy; else the next cheaper one that passed is checked.
    Returns the network and whether it has had the final retraining (when the pass took a
    setting, the copy that was checked, so that the final retraining is not run twice)."""
    step = Step(net, ctx)
    finished = None  # the last taken setting's network after the final retraining
    total = sum(r.bytes for r in reports.values())
    for i in sorted(unpruned, key=lambda i: -reports[i].bytes):
        if reports[i].bytes < REST_SHARE * total:
            break
        current = step.scorer.metric()
        if current <= floor:
            break
        node, tensor, _ = candidates(net.graph)[i]
        ctx.progress(f"{node.name}: searching again with what the layers left, from {step.scorer.describe(current)} "
                     f"down to {step.scorer.describe(floor)} ({reports[i].bytes:,} B now)")
        start = copy.deepcopy(net)
        start.values[tensor] = unpruned[i].copy()
        start.constraints[tensor] = Constraint()
        trial = chosen[i]
        densities = [d for d in DENSITY_LADDER if d <= trial.value + 1e-12]
        passing = ladder_passing(runner, start, densities, lambda d: replace(trial, value=d, allowed=floor), show)
        taken = None
        for r in (r for r in passing if r.bytes < reports[i].bytes):
            check = Step(copy.deepcopy(r.net), ctx.quiet())
            final_retraining(check)
            after = check.scorer.metric()
            if after >= floor:
                taken = r
                finished = check.net
                break
            ctx.progress(f"{node.name}: {r.setting} ({r.bytes:,} B) gives {step.scorer.describe(after)} after the "
                         f"final retraining, below {step.scorer.describe(floor)}: not taken")
        if taken is not None:
            net, step = taken.net, Step(taken.net, ctx)
            reports[i], chosen[i] = taken.report, taken.trial
            ctx.progress(f"{node.name}: {taken.setting} chosen, {taken.bytes:,} B, {step.scorer.describe(taken.metric)}")
        else:
            ctx.progress(f"{node.name}: kept as it was")
    return (net, False) if finished is None else (finished, True)
