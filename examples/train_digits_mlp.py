"""Train the bundled example model: a small MLP (64-32-10, ReLU, softmax) on
scikit-learn's 8x8 digits, written as examples/digits_mlp.onnx.

    python examples/train_digits_mlp.py [--out examples/digits_mlp.onnx]

Deterministic (fixed seed); prints the held-out accuracy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("digits_mlp.onnx"))
    args = ap.parse_args()
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=600, random_state=0).fit(x_tr, y_tr)
    print(f"held-out accuracy: {clf.score(x_te, y_te):.4f} on {len(y_te)} digits")

    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in ((w1, "fc1.weight"), (b1, "fc1.bias"), (w2, "fc2.weight"), (b2, "fc2.bias"))]
    nodes = [
        helper.make_node("Gemm", ["pixels", "fc1.weight", "fc1.bias"], ["h1"], name="fc1"),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Gemm", ["a1", "fc2.weight", "fc2.bias"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(nodes, "digits_mlp",
                              [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="weightless-mcu-example")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, args.out)
    np.savez(args.out.with_name("digits_test.npz"), pixels=x_te[:32], labels=y_te[:32])
    print(f"wrote {args.out} and {args.out.with_name('digits_test.npz')} (32 held-out digits)")


if __name__ == "__main__":
    main()
