"""The Weightless pipeline with retraining, layer by layer from the input side:

  0. with a channel fraction below 1, keep the layer's most important output
     channels (two cuts, retraining after each) and cut the others out of the
     graph, folding their constant outputs into the next layer's bias;
  1. prune the layer by magnitude, retrain (pruned weights stay zero);
  2. share its weights (k-means), retrain the K shared values;
  3. encode: build the Bloomier table with several hash seeds and keep the one
     whose false positives hurt the loss least on a calibration batch;
  4. freeze the layer's table: which position reads which shared value, false
     positives included, is fixed; the K shared values keep learning through
     all the positions that read them (the 2018 method froze the values too);
  5. retrain it with the layers after it; go on to the next layer.

With labels the loss is cross-entropy; without, the network is distilled from
the original model's outputs. With an accuracy budget, each layer takes the
smallest setting (lowest density) whose accuracy stays within its share of the
budget after retraining.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..compress import LayerReport, candidates, dense_report, encode_indices, plan_layers, share_weights
from ..compress.channels import channel_chain, remove_channels, strongest_channels
from ..compress.encodings import BloomierEncoding
from ..compress.prune import magnitude_masks
from ..compress.settings import CompressionSettings, LayerSettings
from ..errors import OptionError
from ..ir import Graph
from .data import Dataset, fit_to_input
from .network import Constraint, Network
from .trainer import Objective, TrainConfig, predict, train

DENSITY_LADDER = (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.35, 0.6, 1.0)


@dataclass
class RetrainOptions:
    config: TrainConfig
    seeds: int = 4  # hash seeds tried per layer
    prune_stages: int = 3  # the density is reached in this many cuts, each followed by retraining
    tune_through_table: bool = True  # after encoding, the shared values keep learning (False: frozen, as in 2018)
    calibration: int = 1024  # samples that score the seeds
    accuracy_budget: float | None = None  # percentage points of validation accuracy
    teacher_weight: float = 0.0  # with labels: weight of distillation from the original model (0: labels only)
    final_epochs: float = 0.0  # at the end, every table fixed: retrain at a tenth of the learning rate


class _Scorer:
    def __init__(self, net: Network, objective: Objective, data: Dataset, x_val, targets_val, calib_x, calib_t):
        self.net, self.objective = net, objective
        self.labelled = data.y is not None
        self.x_val, self.y_val, self.t_val = x_val, data.y_val, targets_val
        self.calib_x, self.calib_t = calib_x, calib_t

    def metric(self) -> float:
        """Validation accuracy with labels (higher is better), else minus the distillation loss."""
        if self.labelled:
            out = predict(self.net, self.x_val)
            return float((out.reshape(len(out), -1).argmax(axis=1) == self.y_val).mean())
        total = 0.0
        for i in range(0, len(self.x_val), 500):
            env, _ = self.net.forward({self.net.graph.inputs[0]: self.x_val[i:i + 500]})
            total += self.objective.loss_and_grads(env, self.t_val[i:i + 500])[0] * len(self.x_val[i:i + 500])
        return -total / len(self.x_val)

    def describe(self, value: float) -> str:
        return f"validation accuracy {100 * value:.2f}%" if self.labelled else f"validation loss {-value:.5f}"

    def calibration_loss(self) -> float:
        env, _ = self.net.forward({self.net.graph.inputs[0]: self.calib_x})
        return self.objective.loss_and_grads(env, self.calib_t)[0]


def retrain_compress(graph: Graph, settings: CompressionSettings, data: Dataset, opts: RetrainOptions,
                     progress: Callable[[str], None]) -> list[LayerReport]:
    cands, per_layer, active = plan_layers(graph, settings)
    if settings.prune == "global":
        raise OptionError("global pruning is not available with retraining; the layers are pruned one at a time")
    name = graph.inputs[0]
    shape = graph.tensors[name].shape
    x = fit_to_input(data.x, shape, "--train-data")
    x_val = fit_to_input(data.x_val, shape, "--train-data (validation)")
    net = Network(graph)
    objective = Objective(net, labelled=data.y is not None, teacher_weight=opts.teacher_weight)
    if data.y is None:
        teacher = Network(copy.deepcopy(graph))
        targets, targets_val = objective.teacher_targets(teacher, x), objective.teacher_targets(teacher, x_val)
    elif objective.teacher_weight > 0:
        targets, targets_val = objective.teacher_rows(Network(copy.deepcopy(graph)), x, data.y), None
    else:
        targets, targets_val = data.y, None
    rng = np.random.default_rng(opts.config.seed)
    calib = rng.choice(len(x), size=min(opts.calibration, len(x)), replace=False)
    scorer = _Scorer(net, objective, data, x_val, targets_val, x[calib], targets[calib])
    baseline = scorer.metric()
    progress(f"original model: {scorer.describe(baseline)}")
    reports: dict[int, LayerReport] = {}
    for step, i in enumerate(active):
        s = per_layer[i]
        t0 = time.perf_counter()
        if s.channels < 1.0 and _prune_channels(net, scorer, objective, x, targets, cands[i][0], s, opts, progress):
            cands = candidates(graph)  # this layer and the next one changed shape
        node, tensor, layout = cands[i]
        if opts.accuracy_budget is None:
            report = _compress_layer(net, scorer, objective, x, targets, node.name, tensor, layout, s, opts, progress)
        else:
            allowed = baseline - opts.accuracy_budget / 100 * (step + 1) / len(active)
            report = _search_layer(net, scorer, objective, x, targets, node.name, tensor, layout, s, opts, allowed, progress)
        reports[i] = report
        progress(f"{node.name}: done in {time.perf_counter() - t0:.0f} s, {scorer.describe(scorer.metric())}")
    if opts.final_epochs > 0:
        train(net, x, targets, objective, replace(opts.config, epochs=opts.final_epochs, lr=opts.config.lr / 10),
              progress, "all tables fixed, final retraining", lambda: scorer.describe(scorer.metric()))
    # The encodings take the shared values as they ended up; their tables do not change.
    for i in active:
        tensor = cands[i][1]
        c = net.constraints[tensor]
        if reports[i].encoding != "dense":
            graph.encodings[tensor] = c.encoding if c.codebook is None else replace(c.encoding, codebook=c.codebook.astype(np.float32))
            net.set_values(tensor, cands[i][2].unwalk(graph.encodings[tensor].decode()))
    net.export()
    return [reports.get(i) or dense_report(n, t, lay) for i, (n, t, lay) in enumerate(cands)]


def _prune_channels(net: Network, scorer, objective, x, targets, node, s: LayerSettings, opts, progress) -> bool:
    """Structured pruning: keep the layer's most important output channels
    (in two cuts, retraining after each), then cut the others out of the graph."""
    graph = net.graph
    chain = channel_chain(graph, node)
    if chain is None:
        progress(f"{node.name}: channels kept (its output does not lead into one layer that can absorb them)")
        return False
    tensor = node.inputs[1]
    total = net.values[tensor].shape[0]
    for k in (1, 2):
        keep = strongest_channels(graph, chain, s.channels ** (k / 2), net.values)
        mask = np.broadcast_to(keep.reshape((-1,) + (1,) * (net.values[tensor].ndim - 1)), net.values[tensor].shape)
        net.constrain(tensor, Constraint("masked", mask=mask.copy()))
        train(net, x, targets, objective, opts.config, progress, f"{node.name}: {int(keep.sum())} of {total} channels",
              lambda: scorer.describe(scorer.metric()))
    net.export()
    remove_channels(graph, chain, keep)
    # The graph's constants are the truth again; the two layers' weights are free until pruned.
    net.values = {k: t.data for k, t in graph.tensors.items() if t.is_const}
    for p in (*node.inputs[1:3], *chain.consumer.inputs[1:3]):
        if p:
            net.constraints[p] = Constraint()
            if p not in net.params:
                net.params.append(p)
    progress(f"{node.name}: {int(keep.sum())} of {total} output channels kept, {scorer.describe(scorer.metric())}")
    return True


def _compress_layer(net, scorer, objective, x, targets, name, tensor, layout, s: LayerSettings, opts, progress) -> LayerReport:
    cfg = opts.config
    # 1. prune gradually (density d^(1/3), d^(2/3), d), retraining after each cut
    mask = np.ones(net.values[tensor].shape, bool)
    for k in range(1, opts.prune_stages + 1 if s.density < 1.0 else 1):  # nothing to cut at density 1
        d = s.density ** (k / opts.prune_stages)
        (mask,) = magnitude_masks([net.values[tensor]], d)
        net.constrain(tensor, Constraint("masked", mask=mask))
        train(net, x, targets, objective, cfg, progress, f"{name}: pruned to {d:.3g}",
              lambda: scorer.describe(scorer.metric()))
    # 2. share weights and retrain the shared values
    flat_keep = layout.walk(mask.astype(np.float32)) > 0.5
    flat_index, codebook = share_weights(name, layout.walk(net.values[tensor]), flat_keep, s.clusters)
    index = layout.unwalk(flat_index.astype(np.float32)).astype(np.int64)
    net.constrain(tensor, Constraint("shared", index=index, codebook=codebook))
    train(net, x, targets, objective, cfg, progress, f"{name}: {codebook.size} shared values",
          lambda: scorer.describe(scorer.metric()))
    codebook = net.constraints[tensor].codebook.astype(np.float32)
    # 3. encode, choosing the hash seed whose false positives cost least
    best = None
    shared_values = net.values[tensor].copy()
    for k in range(max(1, opts.seeds)):
        seed = (s.seed + 0x9E3779B9 * k) % 2**32
        enc, report = encode_indices(name, tensor, flat_index.astype(np.uint32), codebook, s, seed, layout.walk(shared_values))
        net.set_values(tensor, layout.unwalk(enc.decode()))
        loss = scorer.calibration_loss()
        if best is None or loss < best[0]:
            best = (loss, enc, report, seed)
        if report.encoding != "bloomier":
            break  # no false positives: the seed does not matter
    loss, enc, report, seed = best
    progress(f"{name}: {report.encoding}, {report.false_positives} false positives, seed {seed:#x} "
             f"(calibration loss {loss:.4f}, {report.bytes} bytes)")
    # 4. freeze the table: which positions hold which shared value, false
    # positives included, no longer changes; the K shared values still learn,
    # through every position that reads them. 5. Retrain it and what follows.
    words = enc.words() if isinstance(enc, BloomierEncoding) else getattr(enc, "indices", None)
    if words is None or not opts.tune_through_table:
        c = Constraint("frozen")
    else:
        valid = (words >= 1) & (words <= codebook.size)
        index = layout.unwalk(np.where(valid, words, 0).astype(np.float32)).astype(np.int64)
        c = Constraint("shared", index=index, codebook=codebook.copy())
    c.encoding = enc
    net.constrain(tensor, c)
    train(net, x, targets, objective, cfg, progress, f"{name}: table fixed, retraining",
          lambda: scorer.describe(scorer.metric()))
    return report


def _search_layer(net, scorer, objective, x, targets, name, tensor, layout, s: LayerSettings, opts, allowed, progress):
    """The lowest density on the ladder whose accuracy stays above `allowed`."""
    saved_values = {k: v.copy() for k, v in net.values.items()}
    saved_constraints = copy.deepcopy(net.constraints)
    ladder = [d for d in DENSITY_LADDER if d < s.density] + [s.density] if s.density < 1.0 else list(DENSITY_LADDER)
    for n_try, d in enumerate(ladder):
        trial = replace(s, density=d, bits=_bits_for(d, s.clusters))
        try:
            report = _compress_layer(net, scorer, objective, x, targets, name, tensor, layout, trial, opts, progress)
        except OptionError:
            continue  # too few kept weights for K clusters at this density
        metric = scorer.metric()
        progress(f"{name}: density {d:g}, {trial.bits} bits: {scorer.describe(metric)} (needed {scorer.describe(allowed)})")
        if metric >= allowed or n_try == len(ladder) - 1:
            return report  # within budget, or the least aggressive setting there is
        net.values = {k: v.copy() for k, v in saved_values.items()}
        net.constraints = copy.deepcopy(saved_constraints)
    raise OptionError(f"layer '{name}' could not be compressed at any density")


def _bits_for(density: float, clusters: int) -> int:
    """Bits for which the false positives are about a quarter of the kept weights."""
    need = int(np.ceil(np.log2(4 * clusters * (1 - density) / max(density, 1e-6) + 1)))
    return int(min(16, max(need, int(np.ceil(np.log2(clusters + 1))))))
