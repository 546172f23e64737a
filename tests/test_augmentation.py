"""Training images moved by random whole pixels (--shift): the translation itself, and
that a teacher's targets are taken on the moved images, not on the ones the data holds."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

from weightless_mcu.compress import make_settings
from weightless_mcu.errors import OptionError
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train.data import Dataset, image_geometry, translate
from weightless_mcu.train.network import Network
from weightless_mcu.train.trainer import TrainConfig, train
from weightless_mcu.train.weightless import Context, RetrainOptions, retrain_compress

from .conftest import make_model, rand
from .test_errors import assert_clean_error, run_cli

H = helper.make_node


def moved_by(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """img [C, H, W] moved down by dy and right by dx, the border repeated: pixel by pixel."""
    c, h, w = img.shape
    out = np.empty_like(img)
    for r in range(h):
        for q in range(w):
            out[:, r, q] = img[:, min(max(r - dy, 0), h - 1), min(max(q - dx, 0), w - 1)]
    return out


@pytest.mark.parametrize("shape,geometry", [((300, 2, 5, 6), (2, 5, 6)), ((300, 36), (1, 6, 6))])
def test_translate_moves_each_image_by_one_offset_within_the_shift(shape, geometry):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    out = translate(x, geometry, 2, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    seen = set()
    for i in range(len(x)):
        img, got = x[i].reshape(geometry), out[i].reshape(geometry)
        found = [o for o in offsets if np.array_equal(got, moved_by(img, *o))]
        assert len(found) == 1, f"sample {i} is no translation of at most 2 pixels"
        seen.add(found[0])
    assert seen == set(offsets)  # every offset of the range occurs in 300 draws, none beyond it
    np.testing.assert_array_equal(translate(x, geometry, 0, np.random.default_rng(1)), x)


def test_image_geometry_takes_images_and_refuses_the_rest():
    assert image_geometry((1, 3, 28, 32), "--shift") == (3, 28, 32)
    assert image_geometry((1, 784), "--shift") == (1, 28, 28)
    for shape in ((1, 10), (1, 49, 10), (1, 1)):
        with pytest.raises(OptionError, match="not an image"):
            image_geometry(shape, "--shift")


def _image_mlp(path, side=4, classes=3):
    """[N, side*side] -> logits, no softmax: onnxruntime gives what the teacher's targets hold."""
    dims, hidden = side * side, 12
    nodes = [H("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"), H("Relu", ["h"], ["r"]),
             H("Gemm", ["r", "w2", "b2"], ["logits"], transB=1, name="fc2")]
    return make_model(path, nodes, {"x": [1, dims]}, {"logits": [1, classes]},
                      {"w1": rand(hidden, dims, scale=0.5), "b1": rand(hidden, seed=2, scale=0.1),
                       "w2": rand(classes, hidden, seed=1, scale=0.5), "b2": np.zeros(classes, np.float32)})


def _context(path, shift, teacher_weight, labelled=True):
    _, graph = load_model(path)
    run_passes(graph)
    rng = np.random.default_rng(3)
    x = rng.random((200, 16)).astype(np.float32)
    y = rng.integers(0, 3, 200) if labelled else None
    data = Dataset(x[:150], y[:150] if labelled else None, x[150:], y[150:] if labelled else None)
    opts = RetrainOptions(TrainConfig(shift=shift), teacher_weight=teacher_weight)
    return Context(graph, data, opts, lambda _: None)


@pytest.mark.parametrize("labelled", [True, False])
def test_teacher_targets_are_taken_on_the_moved_images(tmp_path, labelled):
    path = _image_mlp(tmp_path / "m.onnx")
    ctx = _context(path, 1, 0.5, labelled)
    xb, tb = ctx.x[:64], ctx.targets[:64]
    moved = translate(xb, (1, 4, 4), 1, np.random.default_rng(0))
    targets = ctx.relabel(moved, tb)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"x": moved[i:i + 1]})[0] for i in range(len(moved))])
    teacher = targets[:, 1:] if labelled else targets
    np.testing.assert_allclose(teacher, logits, rtol=1e-5, atol=1e-5)  # the teacher on the moved images
    if labelled:
        np.testing.assert_array_equal(targets[:, 0], tb[:, 0])  # the labels stay
    changed = np.any(moved != xb, axis=1)
    assert changed.sum() > 40
    assert not np.allclose(teacher[changed], (tb[:, 1:] if labelled else tb)[changed], atol=1e-3)


def test_training_moves_its_batches_and_relabels_them(tmp_path):
    """train() with cfg.shift hands relabel each batch moved, every image a translation of one of
    the data's; without a teacher there is nothing to relabel (labels travel as they are)."""
    ctx = _context(_image_mlp(tmp_path / "m.onnx"), 1, 0.5)
    x, targets = ctx.x[:16], ctx.targets[:16]
    seen = []

    def relabel(moved, tb):
        seen.append(moved.copy())
        return ctx.relabel(moved, tb)

    net = Network(ctx.relabel.teacher.graph)
    train(net, x, targets, ctx.objective(net), TrainConfig(epochs=2, batch_size=16, shift=1), lambda _: None, "t",
          relabel=relabel)
    assert len(seen) == 2
    offsets = [(dy, dx) for dy in range(-1, 2) for dx in range(-1, 2)]
    originals = x.reshape(-1, 1, 4, 4)
    for batch in seen:
        for img in batch.reshape(-1, 1, 4, 4):
            assert any(np.array_equal(img, moved_by(o, *d)) for o in originals for d in offsets)
        assert not np.array_equal(np.sort(batch, axis=0), np.sort(x, axis=0))  # not the data as it is
    assert _context(_image_mlp(tmp_path / "m.onnx"), 2, 0.0).relabel is None
    assert _context(_image_mlp(tmp_path / "m.onnx"), 0, 0.5).relabel is None


def test_shift_retrains_a_model_and_refuses_one_that_is_no_image(tmp_path):
    path = _image_mlp(tmp_path / "m.onnx")
    _, graph = load_model(path)
    run_passes(graph)
    rng = np.random.default_rng(4)
    x = rng.random((300, 16)).astype(np.float32)
    y = (x.reshape(-1, 4, 4)[:, :, :2].sum(axis=(1, 2)) > x.reshape(-1, 4, 4)[:, :, 2:].sum(axis=(1, 2))).astype(np.int64)
    data = Dataset(x[:250], y[:250], x[250:], y[250:])
    log = []
    reports = retrain_compress(graph, make_settings(dict(density=0.5, clusters=4, bits=6, min_positions=0)), data,
                               RetrainOptions(TrainConfig(epochs=1, shift=1), seeds=1, teacher_weight=0.5), log.append)
    assert reports[0].kept < reports[0].positions and any("epoch" in line for line in log)
    flat = make_model(tmp_path / "flat.onnx", [H("Gemm", ["x", "w", "b"], ["y"], transB=1, name="fc")],
                      {"x": [1, 10]}, {"y": [1, 3]}, {"w": rand(3, 10), "b": np.zeros(3, np.float32)})
    np.savez(tmp_path / "train.npz", x=rng.random((40, 10)).astype(np.float32), y=rng.integers(0, 3, 40))
    proc = run_cli("compile", flat, "--train-data", tmp_path / "train.npz", "--density", "0.5", "--min-positions", "0",
                   "--shift", "1", "-o", tmp_path / "out")
    assert_clean_error(proc, "not an image")
    with pytest.raises(OptionError, match="--shift"):
        TrainConfig(shift=-1).validate()
