"""Uniform explicit settings on two small models, with and without the default
protection of the output layer and tiny layers (--protect auto | none):

    python benchmarks/uniform_settings.py --mnist DIR --work DIR [--json FILE]

(a) the bundled 8x8-digits MLP (examples/digits_mlp.onnx) retrained on 1,600
of scikit-learn's digits (a tenth held out for validation);
(b) LeNet-300-100 (benchmarks/mnist_models.py, in --work) retrained on 2,000
MNIST training images (a tenth held out).
Both with --density 0.1 --clusters 8 --bits 6, one epoch per step; then, as the
warnings suggest, with --target-accuracy-drop 2 instead of the settings. Prints
the validation accuracy of the original and the compressed model and the warnings.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from weightless_mcu.api import Retraining, _prepare
from weightless_mcu.compress import make_settings
from weightless_mcu.train.data import load_idx_pair
from weightless_mcu.train.trainer import TrainConfig

HERE = Path(__file__).resolve().parent


def run(model: Path, npz: Path, protect: str | None) -> dict:
    """Uniform settings with protect auto|none, or (protect None) the budget search at 2 points."""
    settings = make_settings(dict(density=0.1, clusters=8, bits=6, protect=protect)) if protect else None
    _, graph, reports = _prepare(model, None, None, settings, lambda _: None,
                                 Retraining(npz, TrainConfig(epochs=1.0), seeds=4, jobs=2,
                                            accuracy_budget=None if protect else 2.0))
    s = graph.compression_summary
    return {"original": s["validation_accuracy_original"], "compressed": s["validation_accuracy_compressed"],
            "warnings": s["warnings"], "encodings": {r.name: r.encoding for r in reports},
            "bytes": sum(r.bytes for r in reports)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True, help="holds lenet300.onnx (benchmarks/mnist_models.py)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from sklearn.datasets import load_digits

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        x, y = load_digits(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(x))[:1600]
        np.savez(Path(tmp) / "digits.npz", x=x[order].astype(np.float32), y=y[order])
        xm, ym = load_idx_pair(args.mnist, "train")
        order = np.random.default_rng(0).permutation(len(xm))[:2000]
        np.savez(Path(tmp) / "mnist.npz", x=xm[order], y=ym[order])
        for name, model, npz in (("digits_mlp", HERE.parent / "examples" / "digits_mlp.onnx", "digits.npz"),
                                 ("lenet300", args.work / "lenet300.onnx", "mnist.npz")):
            for protect in ("none", "auto", None):
                r = run(model, Path(tmp) / npz, protect)
                how = f"--protect {protect}" if protect else "--target-accuracy-drop 2"
                results[f"{name} {how}"] = r
                print(f"{name}, {how}: validation accuracy {100 * r['original']:.1f}% -> "
                      f"{100 * r['compressed']:.1f}%, {r['bytes']:,} B, {r['encodings']}", flush=True)
                for w in r["warnings"]:
                    print(f"  warning: {w}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
