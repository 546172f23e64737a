"""One whole-model plan checked the way the planned budget search checks it (layer after
layer from the input side, each step retrained, then the final retraining), on the
validation split only. The test set is not read.

    python benchmarks/plan_check.py --mnist DIR --work mnist-work --model lenet5 \\
        --layer conv1=0.4,1,15,codebook --layer conv2=0.4,0.2,4,sparse \\
        --layer ip1=0.12,0.08,4,sparse --layer ip2=1,1,15,codebook

A layer is LAYER=CHANNELS,DENSITY,K,ENCODING[,T] (ENCODING: codebook, sparse, bloomier with
its T bits, or dense for float32); a layer not given stays float32. The retraining is the
"auto" row's of mnist_paper.py (--lr, --epochs per step, --teacher-weight, --final-epochs).
Prints one JSON line: validation accuracy, stored bytes, seconds.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import mnist_models
import mnist_paper as mp
from weightless_mcu.compress import candidates, plan_layers
from weightless_mcu.compress.settings import CompressionSettings, LayerSettings
from weightless_mcu.train.data import Dataset, fit_to_input, load_idx_pair
from weightless_mcu.train.network import Network
from weightless_mcu.train.plan_search import LayerPlan, Option, PlanTrial
from weightless_mcu.train.trainer import TrainConfig
from weightless_mcu.train.weightless import Context, RetrainOptions


def parse_layer(text: str) -> tuple[str, float, Option]:
    name, _, spec = text.partition("=")
    fields = spec.split(",")
    if not name or len(fields) not in (4, 5):
        raise SystemExit(f"--layer {text!r}: expected LAYER=CHANNELS,DENSITY,K,ENCODING[,T]")
    channels, density, clusters, encoding = float(fields[0]), float(fields[1]), int(fields[2]), fields[3]
    if encoding == "bloomier":
        if len(fields) != 5:
            raise SystemExit(f"--layer {text!r}: a bloomier table needs its T")
        bits = int(fields[4])
    elif encoding in ("codebook", "sparse", "dense"):
        bits = math.ceil(math.log2(clusters + 1)) if encoding == "codebook" else 0
    else:
        raise SystemExit(f"--layer {text!r}: unknown encoding {encoding!r}")
    return name, channels, Option(density, clusters, encoding, bits, 0, 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="holds the model trained by mnist_paper.py's recipe")
    ap.add_argument("--model", default="lenet5", choices=("lenet5", "lenet300"))
    ap.add_argument("--layer", action="append", default=[], metavar="LAYER=CHANNELS,DENSITY,K,ENCODING[,T]")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=float, default=1.0, help="epochs per retraining step")
    ap.add_argument("--final-epochs", type=float, default=1.0)
    ap.add_argument("--teacher-weight", type=float, default=0.5)
    ap.add_argument("--weight-decay", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=0.2, help="points; only to print the floor")
    args = ap.parse_args()

    x_tr, y_tr = load_idx_pair(args.mnist, "train")
    base = mp._load(args.work / f"{args.model}.onnx")
    shape = base.tensors[base.inputs[0]].shape
    dataset = Dataset(*mnist_models.split(fit_to_input(x_tr, shape, "MNIST"), y_tr))
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=args.lr, weight_decay=args.weight_decay,
                      schedule="cosine", seed=args.seed)
    opts = RetrainOptions(cfg, seeds=4, accuracy_budget=args.budget, final_epochs=args.final_epochs,
                          teacher_weight=args.teacher_weight, jobs=1, search="plan")
    ctx = Context(base, dataset, opts, lambda m: print(m, flush=True) if "epoch" not in m else None)
    cs = CompressionSettings(LayerSettings(hashes=4, cells_per_key=1.03, min_positions=0), {})
    _, per_layer, active = plan_layers(base, cs)
    cands = candidates(base)
    names = {cands[i][0].name: i for i in active}
    given = dict((name, (channels, option)) for name, channels, option in map(parse_layer, args.layer))
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise SystemExit(f"no compressible layer {unknown}; the model's are {sorted(names)}")
    dense = (1.0, Option(1.0, 0, "dense", 0, 0, 0.0))
    plan = tuple(LayerPlan(i, *given.get(name, dense)) for name, i in names.items())
    t0 = time.time()
    result = PlanTrial(0, plan, tuple(per_layer[i] for i in active)).run(ctx, Network(base))
    print(json.dumps({"layers": args.layer, "lr": args.lr, "epochs": args.epochs, "teacher_weight": args.teacher_weight,
                      "seed": args.seed, "validation_accuracy": result.metric, "bytes": result.bytes,
                      "error": result.error, "seconds": round(time.time() - t0)}), flush=True)
    return 0 if result.error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
