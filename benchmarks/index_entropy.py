"""How near the stored encodings of the MNIST models come to the entropy of what they store.

    python benchmarks/index_entropy.py --mnist DIR --work mnist-work [--models lenet300,lenet5] [--json FILE]

Compresses each model with the candidate the validation protocol of benchmarks/mnist_paper.py
chose (LeNet-300-100: A at teacher weight 0.8; LeNet-5: C; seed 0, the same recipe, --encoding
auto), then, for every compressed layer, compares the bits each kept weight takes in its encoding
with the entropy of what it stores:
- positions: log2 C(N, n) / n bits per kept weight (N positions left after the channel cuts, n
  kept: any set of n among N equally likely), and the order-0 entropy of the gaps between kept
  positions in walk order (what a gap code with the gaps' own frequencies would take);
- the same positions coded with each input's (column's) or each output channel's (row's) own
  rate of kept weights, sum of N H(n/N) (the rates themselves not counted): what a model of where
  pruning keeps weights could save over a gap code that sees every position alike;
- cluster indices: their order-0 entropy against the ceil(log2 K) bits stored.
For a Bloomier table the kept positions are not stored (nor recoverable: its false positives
decode to values too); its bits per stored weight are given against the same entropies of the
positions its words hold a value at. Nothing here reads the test set.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from math import lgamma, log
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mnist_models  # noqa: E402
import mnist_paper  # noqa: E402
from weightless_mcu.compress import candidates  # noqa: E402
from weightless_mcu.train.data import Dataset, fit_to_input, load_idx_pair  # noqa: E402
from weightless_mcu.train.trainer import TrainConfig  # noqa: E402

CHOSEN = {"lenet300": ("A", 0.8), "lenet5": ("C", 0.5)}


def entropy_bits(symbols: np.ndarray) -> float:
    """Order-0 entropy of the symbols, in bits per symbol."""
    if symbols.size == 0:
        return 0.0
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def log2_binomial(n: int, k: int) -> float:
    return (lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)) / log(2)


def rate_bits(kept: np.ndarray, axis: int) -> float:
    """Bits of a kept mask (rows = output channels) coded with each row's (axis 1) or each
    column's (axis 0) own rate of kept positions: the sum of N H(n / N) over them."""
    n_kept = kept.sum(axis=axis).astype(np.float64)
    size = kept.shape[axis]
    p = n_kept / size
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log2(p), 0) + np.where(p < 1, (1 - p) * np.log2(1 - p), 0))
    return float((size * h).sum())


def layer_row(name: str, enc, layout) -> dict:
    """Bits per kept weight of the encoding against the entropies of its positions and indices."""
    if enc.kind == "bloomier":
        words = enc.words()
        values = np.where((words >= 1) & (words <= enc.codebook.size), words, 0)
    else:
        values = np.asarray(enc.indices)
    mask = layout.unwalk(values != 0).reshape(layout.shape[0], -1) != 0  # [output channels, the rest]
    kept = np.flatnonzero(values)
    n, total = int(kept.size), int(values.size)
    gaps = np.diff(np.concatenate([[-1], kept])) - 1
    k = int(enc.codebook.size)
    row = {"layer": name, "encoding": enc.kind, "positions": total, "kept": n, "clusters": k,
           "bytes": int(enc.nbytes()), "bits_per_kept": 8 * enc.nbytes() / max(1, n),
           "positions_binomial_bits": log2_binomial(total, n) / max(1, n),
           "gap_entropy_bits": entropy_bits(gaps),
           "positions_column_rate_bits": rate_bits(mask, 0) / max(1, n),
           "positions_row_rate_bits": rate_bits(mask, 1) / max(1, n),
           "index_entropy_bits": entropy_bits(values[kept]), "index_bits": max(1, (k - 1).bit_length())}
    if enc.kind == "sparse":
        _, g, r, lengths = enc._codes
        row["rice_bits"] = float(((g >> r) + 1 + r).sum() / max(1, n))
    row["entropy_bytes"] = (row["positions_binomial_bits"] + row["index_entropy_bits"]) * n / 8
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("mnist-work"), help="where the trained models are kept")
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    x_tr, y_tr = load_idx_pair(args.mnist, "train")
    out = {}
    for name in args.models.split(","):
        path = args.work / f"{name}.onnx"
        stamp = mnist_models.recipe(name, 12, 1e-3)
        if not mnist_models.has_recipe(path, stamp):
            mnist_models.train_model(getattr(mnist_models, name)(np.random.default_rng(0)), path, args.mnist, 12, 1e-3,
                                     log, stamp)
        graph = mnist_paper._load(path)
        dataset = Dataset(*mnist_models.split(fit_to_input(x_tr, graph.tensors[graph.inputs[0]].shape, "MNIST"), y_tr))
        label, teacher = CHOSEN[name]
        settings = next(c[1] for c in mnist_paper.OURS[name] if c[0] == label)
        cfg = TrainConfig(epochs=mnist_paper.EPOCHS[name], batch_size=64, lr=1e-3, weight_decay=0.5, schedule="cosine",
                          seed=args.seed)
        with tempfile.TemporaryDirectory(prefix="wl-entropy-") as tmp:
            g = copy.deepcopy(graph)
            stored = mnist_paper.weightless(g, dataset, cfg, settings, 4, 1.03, 4, log, Path(tmp), False, 1.0, teacher, "auto")
        rows = [layer_row(n.name, g.encodings[t], lay) for n, t, lay in candidates(g) if t in g.encodings]
        out[name] = {"candidate": label, "teacher_weight": teacher, "seed": args.seed, "weights_stored_bytes": stored,
                     "layers": rows}
        print(f"\n{name} (candidate {label}, seed {args.seed}): {stored:,} B stored (weights, biases)")
        print("| layer | encoding | positions | kept | K | bytes | bits per kept weight | positions: log2 C(N,n)/n"
              " | with each input's rate | with each output's rate | gap entropy | Rice gap bits | index entropy"
              " | index bits | entropy bound, bytes |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            rice = f"{r['rice_bits']:.2f}" if "rice_bits" in r else "-"
            print(f"| {r['layer']} | {r['encoding']} | {r['positions']:,} | {r['kept']:,} | {r['clusters']} | "
                  f"{r['bytes']:,} | {r['bits_per_kept']:.2f} | {r['positions_binomial_bits']:.2f} | "
                  f"{r['positions_column_rate_bits']:.2f} | {r['positions_row_rate_bits']:.2f} | "
                  f"{r['gap_entropy_bits']:.2f} | {rice} | {r['index_entropy_bits']:.2f} | {r['index_bits']} | "
                  f"{r['entropy_bytes']:,.0f} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
