"""Training loops: mini-batch SGD with momentum or Adam, cross-entropy with
labels or distillation from the original model, and the constraints of
compression (masks, shared weights, frozen layers)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from .data import image_geometry, translate
from .network import Network
from .ops import softmax


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1.0  # passes over the training set per retraining step
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 0.0  # decoupled (AdamW-style) decay of the free and masked weights
    schedule: str = "constant"  # constant | cosine (from lr down to lr / 20 over each training run)
    seed: int = 0
    shift: int = 0  # image inputs: each training sample moved by up to this many pixels (0: as given)

    def validate(self) -> "TrainConfig":
        if self.epochs < 0:
            raise OptionError(f"--epochs must be >= 0, not {self.epochs}")
        if self.batch_size < 1:
            raise OptionError(f"--batch-size must be >= 1, not {self.batch_size}")
        if self.schedule not in ("constant", "cosine"):
            raise OptionError(f"schedule must be constant or cosine, not {self.schedule}")
        if self.optimizer not in ("adam", "sgd"):
            raise OptionError(f"optimizer must be adam or sgd, not {self.optimizer}")
        if self.weight_decay < 0:
            raise OptionError(f"--weight-decay must be >= 0, not {self.weight_decay}")
        if self.shift < 0:
            raise OptionError(f"--shift must be >= 0, not {self.shift}")
        return self


class Objective:
    """The loss and its gradient. With labels: cross-entropy (on the logits that
    feed a final Softmax/LogSoftmax, or on softmax(outputs)). Without:
    distillation from the teacher's outputs (soft cross-entropy for a softmax
    output, mean squared error otherwise)."""

    def __init__(self, net: Network, labelled: bool, teacher_weight: float = 0.0, temperature: float = 4.0):
        self.net = net
        self.labelled = labelled
        # With labels and a teacher weight a > 0, targets are rows [label, teacher logits...] and the
        # loss is (1 - a) * cross-entropy + a * T^2 * KL(teacher || student) at temperature T.
        self.teacher_weight = teacher_weight if labelled else 0.0
        self.temperature = temperature
        last = net._producer.get(net.output)
        self.softmax_input = last.inputs[0] if last is not None and last.op in ("Softmax", "LogSoftmax") else None
        self.axis = last.attrs.get("axis", -1) if self.softmax_input else -1

    def loss_and_grads(self, env: dict, target: np.ndarray) -> tuple[float, dict]:
        n = len(target)
        if self.teacher_weight > 0:
            return self._with_teacher(env, target)
        if self.softmax_input is not None:
            logits = env[self.softmax_input]
            p = softmax(logits.astype(np.float64), self.axis)
            q = self._target_probs(target, p.shape)
            loss = float(-(q * np.log(np.maximum(p, 1e-30))).sum() / n)
            return loss, {self.softmax_input: ((p - q) / n).astype(np.float32)}
        out = env[self.net.output].astype(np.float64)
        if self.labelled:
            p = softmax(out, -1)
            q = self._target_probs(target, p.shape)
            loss = float(-(q * np.log(np.maximum(p, 1e-30))).sum() / n)
            return loss, {self.net.output: ((p - q) / n).astype(np.float32)}
        diff = out - target
        return float((diff ** 2).mean()), {self.net.output: (2 * diff / diff.size).astype(np.float32)}

    def _with_teacher(self, env: dict, target: np.ndarray) -> tuple[float, dict]:
        n, a, t = len(target), self.teacher_weight, self.temperature
        name = self.softmax_input if self.softmax_input is not None else self.net.output
        logits = env[name].astype(np.float64).reshape(n, -1)
        labels = target[:, 0].astype(np.int64)
        p = softmax(logits, -1)
        ps, qs = softmax(logits / t, -1), softmax(target[:, 1:] / t, -1)
        ce = -np.log(np.maximum(p[np.arange(n), labels], 1e-30)).mean()
        kl = (qs * (np.log(np.maximum(qs, 1e-30)) - np.log(np.maximum(ps, 1e-30)))).sum() / n
        grad = (1 - a) * p
        grad[np.arange(n), labels] -= 1 - a
        grad += a * t * (ps - qs)
        return float((1 - a) * ce + a * t * t * kl), {name: (grad / n).reshape(env[name].shape).astype(np.float32)}

    def teacher_rows(self, teacher: Network, x: np.ndarray, y: np.ndarray, batch: int = 500) -> np.ndarray:
        """Targets for learning from labels and a teacher: [label, teacher logits...] per sample."""
        name = self.softmax_input if self.softmax_input is not None else teacher.output
        outs = []
        for i in range(0, len(x), batch):
            env, _ = teacher.forward({teacher.graph.inputs[0]: x[i:i + batch]}, upto=name)
            outs.append(env[name].astype(np.float64).reshape(len(x[i:i + batch]), -1))
        return np.concatenate([np.asarray(y, np.float64)[:, None], np.concatenate(outs)], axis=1)

    def _target_probs(self, target: np.ndarray, shape) -> np.ndarray:
        if self.labelled:
            q = np.zeros(shape)
            q[np.arange(len(target)), target] = 1.0
            return q
        return target  # already probabilities: see teacher_targets

    def teacher_targets(self, teacher: Network, x: np.ndarray, batch: int = 500) -> np.ndarray:
        """What distillation matches: the original model's output, or its
        softmax probabilities when the model ends in Softmax/LogSoftmax."""
        outs = []
        for i in range(0, len(x), batch):
            env, _ = teacher.forward({teacher.graph.inputs[0]: x[i:i + batch]})
            if self.softmax_input is not None:
                outs.append(softmax(env[self.softmax_input].astype(np.float64), self.axis))
            else:
                outs.append(env[teacher.output].astype(np.float64))
        return np.concatenate(outs)


class Optimizer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.lr = cfg.lr  # the current learning rate (a schedule moves it)
        self.state: dict[str, tuple] = {}
        self.t = 0

    def step(self, key: str, value: np.ndarray, grad: np.ndarray) -> np.ndarray:
        c = self.cfg
        if c.optimizer == "sgd":
            v = self.state.get(key, (np.zeros_like(value),))[0]
            v = c.momentum * v - self.lr * grad
            self.state[key] = (v,)
            return value + v
        m, v = self.state.get(key, (np.zeros_like(value), np.zeros_like(value)))
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        self.state[key] = (m, v)
        t = self.t
        return value - self.lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)


def apply_gradients(net: Network, opt: Optimizer, grads: dict[str, np.ndarray]) -> None:
    opt.t += 1
    for name, g in grads.items():
        c = net.constraints[name]
        if c.kind == "frozen":
            continue
        if c.kind == "shared":
            gc = np.bincount(c.index.reshape(-1), weights=g.reshape(-1), minlength=c.codebook.size + 1)[1:]
            c.codebook = opt.step(name + "#codebook", c.codebook, gc.astype(np.float32)).astype(np.float32)
            net.set_values(name, np.concatenate([[0.0], c.codebook]).astype(np.float32)[c.index])
        else:
            w = opt.step(name, net.values[name], g.astype(np.float32))
            if opt.cfg.weight_decay:
                w = w - opt.lr * opt.cfg.weight_decay * net.values[name]
            net.set_values(name, w * c.mask if c.kind == "masked" else w)


def predict(net: Network, x: np.ndarray, batch: int = 500) -> np.ndarray:
    outs = []
    for i in range(0, len(x), batch):
        env, _ = net.forward({net.graph.inputs[0]: x[i:i + batch]})
        outs.append(env[net.output])
    return np.concatenate(outs) if outs else np.zeros((0,))


def accuracy(net: Network, x: np.ndarray, y: np.ndarray) -> float:
    return float((predict(net, x).reshape(len(x), -1).argmax(axis=1) == y).mean())


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate at a step: constant, or cosine from lr down to lr / 20
    (a short retraining then ends calm instead of wherever the last batch left it)."""
    if cfg.schedule == "constant":
        return cfg.lr
    return cfg.lr * (0.05 + 0.475 * (1 + np.cos(np.pi * step / max(1, total_steps - 1))))


