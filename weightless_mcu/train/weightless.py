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
the original model's outputs. With an accuracy budget, budget_search.py
chooses each layer's setting instead (the steps here are its trials).

Every step that costs more than `warn_drop` points of validation accuracy is
reported as a warning naming the layer and the setting.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ..compress import (LayerReport, candidates, dense_report, encode_indices, plan_layers, protected_layers,
                        protection_note, share_weights)
from ..compress.channels import channel_chain, remove_channels, strongest_channels
from ..compress.encodings import BiasCodebookEncoding, BloomierEncoding
from ..compress.prune import kmeans_1d, magnitude_masks
from ..compress.settings import CompressionSettings, LayerSettings
from ..errors import OptionError
from ..ir import Graph
from .data import Dataset, fit_to_input, image_geometry
from .network import Constraint, Network
from .trainer import Objective, TrainConfig, predict, train


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
    jobs: int = 1  # parallel processes for the trials of the budget search
    search: str = "layers"  # the budget search: layers (one layer at a time) | plan (whole plans checked)
    warn_drop: float = 5.0  # points of validation accuracy a step may cost before it is reported as a warning
    warn_model_drop: float = 2.0  # points the whole compressed model may lose (explicit settings) before a warning


class Context:
    """What every step and trial reads: the data, the targets, the options, where progress goes."""

    def __init__(self, graph: Graph, data: Dataset, opts: RetrainOptions, progress: Callable[[str], None]):
        name = graph.inputs[0]
        shape = graph.tensors[name].shape
        self.opts, self.progress = opts, progress
        self.labelled = data.y is not None
        self.x = fit_to_input(data.x, shape, "--train-data")
        self.x_val = fit_to_input(data.x_val, shape, "--train-data (validation)")
        self.y_val = data.y_val
        net = Network(graph)
        objective = self.objective(net)
        self.targets_val = None
        teacher = Network(copy.deepcopy(graph)) if not self.labelled or objective.teacher_weight > 0 else None
        if not self.labelled:
            self.targets = objective.teacher_targets(teacher, self.x)
            self.targets_val = objective.teacher_targets(teacher, self.x_val)
        elif teacher is not None:
            self.targets = objective.teacher_rows(teacher, self.x, data.y)
        else:
            self.targets = data.y
        self.relabel = None  # with --shift and a teacher: its targets on the moved images
        if opts.config.shift > 0:
            image_geometry(shape, "--shift")  # refused before any retraining
            if teacher is not None:
                self.relabel = _TeacherOnMoved(objective, teacher, self.labelled)
        rng = np.random.default_rng(opts.config.seed)
        calib = rng.choice(len(self.x), size=min(opts.calibration, len(self.x)), replace=False)
        self.calib_x, self.calib_t = self.x[calib], self.targets[calib]
        self.warnings: list[str] = []
        self.epoch_metric = True  # the validation metric after every epoch (progress only)

    def objective(self, net: Network) -> Objective:
        return Objective(net, labelled=self.labelled, teacher_weight=self.opts.teacher_weight)

    def quiet(self, progress: Callable[[str], None] | None = None) -> "Context":
        """A copy for a trial or a control run: the same data, its own warnings, no validation
        metric after each epoch, its progress to `progress` (None: nowhere)."""
        ctx = copy.copy(self)
        ctx.warnings, ctx.epoch_metric = [], False
        ctx.progress = progress if progress is not None else (lambda _: None)
        return ctx

    def scorer(self, net: Network) -> "Scorer":
        return Scorer(net, self.objective(net), self)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.progress(f"warning: {message}")


class _TeacherOnMoved:
    """The teacher's targets taken on the moved images (a teacher judged on the image it did
    not see teaches the wrong thing)."""

    def __init__(self, objective: Objective, teacher: Network, labelled: bool):
        self.objective, self.teacher, self.labelled = objective, teacher, labelled

    def __call__(self, moved: np.ndarray, tb: np.ndarray) -> np.ndarray:
        if not self.labelled:
            return self.objective.teacher_targets(self.teacher, moved)
        return self.objective.teacher_rows(self.teacher, moved, tb[:, 0])


