"""Compression checked from outside the compressor: the weights are read back
from the firmware itself (a layer run on one-hot inputs gives its weights
column by column) and compared with what the original weights and the settings
imply, computed here independently: the kept positions are the largest |w|
(per layer, or over all layers with --prune global), each kept weight holds its
nearest shared value, the pruned positions read as 0 except the false
positives, which are about K/2^t of them and exactly the report's count; and
channel cutting keeps the strongest channels."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper

from weightless_mcu import compile_model
from weightless_mcu.api import _prepare
from weightless_mcu.compress import make_settings
from weightless_mcu.qemu import run_firmware
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_firmware

from .conftest import make_model, rand
from .test_errors import run_cli

H = helper.make_node


def read_back_weights(tmp_path, path, compression, in_features: int, target: str = "host"):
    """Each output's weights as the firmware computes with them: outputs for the one-hot inputs."""
    out = tmp_path / f"out-{target}"
    manifest = compile_model(path, out, target=target, compression=compression)
    elf = build_firmware(out, get_target(target), tmp_path / f"build-{target}")
    sizes = [int(np.prod(o["shape"])) for o in manifest["outputs"]]
    run = run_firmware(elf, get_target(target), np.eye(in_features, dtype=np.float32), sum(sizes), model=manifest["name"])
    return [y.T for y in np.split(run.outputs, np.cumsum(sizes)[:-1], axis=1)], manifest


def top_mask(magnitudes: np.ndarray, density: float) -> np.ndarray:
    keep = np.zeros(magnitudes.size, bool)
    keep[np.argsort(-magnitudes.reshape(-1), kind="stable")[:int(np.ceil(density * magnitudes.size - 1e-9))]] = True
    return keep.reshape(magnitudes.shape)


def check_layer(original: np.ndarray, firmware: np.ndarray, keep: np.ndarray, layer: dict, clusters: int, bits: int | None):
    """keep: the positions that must hold a shared value, from the original weights alone."""
    assert layer["kept"] == int(keep.sum())
    assert np.all(firmware[keep] != 0), "a kept weight reads as zero"
    codebook = np.unique(firmware[keep])
    assert codebook.size == clusters
    nearest = np.abs(original[keep][:, None] - codebook[None, :]).min(axis=1)
    assert np.all(np.abs(original[keep] - firmware[keep]) <= nearest + 1e-6), "a kept weight is not at its nearest shared value"
    extra = (firmware != 0) & ~keep
    assert int(extra.sum()) == layer["false_positives"]
    assert np.all(np.isin(firmware[extra], codebook)), "a false positive reads a value outside the codebook"
    pruned = int((~keep).sum())
    if bits is None:
        assert layer["false_positives"] == 0
    else:  # each pruned position reads a word in 1..K with probability K / 2^t
        p = clusters / 2 ** bits
        assert abs(layer["false_positives"] - p * pruned) <= 5 * np.sqrt(p * (1 - p) * pruned) + 1


@pytest.mark.parametrize("encoding,bits,clusters", [("bloomier", 8, 16), ("bloomier", 6, 8), ("bloomier", 4, 7),
                                                    ("bloomier", 10, 16), ("codebook", 8, 16)])
def test_weights_read_back_from_the_firmware(tmp_path, encoding, bits, clusters):
    w = rand(40, 96, seed=3)
    path = make_model(tmp_path / "fc.onnx", [H("Gemm", ["x", "w"], ["y"], transB=1)], {"x": [1, 96]}, {"y": [1, 40]}, {"w": w})
    density = 0.25
    comp = make_settings({"density": density, "clusters": clusters, "bits": bits, "encoding": encoding, "min_positions": 0})
    (firmware,), manifest = read_back_weights(tmp_path, path, comp, 96)
    (layer,) = manifest["layers"]
    assert layer["encoding"] == encoding
    check_layer(w, firmware, top_mask(np.abs(w), density), layer, clusters, bits if encoding == "bloomier" else None)


def test_weights_read_back_under_qemu(tmp_path):
    w = rand(24, 64, seed=4)
    path = make_model(tmp_path / "fc.onnx", [H("Gemm", ["x", "w"], ["y"], transB=1)], {"x": [1, 64]}, {"y": [1, 24]}, {"w": w})
    comp = make_settings({"density": 0.3, "clusters": 16, "bits": 8, "min_positions": 0, "encoding": "bloomier"})
    (firmware,), manifest = read_back_weights(tmp_path, path, comp, 64, target="cortex-m4")
    check_layer(w, firmware, top_mask(np.abs(w), 0.3), manifest["layers"][0], 16, 8)


