"""The training engine's backward of every op agrees with central finite
differences of its forward, in float64, on every element of every input (the
model's input, the weights, and constant operands such as Div's divisor), for
every attribute that changes the math; once on the graph as loaded and once
after the passes (which fold BatchNorm, canonicalise Gemm and fuse activations)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train.network import Constraint, Network

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



CASES.update({
    "conv_dilation_w": conv(dilations=[1, 2], pads=[1, 2, 1, 2], hw=6),
    "conv_dilation_h_stride_w": conv(dilations=[2, 1], strides=[1, 2], pads=[2, 0, 1, 1], hw=6),
    "conv_same_upper": conv(auto_pad="SAME_UPPER", strides=[2, 2], k=2, hw=5),
    "conv_1d_dilated": ([H("Conv", ["x", "w", "b"], ["y"], dilations=[2], strides=[2], pads=[2, 1])], {"x": [1, 2, 9]},
                        {"w": rand(3, 2, 3, seed=3), "b": rand(3, seed=4)}),

    "gemm_transB_beta": ([H("Gemm", ["x", "w", "b"], ["y"], transB=1, beta=-1.5)], {"x": [1, 6]},
                         {"w": rand(4, 6, seed=5), "b": rand(4, seed=6)}),
    "matmul_2d": ([H("MatMul", ["x", "w"], ["y"])], {"x": [1, 7]}, {"w": rand(7, 3, seed=7)}),
    "relu": ([H("Relu", ["x"], ["y"])], {"x": [1, 9]}, {}),
    "sigmoid": ([H("Sigmoid", ["x"], ["y"])], {"x": [1, 9]}, {}),
    "tanh": ([H("Tanh", ["x"], ["y"])], {"x": [1, 9]}, {}),
    "leaky_relu": ([H("LeakyRelu", ["x"], ["y"], alpha=0.3)], {"x": [1, 9]}, {}),
    "leaky_relu_default": ([H("LeakyRelu", ["x"], ["y"])], {"x": [1, 9]}, {}),
    "hard_sigmoid": ([H("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4)], {"x": [1, 9]}, {}),
    "hard_swish": ([H("HardSwish", ["x"], ["y"])], {"x": [1, 9]}, {}),
    "add": ([H("Add", ["x", "c"], ["y"])], {"x": [1, 2, 3]}, {"c": rand(2, 1, seed=8)}),
    "sub_constant_first": ([H("Sub", ["c", "x"], ["y"])], {"x": [1, 4]}, {"c": rand(1, 4, seed=9)}),
    "mul": ([H("Mul", ["x", "c"], ["y"])], {"x": [1, 3, 2]}, {"c": rand(3, 1, seed=10)}),
    "div_by_constant": ([H("Div", ["x", "d"], ["y"])], {"x": [1, 5]}, {"d": np.abs(rand(5, seed=11)) + 0.5}),
    "div_of_constant": ([H("Div", ["c", "x"], ["y"])], {"x": [1, 5]}, {"c": rand(5, seed=12)}),
    "global_maxpool": ([H("GlobalMaxPool", ["x"], ["y"])], {"x": [1, 3, 4, 4]}, {}),
    "maxpool_dilated": ([H("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[1, 2], strides=[1, 1])],
                        {"x": [1, 2, 5, 6]}, {}),
    "avgpool_1d": ([H("AveragePool", ["x"], ["y"], kernel_shape=[3], strides=[2], pads=[1, 1])], {"x": [1, 2, 9]}, {}),
    "reduce_sum": ([H("ReduceSum", ["x", "ax"], ["y"], keepdims=1)], {"x": [1, 3, 4]}, {"ax": np.array([2], np.int64)}),
    "reduce_sum_all": ([H("ReduceSum", ["x", "ax"], ["y"], keepdims=0)], {"x": [1, 3, 4]}, {"ax": np.array([1, 2], np.int64)}),
    "squeeze_unsqueeze_identity": ([H("Unsqueeze", ["x", "a1"], ["u"]), H("Identity", ["u"], ["i"]), H("Squeeze", ["i", "a1"], ["s"]),
                                    H("Tanh", ["s"], ["y"])], {"x": [1, 3, 2]}, {"a1": np.array([2], np.int64)}),
    "softmax_axis_0_of_3d": ([H("Softmax", ["x"], ["y"], axis=2)], {"x": [1, 3, 4]}, {}),
    "log_softmax_axis_1": ([H("LogSoftmax", ["x"], ["y"], axis=1)], {"x": [1, 4, 3]}, {}),
    "batchnorm_epsilon": ([H("BatchNormalization", ["x", "s", "t", "m", "v"], ["y"], epsilon=0.3)], {"x": [1, 2, 3]},
                          {"s": rand(2, seed=13), "t": rand(2, seed=14), "m": rand(2, seed=15), "v": np.abs(rand(2, seed=16))}),
    "clip_min_only_after_conv": ([H("Conv", ["x", "w"], ["c"]), H("Clip", ["c", "lo"], ["y"])], {"x": [1, 2, 4, 4]},
                                 {"w": rand(3, 2, 3, 3, seed=17), "lo": np.array(-0.2, np.float32)}),
})
CASES["gemm_transA_beta"] = ([H("Gemm", ["x", "w", "b"], ["y"], transA=1, beta=2.5, alpha=0.5)], {"x": [1, 6]},
                             {"w": rand(1, 4, seed=18), "b": rand(6, 4, seed=19)})
# ops whose backward takes the gradient of a constant operand as well as of the activation
DIFFERENTIABLE_OPERANDS = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div"}


def _net(tmp_path, case, passes: bool):
    nodes, inputs, inits = CASES[case]
    path = make_model(tmp_path / "m.onnx", nodes, inputs, {"y": None}, inits, opset=14)
    _, graph = load_model(path)
    if passes:
        run_passes(graph)
    net = Network(graph)
    net.input_grads = True
    net.dtype = np.float64
    for name, value in list(net.values.items()):
        if value.dtype == np.float32:
            net.values[name] = value.astype(np.float64)
    # every float constant an op differentiates through gets its gradient checked too
    wanted = {i for n in graph.nodes if n.op in DIFFERENTIABLE_OPERANDS for i in n.inputs
              if i in net.values and net.values[i].dtype == np.float64}
    for name in wanted:
        net.constraints.setdefault(name, Constraint())
    return net, wanted, inputs["x"]


def _loss(net, x, r):
    env, tape = net.forward({"x": x}, keep=True)
    return float(np.sum(env[net.output] * r)), env, tape


@pytest.mark.parametrize("passes", [False, True], ids=["as_loaded", "after_passes"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_matches_finite_differences(tmp_path, case, passes):
    net, wanted, shape = _net(tmp_path, case, passes)
    rng = np.random.default_rng(0)
    batch = 1 if case == "gemm_transA_beta" else 2  # transA reads the batch axis as the features
    x = rng.standard_normal((batch, *shape[1:]))
    if case == "div_of_constant":
        x = np.sign(x) * (np.abs(x) + 0.5)  # away from the pole
    _, env, _ = _loss(net, x, 0)
    assert env[net.output].dtype == np.float64
    r = rng.standard_normal(env[net.output].shape)
    _, env, tape = _loss(net, x, r)
    grads = {net.output: r}
    pgrads = net.backward(tape, grads)
    assert wanted <= set(pgrads), sorted(wanted - set(pgrads))
    checks = [("x", x, grads["x"])] + [(p, net.values[p], pgrads[p]) for p in sorted(pgrads)]
    eps = 1e-6
    for name, arr, analytic in checks:
        assert analytic.shape == arr.shape, name
        flat = arr.reshape(-1)
        numeric = np.empty(flat.size)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = _loss(net, x, r)[0]
            flat[i] = old - eps
            down = _loss(net, x, r)[0]
            flat[i] = old
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(np.asarray(analytic, np.float64).reshape(-1), numeric, rtol=1e-4, atol=1e-6,
                                   err_msg=f"{case}: gradient of {name}")


@pytest.mark.parametrize("passes", [False, True], ids=["as_loaded", "after_passes"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_matches_onnxruntime_and_float32_stays_float32(tmp_path, case, passes):
    """The forward itself against an outside reference (a wrong forward with a consistent
    backward passes the finite differences); in float32, as in training, every output and
    gradient stays float32."""
    import onnxruntime as ort

    net, _, shape = _net(tmp_path, case, passes)
    batch = 1 if case == "gemm_transA_beta" else 2
    x = np.random.default_rng(1).standard_normal((batch, *shape[1:])).astype(np.float32)
    if case == "div_of_constant":
        x = np.sign(x) * (np.abs(x) + 0.5)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    want = np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(batch)]) if batch > 1 else sess.run(None, {"x": x})[0]
    got64 = net.forward({"x": x.astype(np.float64)})[0][net.output]
    np.testing.assert_allclose(got64, want, rtol=1e-5, atol=1e-6, err_msg=case)
    net.dtype = np.float32
    for name in list(net.values):
        if net.values[name].dtype == np.float64:
            net.values[name] = net.values[name].astype(np.float32)
    env, tape = net.forward({"x": x}, keep=True)
    assert env[net.output].dtype == np.float32
    np.testing.assert_allclose(env[net.output], want, rtol=1e-4, atol=1e-5, err_msg=case)
    grads = {net.output: np.ones(env[net.output].shape, np.float32)}
    pgrads = net.backward(tape, grads)
    assert all(g.dtype == np.float32 for g in [*pgrads.values(), grads["x"]]), case
