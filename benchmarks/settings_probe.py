"""Per-layer settings tried on the validation split only: what a hand setting stores and
what it costs in validation accuracy, with the retraining of the "ours" rows of
mnist_paper.py. The test set is not read.

    python benchmarks/settings_probe.py --mnist DIR --work mnist-work --model lenet5 --candidate A --ip1-channels 0.2

A candidate is one of mnist_paper.py's OURS (its label), with any layer's settings
replaced by --set LAYER.KEY=VALUE (repeatable) or the shorthand --LAYER-channels F.
Prints each layer's validation accuracy as it is done, then one JSON line.
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import mnist_models
import mnist_paper as mp
from weightless_mcu.train.data import Dataset, fit_to_input, load_idx_pair
from weightless_mcu.train.trainer import TrainConfig


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="holds the model trained by mnist_paper.py's recipe")
    ap.add_argument("--model", default="lenet5", choices=sorted(mp.OURS))
    ap.add_argument("--candidate", default="A", help="a label of mnist_paper.py's OURS for this model")
    ap.add_argument("--set", action="append", default=[], metavar="LAYER.KEY=VALUE")
    for layer in ("conv1", "conv2", "ip1", "ip2"):
        ap.add_argument(f"--{layer}-channels", type=float)
    ap.add_argument("--epochs", type=float, help="epochs per retraining step (default: mnist_paper.py's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--final-epochs", type=float, default=1.0)
    ap.add_argument("--shift", type=int, default=0, help="training images moved by up to this many pixels (0: not)")
    ap.add_argument("--teacher-weight", type=float, help="instead of the candidate's")
    args = ap.parse_args()

    matches = [c for c in mp.OURS[args.model] if c[0] == args.candidate]
    if not matches:
        raise SystemExit(f"no candidate {args.candidate!r} for {args.model}: {sorted({c[0] for c in mp.OURS[args.model]})}")
    _, base_settings, teacher = matches[0]
    teacher = teacher if args.teacher_weight is None else args.teacher_weight
    settings = copy.deepcopy(base_settings)
    edits = [f"{layer}.channels={v}" for layer in ("conv1", "conv2", "ip1", "ip2")
             if (v := getattr(args, f"{layer}_channels")) is not None] + args.set
    for edit in edits:
        key, _, value = edit.partition("=")
        layer, _, field = key.partition(".")
        if layer not in settings or not field or not value:
            raise SystemExit(f"--set {edit!r}: expected LAYER.KEY=VALUE with LAYER one of {sorted(settings)}")
        settings[layer][field] = _value(value)

    path = args.work / f"{args.model}.onnx"
    if not mnist_models.has_recipe(path, mnist_models.recipe(args.model, 12, 1e-3)):
        raise SystemExit(f"{path} is not the model of mnist_paper.py's recipe: run mnist_paper.py first")
    base = mp._load(path)
    x_tr, y_tr = load_idx_pair(args.mnist, "train")
    dataset = Dataset(*mnist_models.split(fit_to_input(x_tr, base.tensors[base.inputs[0]].shape, "MNIST"), y_tr))
    cfg = TrainConfig(epochs=args.epochs or mp.EPOCHS[args.model], batch_size=64, lr=1e-3, weight_decay=0.5,
                      schedule="cosine", seed=args.seed, shift=args.shift)
    params = sum(4 * base.tensors[t].size for _, t, _ in mp.candidates(base)) + mp._bias_bytes(base)
    before = mp._validation_accuracy(base, dataset)
    graph = copy.deepcopy(base)
    with tempfile.TemporaryDirectory(prefix="wl-probe-") as tmp:
        size = mp.weightless(graph, dataset, cfg, settings, 4, 1.03, 4, lambda m: print(m, flush=True), Path(tmp), False,
                             args.final_epochs, teacher)
    after = mp._validation_accuracy(graph, dataset)
    print(json.dumps({"model": args.model, "candidate": args.candidate, "edits": edits, "seed": args.seed,
                      "shift": args.shift, "teacher_weight": teacher,
                      "bytes": int(size), "ratio": round(params / size, 1), "validation_before": before,
                      "validation_after": after, "validation_drop_points": round(100 * (before - after), 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