class Scorer:
    def __init__(self, net: Network, objective: Objective, ctx: Context):
        self.net, self.objective, self.ctx = net, objective, ctx
        self.labelled = ctx.labelled

    def metric(self) -> float:
        """Validation accuracy with labels (higher is better), else minus the distillation loss."""
        ctx = self.ctx
        if self.labelled:
            out = predict(self.net, ctx.x_val)
            return float((out.reshape(len(out), -1).argmax(axis=1) == ctx.y_val).mean())
        total = 0.0
        for i in range(0, len(ctx.x_val), 500):
            env, _ = self.net.forward({self.net.graph.inputs[0]: ctx.x_val[i:i + 500]})
            total += self.objective.loss_and_grads(env, ctx.targets_val[i:i + 500])[0] * len(ctx.x_val[i:i + 500])
        return -total / len(ctx.x_val)

    def describe(self, value: float) -> str:
        return f"validation accuracy {100 * value:.2f}%" if self.labelled else f"validation loss {-value:.5f}"

    @property
    def cost_unit(self) -> str:
        return "points of validation accuracy" if self.labelled else "% of validation loss"

    def cost(self, before: float, after: float) -> float:
        """What a step cost, in the unit of warn_drop: points of accuracy, or the relative rise of the loss x 100."""
        if self.labelled:
            return 100 * (before - after)
        return 100 * (after - before) / max(abs(before), 1e-12)

    def calibration_loss(self) -> float:
        env, _ = self.net.forward({self.net.graph.inputs[0]: self.ctx.calib_x})
        return self.objective.loss_and_grads(env, self.ctx.calib_t)[0]


@dataclass
class Step:
    """A network with what its steps need: the context, the scorer and the objective."""

    net: Network
    ctx: Context
    scorer: Scorer = field(init=False)
    objective: Objective = field(init=False)

    def __post_init__(self):
        self.scorer = self.ctx.scorer(self.net)
        self.objective = self.scorer.objective

    def train(self, label: str, epochs: float | None = None, lr: float | None = None) -> None:
        cfg = self.ctx.opts.config
        if epochs is not None:
            cfg = replace(cfg, epochs=epochs, lr=cfg.lr if lr is None else lr)
        evaluate = (lambda: self.scorer.describe(self.scorer.metric())) if self.ctx.epoch_metric else None
        train(self.net, self.ctx.x, self.ctx.targets, self.objective, cfg, self.ctx.progress, label, evaluate,
              self.ctx.relabel)


def retrain_compress(graph: Graph, settings: CompressionSettings, data: Dataset, opts: RetrainOptions,
                     progress: Callable[[str], None]) -> list[LayerReport]:
    """Compress graph in place, layer by layer with retraining. graph.compression_summary
    gets the validation metric before and after, the warnings and (with a budget) whether it was met."""
    if settings.prune == "global":
        raise OptionError("global pruning is not available with retraining; the layers are pruned one at a time")
    plan_layers(graph, settings)  # unknown layer names fail before any data is read
    ctx = Context(graph, data, opts, progress)
    if opts.accuracy_budget is not None:
        from .budget_search import budget_search  # the search runs the steps below as its trials

        return budget_search(graph, settings, ctx)
    cands, per_layer, active = plan_layers(graph, settings)
    note = protection_note(cands, protected_layers(graph, settings, cands, per_layer))
    if note:
        progress(note)
    net = Network(graph)
    step = Step(net, ctx)
    baseline = step.scorer.metric()
    progress(f"original model: {step.scorer.describe(baseline)}")
    reports: dict[int, LayerReport] = {}
    for i in active:
        s = per_layer[i]
        t0 = time.perf_counter()
        node = cands[i][0]
        if s.channels < 1.0 and prune_channels(step, node, s.channels):
            cands = candidates(graph)  # this layer and the next one changed shape
        node, tensor, layout = cands[i]
        reports[i] = compress_layer(step, node.name, tensor, layout, s)
        progress(f"{node.name}: done in {time.perf_counter() - t0:.0f} s, {step.scorer.describe(step.scorer.metric())}")
    finish(step, graph, cands, reports, baseline)
    return [reports.get(i) or dense_report(n, t, lay) for i, (n, t, lay) in enumerate(cands)]


def final_retraining(step: Step) -> None:
    """The last retraining, all tables fixed, at a tenth of the learning rate (--final-epochs)."""
    if step.ctx.opts.final_epochs > 0:
        step.train("all tables fixed, final retraining", step.ctx.opts.final_epochs, step.ctx.opts.config.lr / 10)


