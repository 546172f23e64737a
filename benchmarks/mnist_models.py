"""LeNet-300-100 and LeNet-5 (the Caffe variant of the Deep Compression and
Weightless papers) as ONNX models, trained on MNIST with this package's own
training engine.

    python benchmarks/mnist_models.py --mnist DIR --out DIR [--epochs N]

Writes lenet300.onnx and lenet5.onnx and prints their test error.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from weightless_mcu.export import graph_to_onnx
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train.data import fit_to_input, load_idx_pair
from weightless_mcu.train.network import Network
from weightless_mcu.train.trainer import Objective, TrainConfig, accuracy, train


def _init(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def lenet300(rng) -> onnx.ModelProto:
    dims = [784, 300, 100, 10]
    nodes, inits, x = [], [], "image"
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        inits += [numpy_helper.from_array(_init(rng, (b, a), a), f"ip{i + 1}.weight"),
                  numpy_helper.from_array(np.zeros(b, np.float32), f"ip{i + 1}.bias")]
        y = f"ip{i + 1}"
        nodes.append(helper.make_node("Gemm", [x, f"ip{i + 1}.weight", f"ip{i + 1}.bias"], [y], transB=1, name=f"ip{i + 1}"))
        if i < 2:
            nodes.append(helper.make_node("Relu", [y], [y + "_relu"], name=f"relu{i + 1}"))
            y += "_relu"
        x = y
    nodes.append(helper.make_node("Softmax", [x], ["prob"], name="prob"))
    return _model(nodes, inits, [1, 784])


def lenet5(rng) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(_init(rng, (20, 1, 5, 5), 25), "conv1.weight"),
             numpy_helper.from_array(np.zeros(20, np.float32), "conv1.bias"),
             numpy_helper.from_array(_init(rng, (50, 20, 5, 5), 500), "conv2.weight"),
             numpy_helper.from_array(np.zeros(50, np.float32), "conv2.bias"),
             numpy_helper.from_array(_init(rng, (500, 800), 800), "ip1.weight"),
             numpy_helper.from_array(np.zeros(500, np.float32), "ip1.bias"),
             numpy_helper.from_array(_init(rng, (10, 500), 500), "ip2.weight"),
             numpy_helper.from_array(np.zeros(10, np.float32), "ip2.bias"),
             numpy_helper.from_array(np.array([1, 800], np.int64), "flat")]
    nodes = [helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], name="conv1"),
             helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
             helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2"),
             helper.make_node("MaxPool", ["c2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
             helper.make_node("Reshape", ["p2", "flat"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "ip1.weight", "ip1.bias"], ["h"], transB=1, name="ip1"),
             helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
             helper.make_node("Gemm", ["hr", "ip2.weight", "ip2.bias"], ["logits"], transB=1, name="ip2"),
             helper.make_node("Softmax", ["logits"], ["prob"], name="prob")]
    return _model(nodes, inits, [1, 1, 28, 28])


def _model(nodes, inits, shape) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "lenet", [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="weightless-mcu-benchmarks")
    m.ir_version = 8
    return m


VALIDATION = 5000  # training images held out from all training, for validation during compression


def split(x: np.ndarray, y: np.ndarray):
    """The training images minus a fixed held-out set: (x_train, y_train, x_val, y_val)."""
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[VALIDATION:]], y[order[VALIDATION:]], x[order[:VALIDATION]], y[order[:VALIDATION]]


RECIPE_KEY = "weightless_mcu_benchmark_recipe"


def recipe(name: str, epochs: float, lr: float) -> str:
    """What a trained model is: the builder, its initialisation seed, the held-out split and
    the training schedule. Stored in the ONNX file; a model whose recipe differs is retrained."""
    return json.dumps({"model": name, "init_seed": 0, "validation": VALIDATION, "split_seed": 0, "epochs": epochs,
                       "lr": lr, "schedule": "3 steps: lr, lr/3, lr/10", "batch_size": 64, "version": 1}, sort_keys=True)


def has_recipe(path: Path, expected: str) -> bool:
    if not path.exists():
        return False
    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    return props.get(RECIPE_KEY) == expected


def train_model(model: onnx.ModelProto, path: Path, mnist: Path, epochs: float, lr: float, log,
                stamp: str | None = None) -> float:
    """Train on the MNIST training images minus the held-out set; the test error.
    With a stamp, the saved model carries it (see recipe())."""
    onnx.save(model, path)
    _, graph = load_model(path)
    run_passes(graph)
    net = Network(graph)
    x, y, _, _ = split(*load_idx_pair(mnist, "train"))
    xt, yt = load_idx_pair(mnist, "test")
    shape = graph.tensors[graph.inputs[0]].shape
    x, xt = fit_to_input(x, shape, "MNIST"), fit_to_input(xt, shape, "MNIST")
    obj = Objective(net, labelled=True)
    for i, rate in enumerate((lr, lr / 3, lr / 10)):  # a short step schedule
        train(net, x, y, obj, TrainConfig(epochs=epochs / 3, batch_size=64, lr=rate, seed=i), log, path.stem)
    net.export()
    trained = graph_to_onnx(graph)
    if stamp is not None:
        onnx.helper.set_model_props(trained, {RECIPE_KEY: stamp})
    onnx.save(trained, path)
    return 1.0 - accuracy(net, xt, yt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mnist", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=float, default=12)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    def log(msg):
        print(msg, flush=True)

    for name, build, lr in (("lenet300", lenet300, 1e-3), ("lenet5", lenet5, 1e-3)):
        t0 = time.perf_counter()
        err = train_model(build(np.random.default_rng(0)), args.out / f"{name}.onnx", args.mnist, args.epochs, lr, log,
                          recipe(name, args.epochs, lr))
        print(f"{name}: test error {100 * err:.2f}% ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
