"""What retraining alone does to a trained MNIST model: two retraining steps of
the uncompressed model (Adam, cosine schedule, distillation weight 0.5, as the
budget search's control and trials use), validation accuracy after each.

    python benchmarks/retraining_control.py --mnist DIR --work DIR --model lenet5 --epochs 2 --lrs 1e-3,3e-4,1e-4
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import mnist_models
from mnist_paper import _load
from weightless_mcu.train.data import Dataset, fit_to_input, load_idx_pair
from weightless_mcu.train.network import Network
from weightless_mcu.train.trainer import Objective, TrainConfig, accuracy, train


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="holds the model trained by benchmarks/mnist_models.py")
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--epochs", type=float, default=2.0, help="epochs per retraining step")
    ap.add_argument("--lrs", default="1e-3,3e-4,1e-4")
    ap.add_argument("--weight-decay", type=float, default=0.5)
    ap.add_argument("--teacher-weight", type=float, default=0.5)
    args = ap.parse_args()
    x_tr, y_tr = load_idx_pair(args.mnist, "train")
    base = _load(args.work / f"{args.model}.onnx")
    data = Dataset(*mnist_models.split(fit_to_input(x_tr, base.tensors[base.inputs[0]].shape, "MNIST"), y_tr))
    for lr in (float(v) for v in args.lrs.split(",")):
        net = Network(copy.deepcopy(base))
        obj = Objective(net, True, teacher_weight=args.teacher_weight)
        targets = obj.teacher_rows(Network(copy.deepcopy(base)), data.x, data.y) if args.teacher_weight else data.y
        accs = [accuracy(net, data.x_val, data.y_val)]
        for k in range(2):
            cfg = TrainConfig(epochs=args.epochs, lr=lr, weight_decay=args.weight_decay, schedule="cosine", seed=k)
            train(net, data.x, targets, obj, cfg, lambda _: None, "control")
            accs.append(accuracy(net, data.x_val, data.y_val))
        print(f"{args.model}, lr {lr:g}: validation accuracy " + " -> ".join(f"{100 * a:.2f}%" for a in accs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