def finish(step: Step, graph: Graph, cands, reports: dict[int, LayerReport], baseline: float,
           retrained: bool = False) -> float:
    """The last retraining (unless the network has had it: `retrained`), the encodings
    into the graph, the summary; the final metric."""
    ctx, net = step.ctx, step.net
    if not retrained:
        final_retraining(step)
    # The encodings take the shared values as they ended up; their tables do not change.
    for i, report in reports.items():
        tensor = cands[i][1]
        c = net.constraints[tensor]
        if report.encoding != "dense" and c.encoding is not None:
            graph.encodings[tensor] = c.encoding if c.codebook is None else replace(c.encoding, codebook=c.codebook.astype(np.float32))
            net.set_values(tensor, cands[i][2].unwalk(graph.encodings[tensor].decode()))
    for tensor, c in net.constraints.items():
        if isinstance(c.encoding, BiasCodebookEncoding):
            graph.bias_encodings[tensor] = replace(c.encoding, codebook=c.codebook.astype(np.float32))
            net.set_values(tensor, graph.bias_encodings[tensor].decode())
    net.export()
    final = step.scorer.metric()
    ctx.progress(f"compressed model: {step.scorer.describe(final)} (original: {step.scorer.describe(baseline)})")
    cost = step.scorer.cost(baseline, final)
    if ctx.opts.accuracy_budget is None and cost > min(ctx.opts.warn_drop, ctx.opts.warn_model_drop):
        ctx.warn(f"the compressed model lost {cost:.1f} {step.scorer.cost_unit} "
                 f"({step.scorer.describe(baseline)} -> {step.scorer.describe(final)}); "
                 f"--target-accuracy-drop P searches each layer's setting within a budget")
    key = "validation_accuracy" if ctx.labelled else "validation_loss"
    sign = 1 if ctx.labelled else -1
    graph.compression_summary = {f"{key}_original": sign * baseline, f"{key}_compressed": sign * final,
                                 "warnings": list(ctx.warnings)}
    return final


def prune_channels(step: Step, node, fraction: float) -> bool:
    """Structured pruning: keep the layer's most important output channels
    (in two cuts, retraining after each), then cut the others out of the graph.
    False when the layer's output does not lead into one layer that can absorb the cut."""
    net, progress = step.net, step.ctx.progress
    graph = net.graph
    chain = channel_chain(graph, node)
    if chain is None:
        progress(f"{node.name}: channels kept (its output does not lead into one layer that can absorb them)")
        return False
    tensor = node.inputs[1]
    total = net.values[tensor].shape[0]
    before = step.scorer.metric()
    for k in (1, 2):
        keep = strongest_channels(graph, chain, fraction ** (k / 2), net.values)
        mask = np.broadcast_to(keep.reshape((-1,) + (1,) * (net.values[tensor].ndim - 1)), net.values[tensor].shape)
        net.constrain(tensor, Constraint("masked", mask=mask.copy()))
        step.train(f"{node.name}: {int(keep.sum())} of {total} channels")
    net.export()
    remove_channels(graph, chain, keep)
    # The graph's constants are the truth again; the two layers' weights are free until pruned.
    net.values = {k: t.data for k, t in graph.tensors.items() if t.is_const}
    for p in (*node.inputs[1:3], *chain.consumer.inputs[1:3]):
        if p:
            net.constraints[p] = Constraint()
            if p not in net.params:
                net.params.append(p)
    after = step.scorer.metric()
    progress(f"{node.name}: {int(keep.sum())} of {total} output channels kept, {step.scorer.describe(after)}")
    _check_cost(step, before, after, f"{node.name}: keeping {int(keep.sum())} of {total} output channels")
    return True


def _check_cost(step: Step, before: float, after: float, what: str) -> None:
    cost = step.scorer.cost(before, after)
    if cost > step.ctx.opts.warn_drop:
        step.ctx.warn(f"{what} cost {cost:.1f} {step.scorer.cost_unit} ({step.scorer.describe(before)} -> {step.scorer.describe(after)}); "
                      f"a higher density, more clusters or bits, or --target-accuracy-drop would search for a setting that keeps it")


def prune(step: Step, name: str, tensor: str, density: float) -> np.ndarray:
    """Magnitude pruning in prune_stages cuts (density d^(1/3), d^(2/3), d), retraining after each; the mask."""
    net, stages = step.net, step.ctx.opts.prune_stages
    mask = np.ones(net.values[tensor].shape, bool)
    for k in range(1, stages + 1 if density < 1.0 else 1):  # nothing to cut at density 1
        d = density ** (k / stages)
        (mask,) = magnitude_masks([net.values[tensor]], d)
        net.constrain(tensor, Constraint("masked", mask=mask))
        step.train(f"{name}: pruned to {d:.3g}")
    return mask


def share(step: Step, name: str, tensor: str, layout, mask: np.ndarray, clusters: int):
    """K-means of the kept weights, then training of the K shared values: (flat index, codebook)."""
    net = step.net
    flat_keep = layout.walk(mask.astype(np.float32)) > 0.5
    flat_index, codebook = share_weights(name, layout.walk(net.values[tensor]), flat_keep, clusters)
    index = layout.unwalk(flat_index.astype(np.float32)).astype(np.int64)
    net.constrain(tensor, Constraint("shared", index=index, codebook=codebook))
    step.train(f"{name}: {codebook.size} shared values")
    return flat_index, net.constraints[tensor].codebook.astype(np.float32)


