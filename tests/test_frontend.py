"""Frontend: external data, old opsets, constant folding, batch fixing."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from weightless_mcu import verify
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes

from .conftest import make_model, rand

H = helper.make_node


def test_external_data_model(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"x": [1, 64]}, {"y": [1, 32]},
                      {"w": rand(32, 64), "b": rand(32, seed=1)})
    ext = tmp_path / "ext" / "model.onnx"
    ext.parent.mkdir()
    onnx.save(onnx.load(path), ext, save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    assert (ext.parent / "model.onnx.data").stat().st_size >= 32 * 64 * 4
    res = verify(ext, target="host", samples=2)
    assert res["match"]


def test_opset_11_model_is_upgraded(tmp_path):
    """Opset 11: Softmax flattens from its axis (here 1 of [1, 3, 4]: one softmax over all 12
    values); from opset 13 it is along that one axis. The upgraded model must keep opset 11's
    meaning: checked against numpy, not only against onnxruntime."""
    path = make_model(tmp_path / "m.onnx", [H("Clip", ["x", "lo", "hi"], ["c"]), H("Softmax", ["c"], ["y"], axis=1)],
                      {"x": [1, 3, 4]}, {"y": [1, 3, 4]}, {"lo": np.array(-1, np.float32), "hi": np.array(1, np.float32)}, opset=11)
    model, graph = load_model(path)
    assert graph.opset >= 13
    x = rand(2, 3, 4, seed=3) * 2
    np.savez(tmp_path / "x.npz", x=x)
    assert verify(path, target="host", inputs=tmp_path / "x.npz", outputs=tmp_path / "y.npz")["match"]
    c = np.clip(x, -1, 1).reshape(2, 12).astype(np.float64)
    want = (np.exp(c) / np.exp(c).sum(axis=1, keepdims=True)).reshape(2, 3, 4)
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["y"], want, rtol=1e-5)


def test_passes_fold_batchnorm_and_fuse_relu(tmp_path):
    path = make_model(tmp_path / "m.onnx",
                      [H("Conv", ["x", "w"], ["c"]), H("BatchNormalization", ["c", "s", "t", "m", "v"], ["n"]), H("Relu", ["n"], ["y"])],
                      {"x": [1, 2, 5, 5]}, {"y": None},
                      {"w": rand(3, 2, 3, 3), "s": rand(3), "t": rand(3), "m": rand(3), "v": np.ones(3, np.float32)})
    _, graph = load_model(path)
    run_passes(graph)
    assert [n.op for n in graph.nodes] == ["Conv"]
    assert graph.nodes[0].attrs["wl_activation"] == (0.0, float("inf"))
