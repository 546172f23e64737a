"""Retraining: data loading, the trainer, and the layer-by-layer Weightless
pipeline on small models, through the API and the command line."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from onnx import helper

from weightless_mcu import verify
from weightless_mcu.api import Retraining, _prepare
from weightless_mcu.compress import make_settings
from weightless_mcu.errors import OptionError
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train.data import load_idx_pair, load_training_data
from weightless_mcu.train.network import Constraint, Network
from weightless_mcu.train.trainer import Objective, TrainConfig, accuracy, apply_gradients, learning_rate, Optimizer, train

from .conftest import make_model, rand
from .test_errors import assert_clean_error, run_cli

H = helper.make_node


def blobs(n=1200, dims=16, classes=4, seed=0):
    """Separable classes: Gaussian blobs."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, dims)) * 3
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.standard_normal((n, dims))).astype(np.float32), y


def mlp(path, dims=16, hidden=48, classes=4, softmax=True):
    nodes = [H("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"), H("Relu", ["h"], ["r"]),
             H("Gemm", ["r", "w2", "b2"], ["logits"], transB=1, name="fc2")]
    if softmax:
        nodes.append(H("Softmax", ["logits"], ["y"]))
    out = "y" if softmax else "logits"
    return make_model(path, nodes, {"x": [1, dims]}, {out: [1, classes]},
                      {"w1": rand(hidden, dims, scale=0.3), "b1": np.zeros(hidden, np.float32),
                       "w2": rand(classes, hidden, seed=1, scale=0.3), "b2": np.zeros(classes, np.float32)})


def write_idx(path, array, magic_ndim):
    header = bytes([0, 0, 8, magic_ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_files_load(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (30, 4, 4))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs, 3)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(30) % 10, 1)
    x, y = load_idx_pair(tmp_path, "train")
    assert x.shape == (30, 4, 4) and np.allclose(x * 255, imgs) and list(y[:3]) == [0, 1, 2]
    data = load_training_data(tmp_path)
    assert len(data.x) == 27 and len(data.x_val) == 3  # a held-out tenth
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"junk")
    with pytest.raises(OptionError):
        load_idx_pair(tmp_path, "train")


def test_cosine_schedule_runs_from_lr_to_a_twentieth():
    cfg = TrainConfig(lr=2e-3, schedule="cosine")
    rates = [learning_rate(cfg, s, 101) for s in range(101)]
    assert rates[0] == pytest.approx(2e-3) and rates[-1] == pytest.approx(1e-4) and rates[50] == pytest.approx(1.05e-3)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert learning_rate(TrainConfig(lr=2e-3), 100, 101) == 2e-3
    with pytest.raises(OptionError, match="schedule"):
        TrainConfig(schedule="linear").validate()


def test_labels_with_teacher_loss_gradient(tmp_path):
    """The mixed loss (cross-entropy + T^2 KL to the teacher at temperature T)
    against central finite differences in the logits."""
    _, graph = load_model(mlp(tmp_path / "m.onnx"))
    run_passes(graph)
    net = Network(graph)
    obj = Objective(net, True, teacher_weight=0.7, temperature=3.0)
    rng = np.random.default_rng(0)
    target = np.concatenate([rng.integers(0, 4, (5, 1)), rng.standard_normal((5, 4)) * 3], axis=1)
    logits = rng.standard_normal((5, 4))
    loss, grads = obj.loss_and_grads({"logits": logits.astype(np.float32)}, target)
    (name, g), = grads.items()
    assert name == "logits"
    eps, numeric = 1e-4, np.zeros_like(logits)
    for i in np.ndindex(logits.shape):
        d = np.zeros_like(logits)
        d[i] = eps
        numeric[i] = (obj._with_teacher({"logits": logits + d}, target)[0]
                      - obj._with_teacher({"logits": logits - d}, target)[0]) / (2 * eps)
    np.testing.assert_allclose(g, numeric, atol=1e-5)
    # a student equal to the teacher pays only the label term
    same = obj.loss_and_grads({"logits": target[:, 1:].astype(np.float32)}, target)[0]
    p = np.exp(target[:, 1:]) / np.exp(target[:, 1:]).sum(1, keepdims=True)
    assert same == pytest.approx(0.3 * -np.log(p[np.arange(5), target[:, 0].astype(int)]).mean(), rel=1e-5)


