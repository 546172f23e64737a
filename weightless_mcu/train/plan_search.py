"""The planned budget search (--budget-search plan): measure each layer alone, plan
the whole model, check whole plans.

The layer-by-layer search (budget_search.py) judges every cut right after it,
against its layer's share of the budget: a few validation images. Part of what a
cut costs comes back once the rest of the model is retrained around it, and a
cut of an early layer is worth the positions it removes downstream, so on small
convolutional models it keeps far more channels than hand settings do at the
same final drop. This search judges whole settings instead:

  1. profile: each layer alone, from the original model, is cut to each rung of
     CHANNEL_RUNGS and pruned to each rung of DENSITY_RUNGS (one cut, one
     retraining step each); the pruned layer is then shared at each K and its
     encodings priced (dense indices, the sparse stream, Bloomier tables around
     the t whose false positives are about a quarter of the kept weights) and
     scored without further training. What an option costs is the rise of the
     validation loss over the control's (the model retrained once, nothing
     compressed): a loss resolves what the accuracy of a few thousand images
     cannot.
  2. plan: bytes + mu * cost summed over the layers is minimised for each mu of
     a wide range (the layers form a chain: a layer keeping a fraction of its
     channels scales the positions of the layer that reads them), which gives a
     frontier of plans from the smallest to the safest.
  3. check: a plan is run on the whole model as explicit settings would run it
     (layer after layer from the input side: its channel cut, pruning, sharing
     and fixed table, each retrained; then the final retraining) and judged by
     its validation accuracy against baseline - P. Costs measured alone do not
     add up exactly and retraining gives back part of them; the check measures
     what they do together. (Running every layer's cut at once in the same steps
     instead is cheaper but recovers less: on the MNIST LeNet-5, hand candidate
     A's settings gave 97.88% that way against 98.66% layer after layer, one
     epoch per step.) The frontier is bisected, `jobs` plans per round, for the
     smallest plan that keeps the budget.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from ..compress import LayerReport, candidates, dense_report, encode_indices, plan_layers, protected_layers, share_weights
from ..compress.channels import channel_chain, strongest_channels
from ..compress.prune import magnitude_masks
from ..compress.settings import CompressionSettings, LayerSettings
from ..errors import WeightlessError
from ..ir import Graph
from .network import Constraint, Network
from .weightless import Context, Step, compress_layer, describe_setting, final_retraining, prune_channels

CHANNEL_RUNGS = (0.1, 0.15, 0.25, 0.4, 0.6, 0.8)
DENSITY_RUNGS = (0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5)
CLUSTER_CHOICES = (4, 15)
DENSE_CLUSTER_CHOICES = (3, 15, 255)  # dense indices of 2, 4 and 8 bits, for the protected layers
BLOOMIER_BITS = (-1, 0, 1, 2)  # t around the one whose false positives are a quarter of the kept weights
MAX_PLANS = 27  # of the frontier that is checked (bisection: 3 rounds of 2 plans)


@dataclass(frozen=True)
class Option:
    """One way to store a layer: its bytes at full channels and what it costs alone."""

    density: float
    clusters: int
    encoding: str  # codebook | sparse | bloomier | dense (float32, nothing done)
    bits: int
    bytes: int
    cost: float  # rise of the validation loss over the control's

    def describe(self) -> str:
        if self.encoding == "dense":
            return "float32"
        return describe_setting(LayerSettings(density=self.density, clusters=self.clusters, bits=self.bits), self.encoding)


@dataclass(frozen=True)
class Probe:
    """One layer alone at one channel fraction or density: the options it yields."""

    layer: int
    kind: str  # channels | weights
    value: float
    settings: LayerSettings
    clusters: tuple[int, ...]
    encodings: tuple[str, ...]
    bits: tuple[int, ...] | None  # None: around bits_for

    def run(self, ctx: Context, net: Network) -> "ProbeResult":
        t0 = time.perf_counter()
        step = Step(net, ctx)
        node, tensor, layout = candidates(net.graph)[self.layer]
        try:
            if self.kind == "channels":
                chain = channel_chain(net.graph, node)
                keep = strongest_channels(net.graph, chain, self.value, net.values)
                net.constrain(tensor, Constraint("masked", mask=_channel_mask(keep, net.values[tensor].shape)))
                step.train(f"{node.name}: {int(keep.sum())} channels")
                return ProbeResult(self, validation_loss(step), [], None, time.perf_counter() - t0)
            return ProbeResult(self, 0.0, self._weights(step, node.name, tensor, layout), None, time.perf_counter() - t0)
        except (WeightlessError, ValueError) as exc:
            return ProbeResult(self, float("inf"), [], str(exc), time.perf_counter() - t0)

    def _weights(self, step: Step, name: str, tensor: str, layout) -> list[tuple[Option, float]]:
        """(option, validation loss) for each K and encoding at this density."""
        from .budget_search import bits_for

        net = step.net
        if self.value < 1.0:
            (mask,) = magnitude_masks([net.values[tensor]], self.value)
            net.constrain(tensor, Constraint("masked", mask=mask))
            step.train(f"{name}: pruned to {self.value:g}")
        else:
            mask = np.ones(net.values[tensor].shape, bool)
        flat_keep = layout.walk(mask.astype(np.float32)) > 0.5
        kept = int(flat_keep.sum())
        weights = net.values[tensor].copy()
        found = []
        for k in (k for k in self.clusters if k <= kept):
            flat_index, codebook = share_weights(name, layout.walk(weights), flat_keep, k)
            net.set_values(tensor, layout.unwalk(np.concatenate([[0.0], codebook]).astype(np.float32)[flat_index]))
            shared_loss = validation_loss(step)
            s = replace(self.settings, density=self.value, clusters=k)
            for encoding in self.encodings:
                if encoding == "bloomier":
                    ts = self.bits or sorted({min(16, max(k.bit_length(), bits_for(self.value, k) + d))
                                              for d in BLOOMIER_BITS})
                    for t in ts:
                        enc, report = encode_indices(name, tensor, flat_index, codebook,
                                                     replace(s, encoding="bloomier", bits=t), s.seed)
                        net.set_values(tensor, layout.unwalk(enc.decode()))
                        found.append((Option(self.value, k, "bloomier", t, report.bytes, 0.0), validation_loss(step)))
                else:
                    _, report = encode_indices(name, tensor, flat_index, codebook, replace(s, encoding=encoding),
                                               s.seed, block=layout.block_positions)
                    found.append((Option(self.value, k, encoding, s.bits, report.bytes, 0.0), shared_loss))
        net.set_values(tensor, weights)
        return found


@dataclass
class ProbeResult:
    probe: Probe
    loss: float  # channels: the validation loss after the cut
    options: list[tuple[Option, float]]  # weights: each option and its validation loss
    error: str | None
    seconds: float


@dataclass(frozen=True)
class LayerPlan:
    layer: int
    channels: float
    option: Option


@dataclass(frozen=True)
class PlanTrial:
    """A whole plan, run on the model layer after layer and judged on validation."""

    index: int  # on the frontier
    plan: tuple[LayerPlan, ...]
    settings: tuple[LayerSettings, ...]  # each planned layer's other settings (hashes, seed, bias clusters)

    def run(self, ctx: Context, net: Network) -> "PlanResult":
        t0 = time.perf_counter()
        try:
            reports = run_plan(Step(net, ctx), self.plan, self.settings)
            metric = Step(net, ctx).scorer.metric()
            cands = candidates(net.graph)
            nbytes = sum(reports[p.layer].bytes if p.layer in reports else dense_report(*cands[p.layer]).bytes
                         for p in self.plan)
            return PlanResult(self, net, metric, nbytes, reports, None, time.perf_counter() - t0)
        except (WeightlessError, ValueError) as exc:
            return PlanResult(self, None, float("-inf"), 0, {}, str(exc), time.perf_counter() - t0)


@dataclass
class PlanResult:
    trial: PlanTrial
    net: Network | None
    metric: float
    bytes: int
    reports: dict[int, LayerReport]
    error: str | None
    seconds: float


def validation_loss(step: Step) -> float:
    """The validation loss: cross-entropy of the labels (on the logits before a final
    Softmax/LogSoftmax), or without labels the distillation loss."""
    ctx, net = step.ctx, step.net
    if not ctx.labelled:
        return -step.scorer.metric()
    name = step.objective.softmax_input or net.output
    total = 0.0
    for i in range(0, len(ctx.x_val), 500):
        env, _ = net.forward({net.graph.inputs[0]: ctx.x_val[i:i + 500]}, upto=name)
        z = env[name].astype(np.float64).reshape(len(ctx.x_val[i:i + 500]), -1)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        total -= logp[np.arange(len(z)), ctx.y_val[i:i + 500]].sum()
    return total / len(ctx.x_val)


def _channel_mask(keep: np.ndarray, shape) -> np.ndarray:
    return np.broadcast_to(keep.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()


def run_plan(step: Step, plan: tuple[LayerPlan, ...], settings: tuple[LayerSettings, ...]) -> dict[int, LayerReport]:
    """Compress the layers of the plan one after the other, from the input side, each as
    explicit settings would (its channel cut, pruning, sharing, fixed table, each retrained),
    then the final retraining. The reports of the encoded layers."""
    graph = step.net.graph
    reports = {}
    for p, s in zip(plan, settings):
        if p.channels < 1.0:
            prune_channels(step, candidates(graph)[p.layer][0], p.channels)
        if p.option.encoding == "dense":
            continue
        node, tensor, layout = candidates(graph)[p.layer]
        o = p.option
        reports[p.layer] = compress_layer(step, node.name, tensor, layout,
                                          replace(s, density=o.density, clusters=o.clusters, bits=o.bits, encoding=o.encoding))
    final_retraining(step)
    return reports


@dataclass
class LayerOptions:
    layer: int
    name: str
    positions: int
    channels: list[tuple[float, float]]  # (kept fraction, cost)
    options: list[Option]
    feeds_next: bool  # its channel cut scales the next planned layer's positions


def monotone(costs: list[float]) -> list[float]:
    """Costs along a ladder from the deepest cut to the lightest, made non-increasing
    (a lighter cut is assumed to cost no more: the measurements are noisy) and >= 0."""
    out, low = [], float("inf")
    for c in costs:
        low = min(low, max(0.0, c))
        out.append(low)
    return out


def plan_for(mu: float, layers: list[LayerOptions]) -> tuple[float, float, tuple[LayerPlan, ...]]:
    """The plan minimising sum(bytes) + mu * sum(cost): (bytes, cost, plan). Dynamic
    programming along the layers, the state being the kept fraction of the previous
    layer's channels when they are the inputs of this one."""
    states: dict[float, tuple[float, float, float, tuple]] = {1.0: (0.0, 0.0, 0.0, ())}  # value, bytes, cost, plan
    prev_feeds = False
    for lay in layers:
        new: dict[float, tuple] = {}
        for c, ccost in lay.channels:
            for p, (value, nbytes, cost, plan) in states.items():
                scale = c * (p if prev_feeds else 1.0)
                # a cut leaves fewer weights to share: no more clusters than the weights kept
                fits = [o for o in lay.options if o.encoding == "dense" or o.clusters <= o.density * lay.positions * scale]
                o = min(fits, key=lambda o: (o.bytes * scale + mu * o.cost, o.cost))
                b = o.bytes * scale
                v = value + b + mu * (ccost + o.cost)
                key = c if lay.feeds_next else 1.0
                if key not in new or v < new[key][0]:
                    new[key] = (v, nbytes + b, cost + ccost + o.cost, plan + (LayerPlan(lay.layer, c, o),))
        states, prev_feeds = new, lay.feeds_next
    _, nbytes, cost, plan = min(states.values(), key=lambda s: s[0])
    return nbytes, cost, plan