def train(net: Network, x: np.ndarray, target: np.ndarray, objective: Objective, cfg: TrainConfig,
          progress: Callable[[str], None], label: str, evaluate: Callable[[], str] | None = None,
          relabel: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> None:
    """cfg.epochs passes over (x, target); a fractional epoch trains on that part of a pass.
    With cfg.shift, each batch is moved by random whole pixels, and relabel(moved batch, its
    targets) gives the targets of the moved images (None: they stay, as labels do)."""
    rng = np.random.default_rng(cfg.seed)
    opt = Optimizer(cfg)
    name = net.graph.inputs[0]
    geometry = image_geometry(net.graph.tensors[name].shape, "--shift") if cfg.shift else None
    steps_per_epoch = max(1, len(x) // cfg.batch_size)
    total_steps = int(round(cfg.epochs * steps_per_epoch))
    step = 0
    epoch = 0
    while step < total_steps:
        epoch += 1
        t0 = time.perf_counter()
        order = rng.permutation(len(x))
        losses = []
        for i in range(steps_per_epoch):
            if step >= total_steps:
                break
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            opt.lr = learning_rate(cfg, step, total_steps)
            xb, tb = x[idx], target[idx]
            if geometry is not None:
                xb = translate(xb, geometry, cfg.shift, rng)
                tb = tb if relabel is None else relabel(xb, tb)
            env, tape = net.forward({name: xb}, keep=True)
            loss, seed = objective.loss_and_grads(env, tb)
            apply_gradients(net, opt, net.backward(tape, seed))
            losses.append(loss)
            step += 1
        extra = f", {evaluate()}" if evaluate else ""
        progress(f"{label}: epoch {epoch}, loss {np.mean(losses):.4f}{extra}, {time.perf_counter() - t0:.1f} s")
