"""Structured pruning: cutting zero-weight channels out of a graph keeps the
model's function (checked with onnxruntime on the exported graphs)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

from weightless_mcu.compress.channels import channel_chain, channel_importance, remove_channels
from weightless_mcu.errors import OptionError
from weightless_mcu.export import graph_to_onnx
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes

from .conftest import make_model, rand


def lenet(path, act1="Relu"):
    """conv(pad) -> act -> maxpool -> conv -> avgpool -> flatten -> gemm+relu -> gemm."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node(act1, ["c1"], ["a1"], name="act1"),
             helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2"),
             helper.make_node("AveragePool", ["c2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
             helper.make_node("Flatten", ["p2"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["h"], transB=1, name="fc1"),
             helper.make_node("Relu", ["h"], ["hr"], name="relu"),
             helper.make_node("Gemm", ["hr", "w4", "b4"], ["y"], transB=1, name="fc2")]
    inits = {"w1": rand(6, 1, 3, 3, seed=1), "b1": rand(6, seed=2), "w2": rand(8, 6, 3, 3, seed=3, scale=0.3),
             "b2": rand(8, seed=4), "w3": rand(12, 8 * 2 * 2, seed=5, scale=0.3), "b3": rand(12, seed=6),
             "w4": rand(5, 12, seed=7, scale=0.3), "b4": rand(5, seed=8)}
    return make_model(path, nodes, {"x": [1, 1, 12, 12]}, {"y": [1, 5]}, inits)


def run(graph, x):
    sess = ort.InferenceSession(graph_to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {graph.inputs[0]: x})[0]


@pytest.mark.parametrize("act1", ["Relu", "Sigmoid"])
def test_removing_zero_channels_keeps_the_function(model_path, act1):
    lenet(model_path, act1)
    _, g = load_model(model_path)
    run_passes(g)
    nodes = {n.name: n for n in g.nodes}
    x = rand(1, 1, 12, 12, seed=9)
    total = sum(t.size for t in g.tensors.values() if t.is_const and t.data.dtype == np.float32)
    removed_all = 0
    for name, drop in (("conv1", [1, 4]), ("conv2", [0, 3, 7]), ("fc1", [2, 5, 6, 11])):
        node = nodes[name]
        chain = channel_chain(g, node)
        assert chain is not None, name
        w = g.tensors[node.inputs[1]].data.copy()
        w[drop] = 0  # the channels' weights are zero; their biases still reach the next layer
        g.tensors[node.inputs[1]].data = w
        before = run(g, x)
        keep = np.ones(w.shape[0], bool)
        keep[drop] = False
        removed_all += remove_channels(g, chain, keep)
        assert g.tensors[node.inputs[1]].shape[0] == w.shape[0] - len(drop)
        np.testing.assert_allclose(run(g, x), before, rtol=1e-5, atol=1e-5)
    left = sum(t.size for t in g.tensors.values() if t.is_const and t.data.dtype == np.float32)
    assert removed_all == total - left > 0
    assert g.removed_parameters == removed_all  # the original size still counts them


def test_chains_that_cannot_fold_are_refused(model_path):
    lenet(model_path)
    _, g = load_model(model_path)
    run_passes(g)
    nodes = {n.name: n for n in g.nodes}
    assert channel_chain(g, nodes["fc2"]) is None  # its output is the model's
    chain = channel_chain(g, nodes["conv2"])
    scores = channel_importance(g, chain)
    assert scores.shape == (8,) and np.all(scores > 0)
    with pytest.raises(OptionError, match="all zero"):
        remove_channels(g, chain, np.arange(8) > 0)  # channel 0 still has weights
    # a consumer that pads its input cannot absorb a constant channel
    lenet(model_path)
    _, g = load_model(model_path)
    run_passes(g)
    nodes = {n.name: n for n in g.nodes}
    nodes["conv2"].attrs["pads"] = [1, 1, 1, 1]
    chain = channel_chain(g, nodes["conv1"])
    g.tensors["w1"].data[0] = 0
    with pytest.raises(OptionError, match="pads its input"):
        remove_channels(g, chain, np.arange(6) > 0)


def test_one_shot_compression_cuts_channels_and_the_firmware_agrees(model_path):
    """Without retraining, --channels keeps the strongest channels; the firmware
    (host build) computes exactly the smaller decoded model."""
    from weightless_mcu import verify
    from weightless_mcu.compress import make_settings

    lenet(model_path)
    log = []
    res = verify(model_path, target="host", progress=log.append,
                 compression=make_settings(dict(channels=0.5, density=0.6, clusters=4, bits=8, min_positions=0)))
    assert res["match"]
    layers = {r["name"]: r for r in res["layers"]}
    # conv1 keeps 3 of 6 filters, conv2 4 of 8 (reading 3 channels), fc1 6 of 12 (reading 4 * 2 * 2), fc2 reads 6
    assert [layers[n]["positions"] for n in ("conv1", "conv2", "fc1", "fc2")] == [3 * 9, 4 * 3 * 9, 6 * 16, 5 * 6]
    assert any("3 of 6 output channels kept" in line for line in log)
    original = 4 * (6 * 9 + 6 + 8 * 6 * 9 + 8 + 12 * 32 + 12 + 5 * 12 + 5)
    assert res["weights_float32_bytes"] == original


def _cut_and_compare(path, layer, drop, x):
    """Zero the dropped channels' weights, remove them, and check onnxruntime gives the same outputs."""
    _, g = load_model(path)
    run_passes(g)
    node = next(n for n in g.nodes if n.name == layer)
    chain = channel_chain(g, node)
    assert chain is not None
    w = g.tensors[node.inputs[1]].data.copy()
    w[drop] = 0
    g.tensors[node.inputs[1]].data = w
    before = run(g, x)
    keep = np.ones(w.shape[0], bool)
    keep[drop] = False
    removed = remove_channels(g, chain, keep)
    assert removed > 0 and g.tensors[node.inputs[1]].shape[0] == w.shape[0] - len(drop)
    np.testing.assert_allclose(run(g, x), before, rtol=1e-5, atol=1e-5)
    return g


def test_removing_channels_through_a_reshape_of_a_1d_conv(tmp_path):
    """Conv1d -> Relu -> Reshape (a constant target) -> Gemm: the Reshape's target shrinks with the channels."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "s"], ["f"], name="reshape"),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1, name="fc")]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 2, 7]}, {"y": [1, 3]},
                      {"w1": rand(5, 2, 3, seed=1), "b1": rand(5, seed=2), "s": np.array([1, 35], np.int64),
                       "w2": rand(3, 35, seed=3), "b2": rand(3, seed=4)})
    g = _cut_and_compare(path, "conv", [1, 3], rand(1, 2, 7, seed=5))
    reshape = next(n for n in g.nodes if n.op == "Reshape")
    assert list(g.const(reshape.inputs[1])) == [1, 21]


def test_removing_channels_of_layers_without_bias(tmp_path):
    """A producer without bias (its removed channels output 0) and a consumer without bias
    (the constants of a producer with bias become the consumer's new bias)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["h"], transB=1, name="fc1"),
             helper.make_node("Gemm", ["h", "w3"], ["y"], transB=1, name="fc2")]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 2, 4, 4]}, {"y": [1, 3]},
                      {"w1": rand(4, 2, 3, 3, seed=1), "w2": rand(6, 16, seed=2), "b2": np.abs(rand(6, seed=3)) + 0.5,
                       "w3": rand(3, 6, seed=4)})
    x = rand(1, 2, 4, 4, seed=5)
    _cut_and_compare(path, "conv", [0, 2], x)
    g = _cut_and_compare(path, "fc1", [1, 4], x)
    fc2 = next(n for n in g.nodes if n.name == "fc2")
    assert len(fc2.inputs) == 3 and g.const(fc2.inputs[2]).shape == (3,)  # the folded constants, as a new bias