def frontier(layers: list[LayerOptions]) -> list[tuple[float, float, tuple[LayerPlan, ...]]]:
    """Plans from the fewest bytes to the least cost, each cheaper in cost than every smaller
    one, thinned to MAX_PLANS spread over the range of bytes."""
    found = {}
    for mu in np.geomspace(1e-2, 1e12, 400):
        nbytes, cost, plan = plan_for(float(mu), layers)
        found.setdefault(plan, (nbytes, cost, plan))
    plans = sorted(found.values(), key=lambda p: (p[0], p[1]))
    pareto = []
    for p in plans:
        if not pareto or p[1] < pareto[-1][1] - 1e-12:
            pareto.append(p)
    if len(pareto) > MAX_PLANS:
        keep = np.unique(np.round(np.linspace(0, len(pareto) - 1, MAX_PLANS)).astype(int))
        pareto = [pareto[i] for i in keep]
    return pareto


def profile(runner, net: Network, ctx: Context, cands, active: list[int], per_layer, small: set[int],
            settings: CompressionSettings, control_loss: float, original_loss: float, progress) -> list[LayerOptions]:
    """Every layer's channel and weights options, each measured alone from `net`. What an
    option costs is measured against the control (one retraining step, nothing compressed),
    or against the original model for dense indices, which are not retrained."""
    probes = []
    for i in active:
        node, tensor, layout = cands[i]
        s = per_layer[i]
        given = settings.given_for(node.name, tensor)
        chain = channel_chain(net.graph, node)
        if chain is not None and "channels" not in given:
            total = net.values[tensor].shape[0]
            probes += [Probe(i, "channels", c, s, (), (), None) for c in CHANNEL_RUNGS
                       if 1 <= int(round(c * total)) < total]
        dense_only = i in small and "density" not in given
        densities = [1.0] if dense_only else ([s.density] if "density" in given else list(DENSITY_RUNGS))
        ks = (s.clusters,) if "clusters" in given else (DENSE_CLUSTER_CHOICES if dense_only else CLUSTER_CHOICES)
        encodings = (("codebook",) if dense_only else ("codebook", "sparse", "bloomier"))
        if "encoding" in given and s.encoding != "auto":
            encodings = (s.encoding,)
        bits = (s.bits,) if "bits" in given else None
        probes += [Probe(i, "weights", d, s, ks, encodings, bits) for d in densities]
    progress(f"profile: {len(probes)} probes, each layer alone")
    results = runner.run(net, probes)
    layers = []
    for n, i in enumerate(active):
        node, tensor, layout = cands[i]
        mine = [r for r in results if r.probe.layer == i]
        for r in mine:
            if r.error:
                progress(f"  {node.name}: {r.probe.kind} {r.probe.value:g}: error: {r.error}")
        cuts = sorted((r.probe.value, r.loss - control_loss) for r in mine if r.probe.kind == "channels" and not r.error)
        channels = list(zip([c for c, _ in cuts], monotone([c for _, c in cuts]))) + [(1.0, 0.0)]
        options = [Option(1.0, 0, "dense", 0, 4 * layout.positions, 0.0)]
        weights = [r for r in mine if r.probe.kind == "weights" and not r.error]
        for r in weights:
            ref = control_loss if r.probe.value < 1.0 else original_loss
            options += [replace(o, cost=max(0.0, loss - ref)) for o, loss in r.options]
        for c, cost in channels[:-1]:
            progress(f"  {node.name}: channels {c:g}: loss +{cost:.4f}")
        for r in weights:
            best = min(r.options, key=lambda ol: ol[1], default=None)
            if best is not None:
                ref = control_loss if r.probe.value < 1.0 else original_loss
                progress(f"  {node.name}: density {r.probe.value:g}: loss +{best[1] - ref:.4f} at best "
                         f"({len(r.options)} encodings priced), {r.seconds:.0f} s")
        chain = channel_chain(net.graph, node)
        nxt = active[n + 1] if n + 1 < len(active) else None
        feeds = chain is not None and nxt is not None and chain.consumer is cands[nxt][0]
        layers.append(LayerOptions(i, node.name, layout.positions, channels, options, feeds))
    return layers


