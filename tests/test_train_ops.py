"""The training engine's backward of every op agrees with finite differences
of its forward (batch of 2, random upstream gradient)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train.network import Network

from .conftest import make_model, rand

H = helper.make_node


def conv(**attrs):
    cin, cout, k = attrs.pop("cin", 3), attrs.pop("cout", 4), attrs.pop("k", 3)
    g, hw = attrs.get("group", 1), attrs.pop("hw", 7)
    return ([H("Conv", ["x", "w", "b"], ["y"], **attrs)], {"x": [1, cin, hw, hw]},
            {"w": rand(cout, cin // g, k, k, seed=1), "b": rand(cout, seed=2)})


CASES = {
    "conv": conv(pads=[1, 1, 1, 1]),
    "conv_stride_dilation": conv(strides=[2, 2], dilations=[2, 1], pads=[0, 1, 2, 1], hw=9),
    "conv_group": conv(cin=4, cout=6, group=2, pads=[1, 1, 1, 1]),
    "conv_depthwise": conv(cin=5, cout=5, group=5, pads=[1, 1, 1, 1], strides=[2, 2]),
    "conv_1d": ([H("Conv", ["x", "w", "b"], ["y"], pads=[1, 1])], {"x": [1, 3, 9]}, {"w": rand(2, 3, 3), "b": rand(2)}),
    "conv_relu": ([H("Conv", ["x", "w"], ["c"]), H("Relu", ["c"], ["y"])], {"x": [1, 2, 5, 5]}, {"w": rand(3, 2, 3, 3)}),
    "gemm": ([H("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=0.7)], {"x": [1, 6]}, {"w": rand(4, 6), "b": rand(4)}),
    "gemm_no_trans": ([H("Gemm", ["x", "w", "b"], ["y"])], {"x": [1, 6]}, {"w": rand(6, 4), "b": rand(1, 4)}),
    "matmul_3d": ([H("MatMul", ["x", "w"], ["y"])], {"x": [1, 3, 5]}, {"w": rand(5, 2)}),
    "clip": ([H("Clip", ["x", "lo", "hi"], ["y"])], {"x": [1, 8]}, {"lo": np.array(-0.5, np.float32), "hi": np.array(0.4, np.float32)}),
    "sigmoid_tanh": ([H("Sigmoid", ["x"], ["s"]), H("Tanh", ["s"], ["y"])], {"x": [1, 8]}, {}),
    "leaky_hard": ([H("LeakyRelu", ["x"], ["a"], alpha=0.1), H("HardSigmoid", ["a"], ["b"]), H("HardSwish", ["b"], ["y"])],
                   {"x": [1, 8]}, {}),
    "binary_broadcast": ([H("Add", ["x", "c"], ["a"]), H("Mul", ["a", "x"], ["m"]), H("Sub", ["m", "c"], ["s"]),
                          H("Div", ["s", "d"], ["y"])], {"x": [1, 3, 4]}, {"c": rand(4), "d": np.abs(rand(3, 1)) + 1}),
    "maxpool": ([H("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], {"x": [1, 2, 7, 7]}, {}),
    "maxpool_tiles": ([H("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], {"x": [1, 3, 6, 8]}, {}),
    "avgpool": ([H("AveragePool", ["x"], ["y"], kernel_shape=[2, 3], pads=[1, 1, 0, 1])], {"x": [1, 2, 6, 6]}, {}),
    "avgpool_include_pad": ([H("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)],
                            {"x": [1, 2, 5, 5]}, {}),
    "global_avgpool_flatten": ([H("GlobalAveragePool", ["x"], ["p"]), H("Flatten", ["p"], ["y"])], {"x": [1, 3, 4, 4]}, {}),
    "transpose_reshape": ([H("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), H("Reshape", ["t", "s"], ["y"])],
                          {"x": [1, 2, 3, 4]}, {"s": np.array([1, -1], np.int64)}),
    "softmax": ([H("Softmax", ["x"], ["y"], axis=1)], {"x": [1, 5, 2]}, {}),
    "log_softmax": ([H("LogSoftmax", ["x"], ["y"])], {"x": [1, 6]}, {}),
    "batchnorm": ([H("BatchNormalization", ["x", "s", "t", "m", "v"], ["y"])], {"x": [1, 3, 2, 2]},
                  {"s": rand(3), "t": rand(3), "m": rand(3), "v": np.abs(rand(3)) + 0.5}),
    "reduce_mean": ([H("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)], {"x": [1, 3, 4, 5]}, {}),
}


def _loss(net, x, r):
    env, tape = net.forward({"x": x}, keep=True)
    return float(np.sum(env[net.output].astype(np.float64) * r)), env, tape


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_matches_finite_differences(tmp_path, case):
    nodes, inputs, inits = CASES[case]
    path = make_model(tmp_path / "m.onnx", nodes, inputs, {"y": None}, inits, opset=14)
    _, graph = load_model(path)
    run_passes(graph)
    net = Network(graph)
    net.input_grads = True
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *inputs["x"][1:])).astype(np.float32)
    _, env, _ = _loss(net, x, 0)
    r = rng.standard_normal(env[net.output].shape)
    _, env, tape = _loss(net, x, r)
    grads = {net.output: r.astype(np.float32)}
    pgrads = net.backward(tape, grads)
    checks = [("x", x, grads["x"])] + [(p, net.values[p], pgrads[p]) for p in net.params if p in pgrads]
    assert len(checks) == 1 + len(net.params)
    eps = 1e-2
    for name, arr, analytic in checks:
        assert analytic.shape == arr.shape, name
        flat = arr.reshape(-1)
        for i in rng.choice(flat.size, size=min(12, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = _loss(net, x, r)[0]
            flat[i] = old - eps
            down = _loss(net, x, r)[0]
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert analytic.reshape(-1)[i] == pytest.approx(numeric, rel=3e-2, abs=3e-2), (name, i)