def test_trainer_learns_and_shared_gradients_reach_the_codebook(tmp_path):
    _, graph = load_model(mlp(tmp_path / "m.onnx"))
    run_passes(graph)
    net = Network(graph)
    x, y = blobs()
    before = accuracy(net, x, y)
    train(net, x, y, Objective(net, True), TrainConfig(epochs=3, lr=3e-3), lambda _: None, "t")
    assert accuracy(net, x, y) > max(0.9, before)
    # Shared weights: one update moves exactly the K shared values, with the summed gradient.
    t = net.params[0]
    index = np.random.default_rng(1).integers(0, 4, net.values[t].shape)
    net.constrain(t, Constraint("shared", index=index, codebook=np.array([0.5, -0.5, 1.0], np.float32)))
    grad = np.ones_like(net.values[t])
    apply_gradients(net, Optimizer(TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0)), {t: grad})
    counts = np.bincount(index.reshape(-1), minlength=4)[1:]
    # Decoupled weight decay shrinks free weights by lr * decay even without a gradient.
    free = net.params[2]
    w0 = net.values[free].copy()
    apply_gradients(net, Optimizer(TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0, weight_decay=0.5)),
                    {free: np.zeros_like(w0)})
    np.testing.assert_allclose(net.values[free], w0 * (1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_allclose(net.constraints[t].codebook, np.array([0.5, -0.5, 1.0]) - 0.1 * counts, rtol=1e-5)
    assert set(np.unique(net.values[t])) <= set(np.concatenate([[0.0], net.constraints[t].codebook]).tolist())


@pytest.mark.parametrize("labelled", [True, False])
def test_pipeline_compresses_and_keeps_accuracy(tmp_path, labelled):
    path = mlp(tmp_path / "m.onnx")
    x, y = blobs(1500)
    x, y, xt, yt = x[:1200], y[:1200], x[1200:], y[1200:]
    _, graph = load_model(path)
    run_passes(graph)
    net = Network(graph)
    train(net, x, y, Objective(net, True), TrainConfig(epochs=4, lr=3e-3), lambda _: None, "t")
    net.export()
    from weightless_mcu.export import graph_to_onnx
    import onnx

    onnx.save(graph_to_onnx(graph), path)
    np.savez(tmp_path / "train.npz", **({"x": x, "y": y} if labelled else {"x": x}))
    np.savez(tmp_path / "test.npz", x=xt, y=yt)
    log = []
    # fc1 (768 weights) is compressed; the 192-weight output layer stays dense, as small layers do by default.
    res = verify(path, target="cortex-m4", data=tmp_path / "test.npz", progress=log.append,
                 compression=make_settings(dict(density=0.2, clusters=4, bits=6)),
                 retraining=Retraining(tmp_path / "train.npz", TrainConfig(epochs=1, lr=1e-3), seeds=3))
    assert res["match"] and res["predictions_match"] == res["samples"] == 300
    assert res["accuracy_original"] > 0.9
    assert res["accuracy"] == res["accuracy_onnxruntime_decoded"] >= res["accuracy_original"] - 0.05
    assert res["compression_ratio"] > 3
    fc1, fc2 = (next(layer for layer in res["layers"] if layer["name"] == n) for n in ("fc1", "fc2"))
    assert fc1["encoding"] in ("bloomier", "codebook") and fc1["kept"] == int(np.ceil(0.2 * 48 * 16))
    assert fc2["encoding"] == "dense"
    assert any("seed" in line for line in log) and any("epoch" in line for line in log)


def test_pipeline_cuts_channels_out_of_the_model(tmp_path):
    """Structured pruning: half of fc1's neurons leave the model (fc2 absorbs their
    constant outputs); the firmware runs the smaller model, and the ratio is
    against the original model's float32 size."""
    path = mlp(tmp_path / "m.onnx")
    x, y = blobs(1500)
    np.savez(tmp_path / "train.npz", x=x[:1200], y=y[:1200])
    np.savez(tmp_path / "test.npz", x=x[1200:], y=y[1200:])
    log = []
    res = verify(path, target="cortex-m4", data=tmp_path / "test.npz", progress=log.append,
                 compression=make_settings(dict(density=0.5, channels=0.5, clusters=4, bits=6)),
                 retraining=Retraining(tmp_path / "train.npz", TrainConfig(epochs=2, lr=3e-3), seeds=1))
    assert res["match"] and res["predictions_match"] == res["samples"] == 300
    assert res["accuracy"] == res["accuracy_onnxruntime_decoded"] > 0.9
    fc1 = next(layer for layer in res["layers"] if layer["name"] == "fc1")
    assert fc1["positions"] == 24 * 16 and fc1["kept"] == 24 * 8
    assert any("24 of 48 output channels kept" in line for line in log)
    original = 4 * (48 * 16 + 48 + 4 * 48 + 4)
    assert res["weights_float32_bytes"] == original
    assert res["compression_ratio"] == pytest.approx(original / res["weights_stored_bytes"], rel=1e-3)


def test_accuracy_budget_picks_a_density(tmp_path):
    path = mlp(tmp_path / "m.onnx", softmax=False)
    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    _, _, reports = _prepare(path, None, None, make_settings(dict(clusters=4, min_positions=0)), lambda _: None,
                             Retraining(tmp_path / "train.npz", TrainConfig(epochs=1, lr=3e-3), seeds=1, accuracy_budget=5.0))
    fc1, fc2 = reports
    assert fc1.encoding != "dense" and fc1.kept < fc1.positions
    # the output layer (192 of 960 weights) is searched as dense indices only, as uniform settings protect it
    assert fc2.encoding == "codebook" and fc2.kept == fc2.positions


@pytest.mark.slow
def test_cli_retraining_options_and_errors(tmp_path):
    path = mlp(tmp_path / "m.onnx")
    x, y = blobs(400)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "test.npz", x=x[:50], y=y[:50])
    js = tmp_path / "r.json"
    proc = run_cli("verify", path, "--train-data", tmp_path / "train.npz", "--density", "0.3", "--clusters", "4", "--bits", "7",
                   "--min-positions", "0", "--epochs", "0.5", "--data", tmp_path / "test.npz", "--target", "host",
                   "--channels", "0.5", "--teacher-weight", "0.5", "--final-epochs", "0.5", "--schedule", "constant",
                   "--json", js, "-q")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(js.read_text())
    for key in ("accuracy", "accuracy_onnxruntime_decoded", "accuracy_original"):
        assert 0.0 <= res[key] <= 1.0
    assert "accuracy" in proc.stdout
    assert res["layers"][0]["name"] == "fc1" and res["layers"][0]["positions"] == 24 * 16  # --channels 0.5 of 48
    assert_clean_error(run_cli("compile", path, "-o", tmp_path / "o", "--target-accuracy-drop", "1"), "--train-data")
    np.savez(tmp_path / "bad.npz", x=np.zeros((10, 7), np.float32), y=np.zeros(10))
    assert_clean_error(run_cli("compile", path, "-o", tmp_path / "o", "--train-data", tmp_path / "bad.npz", "--density", "0.5"),
                       "do not fit the model input")
    assert_clean_error(run_cli("compile", path, "-o", tmp_path / "o", "--train-data", tmp_path / "train.npz"), "--density")
    for opt, value, message in (("--teacher-weight", "2", "teacher-weight"), ("--final-epochs", "-1", "final-epochs"),
                                ("--channels", "0", "channels must be in")):
        assert_clean_error(run_cli("compile", path, "-o", tmp_path / "o", "--train-data", tmp_path / "train.npz",
                                   "--density", "0.5", opt, value), message)