def plan_search(graph: Graph, settings: CompressionSettings, ctx: Context, runner, baseline: float,
                control_net: Network, control_metric: float) -> tuple[Network, dict[int, LayerReport], list[str]]:
    """The network of the smallest checked plan that keeps baseline - P (or, if none does, the
    most accurate one checked), its reports, and the layers left float32. The network has had
    the final retraining."""
    progress = ctx.progress
    budget = ctx.opts.accuracy_budget / 100
    floor = baseline - budget - 1e-9
    cands, per_layer, active = plan_layers(graph, settings)
    net = Network(graph)
    small = set(protected_layers(graph, replace(settings, protect="auto", given=frozenset()), cands, per_layer))
    control_loss = validation_loss(Step(control_net, ctx))
    layers = profile(runner, net, ctx, cands, active, per_layer, small, settings, control_loss,
                     validation_loss(Step(net, ctx)), progress)
    plans = frontier(layers)
    progress(f"plan: {len(plans)} plans on the frontier, {plans[0][0]:,.0f} to {plans[-1][0]:,.0f} B")
    others = tuple(per_layer[lay.layer] for lay in layers)
    trials = [PlanTrial(k, plan, others) for k, (_, _, plan) in enumerate(plans)]
    results: dict[int, PlanResult] = {}

    def describe(plan) -> str:
        return "; ".join(f"{cands[p.layer][0].name} " + (f"channels {p.channels:g}, " if p.channels < 1 else "")
                         + p.option.describe() for p in plan)

    lo, hi = 0, len(trials) - 1  # the smallest plan that passes is searched in [lo, hi]; hi is assumed to pass
    while lo < hi:
        width = max(1, ctx.opts.jobs)
        picks = sorted({lo + (hi - lo) * (k + 1) // (width + 1) for k in range(width)} - set(results))
        if not picks:
            picks = [lo]
        batch = runner.run(net, [trials[k] for k in picks])
        for r in batch:
            results[r.trial.index] = r
            verdict = "error: " + r.error if r.error else ("keeps it" if r.metric >= floor else "too costly")
            progress(f"  plan {r.trial.index + 1} of {len(trials)} ({plans[r.trial.index][0]:,.0f} B planned): "
                     f"{describe(r.trial.plan)}: {r.bytes:,} B, {Step(net, ctx).scorer.describe(r.metric)} "
                     f"(needs {100 * floor:.2f}%) {verdict}, {r.seconds:.0f} s")
        passing = [k for k in picks if results[k].error is None and results[k].metric >= floor]
        failing = [k for k in picks if k not in passing]
        if passing:
            hi = min(passing)
        below = [k for k in failing if k < hi]
        lo = max(below) + 1 if below else lo
        if lo == hi and hi not in results:
            results[hi] = runner.run(net, [trials[hi]])[0]
            r = results[hi]
            progress(f"  plan {hi + 1} of {len(trials)}: {describe(r.trial.plan)}: {r.bytes:,} B, "
                     f"{Step(net, ctx).scorer.describe(r.metric)}, {r.seconds:.0f} s")
    if hi not in results:
        results[hi] = runner.run(net, [trials[hi]])[0]
    ok = [r for r in results.values() if r.error is None and r.metric >= floor]
    best = (min(ok, key=lambda r: (r.bytes, -r.metric)) if ok
            else max(results.values(), key=lambda r: (r.metric, -r.bytes)))
    if best.net is None:
        raise WeightlessError(f"no plan of the budget search could be built: {best.error}")
    progress(f"plan {best.trial.index + 1} chosen: {describe(best.trial.plan)}, {best.bytes:,} B, "
             f"{Step(best.net, ctx).scorer.describe(best.metric)}")
    floats = [cands[p.layer][0].name for p in best.trial.plan if p.option.encoding == "dense"]
    return best.net, best.reports, floats