def _two_layers(tmp_path):
    """Two layers reading the same input; the second's weights are half as large, so a
    global threshold keeps far fewer of them than a per-layer one (11% against 43%)."""
    w1, w2 = rand(24, 48, seed=5), rand(16, 48, seed=6, scale=0.5)
    path = make_model(tmp_path / "two.onnx", [H("Gemm", ["x", "w1"], ["y1"], transB=1), H("Gemm", ["x", "w2"], ["y2"], transB=1)],
                      {"x": [1, 48]}, {"y1": [1, 24], "y2": [1, 16]}, {"w1": w1, "w2": w2})
    return path, w1, w2


@pytest.mark.parametrize("prune", ["layer", "global"])
def test_pruning_keeps_the_largest_weights_per_layer_or_over_all(tmp_path, prune):
    path, w1, w2 = _two_layers(tmp_path)
    comp = make_settings({"density": 0.3, "clusters": 8, "bits": 7, "encoding": "bloomier", "min_positions": 0, "prune": prune})
    (f1, f2), manifest = read_back_weights(tmp_path, path, comp, 48)
    if prune == "global":
        keep = top_mask(np.concatenate([np.abs(w1).ravel(), np.abs(w2).ravel()]), 0.3)
        k1, k2 = keep[:w1.size].reshape(w1.shape), keep[w1.size:].reshape(w2.shape)
        assert k2.sum() / k2.size < 0.15 and k1.sum() / k1.size > 0.4  # the threshold really is shared
    else:
        k1, k2 = top_mask(np.abs(w1), 0.3), top_mask(np.abs(w2), 0.3)
    layers = {layer["tensor"]: layer for layer in manifest["layers"]}
    check_layer(w1, f1, k1, layers["w1"], 8, 7)
    check_layer(w2, f2, k2, layers["w2"], 8, 7)


def test_prune_global_end_to_end_through_the_command_line(tmp_path):
    path, w1, w2 = _two_layers(tmp_path)
    js = tmp_path / "r.json"
    proc = run_cli("verify", path, "--prune", "global", "--density", "0.3", "--clusters", "8", "--bits", "7",
                   "--min-positions", "0", "--json", js, "-q")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(js.read_text())
    keep = top_mask(np.concatenate([np.abs(w1).ravel(), np.abs(w2).ravel()]), 0.3)
    assert res["match"] and res["target"] == "cortex-m4"
    assert [layer["kept"] for layer in res["layers"]] == [int(keep[:w1.size].sum()), int(keep[w1.size:].sum())]


def test_channel_cutting_keeps_the_strongest_channels(tmp_path):
    """The strength of a hidden neuron, computed here: the norm of its weights times the
    norm of the weights that read it. The kept rows of the first layer are those of the
    strongest half (matched to the original rows they came from)."""
    w1, b1, w2 = rand(10, 20, seed=7), rand(10, seed=8), rand(6, 10, seed=9)
    w1[3] *= 4.0  # strong by its own weights
    w2[:, 7] *= 5.0  # strong by the weights that read it
    w1[0] *= 0.1
    path = make_model(tmp_path / "mlp.onnx", [H("Gemm", ["x", "w1", "b1"], ["h"], transB=1), H("Relu", ["h"], ["r"]),
                                               H("Gemm", ["r", "w2"], ["y"], transB=1)],
                      {"x": [1, 20]}, {"y": [1, 6]}, {"w1": w1, "b1": b1, "w2": w2})
    strength = np.linalg.norm(w1, axis=1) * np.linalg.norm(w2, axis=0)
    want = sorted(np.argsort(-strength, kind="stable")[:5].tolist())
    comp = make_settings({"channels": 0.5, "clusters": 16, "bits": 8, "min_positions": 0, "encoding": "codebook"})
    _, graph, _ = _prepare(path, None, None, comp, lambda _: None)
    kept_rows = graph.const("w1")
    assert kept_rows.shape == (5, 20)
    came_from = sorted(int(np.argmin(np.abs(w1 - row).sum(axis=1))) for row in kept_rows)
    assert came_from == want and 3 in want and 7 in want and 0 not in want