def test_chains_through_ops_that_are_not_plain_are_refused(model_path):
    lenet(model_path)
    for change in ({"conv1": {"group": 2}}, {"fc1": {"alpha": 2.0}}, {"fc1": {"transA": 1}}, {"fc1": {"beta": 0.5}},
                   {"fc2": {"alpha": 2.0}}):
        _, g = load_model(model_path)
        run_passes(g)
        nodes = {n.name: n for n in g.nodes}
        (name, attrs), = change.items()
        nodes[name].attrs.update(attrs)
        producer = {"conv1": "conv1", "fc1": "fc1", "fc2": "fc1"}[name]
        assert channel_chain(g, nodes[producer]) is None, change
    # a padded average pool between the layers: the constant channel would not stay constant;
    # auto_pad as the front end gives it (bytes), NOTSET and VALID meaning no padding
    for attrs, chained in (({"pads": [1, 1, 1, 1]}, False), ({"auto_pad": b"SAME_UPPER"}, False),
                           ({"auto_pad": b"NOTSET"}, True), ({"auto_pad": b"VALID"}, True)):
        _, g = load_model(model_path)
        run_passes(g)
        nodes = {n.name: n for n in g.nodes}
        assert channel_chain(g, nodes["conv2"]) is not None
        nodes["pool2"].attrs.update(attrs)
        assert (channel_chain(g, nodes["conv2"]) is not None) == chained, attrs


def test_a_channel_mask_must_keep_some_channels_of_the_right_count(model_path):
    lenet(model_path)
    _, g = load_model(model_path)
    run_passes(g)
    chain = channel_chain(g, next(n for n in g.nodes if n.name == "conv2"))
    g.tensors["w2"].data[:] = 0
    for keep in (np.zeros(8, bool), np.ones(7, bool)):
        with pytest.raises(OptionError, match="must keep some of its 8 channels"):
            remove_channels(g, chain, keep)