def encode(step: Step, name: str, tensor: str, layout, flat_index, codebook, s: LayerSettings, seeds: int):
    """Encode the shared layer, trying `seeds` hash seeds for a Bloomier table and keeping
    the one whose false positives cost least on the calibration batch. The network holds
    the decoded weights afterwards. (calibration loss, encoding, report, seed)."""
    net = step.net
    best = None
    shared_values = net.values[tensor].copy()
    for k in range(max(1, seeds)):
        seed = (s.seed + 0x9E3779B9 * k) % 2**32
        enc, report = encode_indices(name, tensor, flat_index.astype(np.uint32), codebook, s, seed, layout.walk(shared_values),
                                     layout.block_positions)
        net.set_values(tensor, layout.unwalk(enc.decode()))
        loss = step.scorer.calibration_loss()
        if best is None or loss < best[0]:
            best = (loss, enc, report, seed)
        if report.encoding != "bloomier":
            break  # no false positives: the seed does not matter
    net.set_values(tensor, layout.unwalk(best[1].decode()))
    return best


def fix_and_retrain(step: Step, name: str, tensor: str, layout, enc, codebook, bias_clusters: int = 0) -> None:
    """Freeze the table: which positions hold which shared value, false positives
    included, no longer changes; the K shared values still learn, through every
    position that reads them. The layer's bias becomes `bias_clusters` shared values
    where that stores fewer bytes (share_bias). Then retrain it and what follows."""
    words = enc.words() if isinstance(enc, BloomierEncoding) else getattr(enc, "indices", None)
    if words is None or not step.ctx.opts.tune_through_table:
        c = Constraint("frozen")
    else:
        valid = (words >= 1) & (words <= codebook.size)
        index = layout.unwalk(np.where(valid, words, 0).astype(np.float32)).astype(np.int64)
        c = Constraint("shared", index=index, codebook=codebook.copy())
    c.encoding = enc
    step.net.constrain(tensor, c)
    share_bias(step.net, tensor, bias_clusters)
    step.train(f"{name}: table fixed, retraining")


def layer_bias(graph: Graph, weight: str) -> str | None:
    """The bias tensor of the Conv or Gemm whose weights are `weight` (None: it has none)."""
    for n in graph.nodes:
        if n.op in ("Conv", "Gemm") and len(n.inputs) > 2 and n.inputs[1] == weight and n.inputs[2]:
            return n.inputs[2]
    return None


def share_bias(net: Network, weight: str, clusters: int) -> None:
    """The layer's bias as `clusters` shared values (k-means), the index of each channel fixed
    from here on and the values learning, where that stores fewer bytes than float32 (so not
    for a handful of channels). Its encoding is recorded with the constraint (finish())."""
    bias = layer_bias(net.graph, weight)
    if bias is None or clusters < 1 or bias not in net.params or net.graph.tensors[bias].data.ndim != 1:
        return
    b = net.values[bias].reshape(-1)
    k = min(clusters, b.size)
    if BiasCodebookEncoding.bytes_for(b.size, k) >= 4 * b.size:
        return
    codebook, idx = kmeans_1d(b, k)
    c = Constraint("shared", index=idx.astype(np.int64) + 1, codebook=codebook.astype(np.float32))
    c.encoding = BiasCodebookEncoding(idx.astype(np.uint32), codebook.astype(np.float32))
    net.constrain(bias, c)


def describe_setting(s: LayerSettings, encoding: str | None = None) -> str:
    enc = encoding or s.encoding
    text = f"density {s.density:g}, K={s.clusters}"
    if enc == "bloomier":
        text += f", t={s.bits}"
    if s.channels < 1.0:
        text = f"channels {s.channels:g}, " + text
    return f"{text}, {enc}"


def compress_layer(step: Step, name: str, tensor: str, layout, s: LayerSettings) -> LayerReport:
    """Steps 1 to 5 for one layer at the given settings; warns when a step costs too much."""
    before = step.scorer.metric()
    warned = len(step.ctx.warnings)
    mask = prune(step, name, tensor, s.density)
    after_prune = step.scorer.metric()
    _check_cost(step, before, after_prune, f"{name}: pruning to density {s.density:g}")
    flat_index, codebook = share(step, name, tensor, layout, mask, s.clusters)
    after_share = step.scorer.metric()
    _check_cost(step, after_prune, after_share, f"{name}: sharing {s.clusters} values")
    loss, enc, report, seed = encode(step, name, tensor, layout, flat_index, codebook, s, step.ctx.opts.seeds)
    step.ctx.progress(f"{name}: {report.encoding}, {report.false_positives} false positives, seed {seed:#x} "
                      f"(calibration loss {loss:.4f}, {report.bytes} bytes)")
    fix_and_retrain(step, name, tensor, layout, enc, codebook, s.bias_clusters)
    if len(step.ctx.warnings) == warned:  # one warning per layer is enough
        _check_cost(step, before, step.scorer.metric(), f"{name} at {describe_setting(s, report.encoding)}")
    return report
