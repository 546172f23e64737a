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
CASES.update({
    "gemm_no_bias": ([H("Gemm", ["x", "w"], ["y"], transB=1)], {"x": [1, 5]}, {"w": rand(3, 5, seed=20)}),
    "matmul_batched_constant": ([H("MatMul", ["x", "w"], ["y"])], {"x": [1, 2, 3, 4]}, {"w": rand(2, 4, 5, seed=21)}),
    "softmax_default_axis_3d": ([H("Softmax", ["x"], ["y"])], {"x": [1, 3, 4]}, {}),
    "log_softmax_default_axis_3d": ([H("LogSoftmax", ["x"], ["y"])], {"x": [1, 3, 4]}, {}),
    "reduce_mean_default_axes": ([H("ReduceMean", ["x"], ["y"])], {"x": [1, 3, 4]}, {}),
    "reduce_mean_keepdims": ([H("ReduceMean", ["x"], ["y"], axes=[1])], {"x": [1, 3, 4]}, {}),
    "clip_max_only": ([H("Clip", ["x", "", "hi"], ["y"])], {"x": [1, 8]}, {"hi": np.array(0.3, np.float32)}),
    "conv_clip": ([H("Conv", ["x", "w"], ["c"]), H("Clip", ["c", "lo", "hi"], ["y"])], {"x": [1, 2, 4, 4]},
                  {"w": rand(3, 2, 3, 3, seed=22), "lo": np.array(-1.0, np.float32), "hi": np.array(1.5, np.float32)}),
    "maxpool_tiles_odd_height": ([H("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], {"x": [1, 2, 7, 8]}, {}),
    "maxpool_1d_tiles": ([H("MaxPool", ["x"], ["y"], kernel_shape=[2], strides=[2])], {"x": [1, 2, 8]}, {}),
    "maxpool_pads_all_negative": ([H("Sub", ["x", "c"], ["n"]), H("MaxPool", ["n"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                                                  pads=[1, 1, 1, 1])], {"x": [1, 2, 5, 5]},
                                  {"c": np.array(20.0, np.float32)}),
    "maxpool_begin_pad_tiles": ([H("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 0, 0])],
                                {"x": [1, 2, 6, 6]}, {}),
    "maxpool_tiles_odd_width": ([H("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], {"x": [1, 2, 8, 7]}, {}),
    "matmul_two_activations": ([H("Tanh", ["x"], ["t"]), H("MatMul", ["x", "t"], ["y"])], {"x": [1, 3, 3]}, {}),
    "clip_no_bounds": ([H("Clip", ["x"], ["y"])], {"x": [1, 5]}, {}),
    "softmax_shifted_far": ([H("Add", ["x", "c"], ["s"]), H("Softmax", ["s"], ["y"], axis=1)], {"x": [1, 6]},
                            {"c": np.array(400.0, np.float32)}),
    "softmax_rows_far_apart": ([H("Mul", ["x", "c"], ["s"]), H("Softmax", ["s"], ["y"], axis=2)], {"x": [1, 3, 4]},
                               {"c": np.array([[1.0], [1.0], [300.0]], np.float32)}),
})
# The math of audio front ends and GELU blocks (arguments kept where each op is smooth).
CASES.update({
    "abs_neg": ([H("Abs", ["x"], ["a"]), H("Mul", ["a", "x"], ["m"]), H("Neg", ["m"], ["y"])], {"x": [1, 7]}, {}),
    "sqrt_log": ([H("Mul", ["x", "x"], ["m"]), H("Add", ["m", "c"], ["p"]), H("Sqrt", ["p"], ["s"]), H("Log", ["s"], ["y"])],
                 {"x": [1, 7]}, {"c": np.array(0.5, np.float32)}),
    "exp_reciprocal": ([H("Exp", ["x"], ["e"]), H("Add", ["e", "c"], ["d"]), H("Reciprocal", ["d"], ["y"])], {"x": [1, 7]},
                       {"c": np.array(1.0, np.float32)}),
    "erf": ([H("Erf", ["x"], ["y"])], {"x": [1, 9]}, {}),
    "pow_constants": ([H("Pow", ["x", "two"], ["q"]), H("Add", ["q", "c"], ["p"]), H("Pow", ["p", "e"], ["r"]),
                       H("Pow", ["r", "three"], ["y"])], {"x": [1, 7]},
                      {"two": np.array(2.0, np.float32), "c": np.array(0.5, np.float32), "e": np.array([0.75], np.float32),
                       "three": np.array(3, np.int64)}),
    "gelu": ([H("Gemm", ["x", "w"], ["h"], transB=1), H("Gelu", ["h"], ["g"]), H("Gelu", ["g"], ["y"], approximate="tanh")],
             {"x": [1, 5]}, {"w": rand(6, 5, seed=23)}, 20),
})
CASES["gemm_transA_beta"] = ([H("Gemm", ["x", "w", "b"], ["y"], transA=1, beta=2.5, alpha=0.5)], {"x": [1, 6]},
                             {"w": rand(1, 4, seed=18), "b": rand(6, 4, seed=19)})
# ops whose backward takes the gradient of a constant operand as well as of the activation
DIFFERENTIABLE_OPERANDS = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div"}


def _net(tmp_path, case, passes: bool):
    nodes, inputs, inits, *opset = CASES[case]
    path = make_model(tmp_path / "m.onnx", nodes, inputs, {"y": None}, inits, opset=opset[0] if opset else 14)
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
    x = 3 * rng.standard_normal((batch, *shape[1:]))  # wide enough to reach every piece of HardSwish, HardSigmoid, Clip
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
    x = (3 * np.random.default_rng(1).standard_normal((batch, *shape[1:]))).astype(np.float32)
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


def _conv_chain(tmp_path):
    nodes = [H("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), H("Relu", ["c1"], ["r"]),
             H("Conv", ["r", "w2", "b2"], ["c2"]), H("Flatten", ["c2"], ["f"]), H("Gemm", ["f", "w3", "b3"], ["g"], transB=1),
             H("MatMul", ["g", "w4"], ["y"])]
    inits = {"w1": rand(3, 2, 3, 3, seed=1), "b1": rand(3, seed=2), "w2": rand(2, 3, 3, 3, seed=3), "b2": rand(2, seed=4),
             "w3": rand(4, 2 * 3 * 3, seed=5), "b3": rand(4, seed=6), "w4": rand(4, 3, seed=7)}
    path = make_model(tmp_path / "chain.onnx", nodes, {"x": [1, 2, 5, 5]}, {"y": None}, inits)
    _, graph = load_model(path)
    return Network(graph)


def test_parameters_constraints_and_partial_forward(tmp_path):
    net = _conv_chain(tmp_path)
    assert net.params == ["w1", "b1", "w2", "b2", "w3", "b3", "w4"] and net.dtype == np.float32
    x = np.ones((2, 2, 5, 5), np.float32)
    env, _ = net.forward({"x": x})
    assert env[net.output].dtype == np.float32  # the default: training runs in float32
    env, tape = net.forward({"x": x}, upto="r", keep=True)
    assert "r" in env and "c2" not in env and [n.op for n, _, _ in tape] == ["Conv", "Relu"]
    net.set_values("w4", np.arange(12, dtype=np.float64).reshape(12))
    assert net.values["w4"].dtype == np.float32 and net.values["w4"].shape == (4, 3)
    before = net.values["w3"].copy()
    net.constrain("w3", Constraint())  # free: the values stay
    assert np.array_equal(net.values["w3"], before)
    mask = np.arange(before.size).reshape(before.shape) % 3 == 0
    net.constrain("w3", Constraint("masked", mask=mask))
    assert np.array_equal(net.values["w3"], np.where(mask, before, 0))
    index = (np.arange(before.size) % 4).reshape(before.shape)
    net.constrain("w3", Constraint("shared", index=index, codebook=np.array([0.5, -1.0, 2.0], np.float32)))
    assert np.array_equal(net.values["w3"], np.array([0.0, 0.5, -1.0, 2.0], np.float32)[index])
    assert net.values["w3"].dtype == np.float32


def test_gradients_reach_the_first_layer_without_input_gradients(tmp_path):
    """Training asks for no gradient of the model's input: the first conv skips its dx,
    every layer's parameters still get theirs, equal to those with input gradients."""
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    results = []
    for input_grads in (False, True):
        net = _conv_chain(tmp_path)
        net.input_grads = input_grads
        env, tape = net.forward({"x": x}, keep=True)
        grads = {net.output: np.ones(env[net.output].shape, np.float32)}
        pgrads = net.backward(tape, grads)
        assert sorted(pgrads) == sorted(net.params)
        assert all(g.dtype == np.float32 for g in pgrads.values())
        assert ("x" in grads) == input_grads
        results.append(pgrads)
    for name in results[0]:
        np.testing.assert_allclose(results[0][name], results[1][name], rtol=1e-6, err_msg=name)


def test_retraining_refuses_what_it_cannot_train_with_clear_errors(tmp_path):
    from weightless_mcu.errors import UnsupportedOpError

    path = make_model(tmp_path / "erf.onnx", [H("Relu", ["x"], ["r"]), H("Pad", ["r", "p"], ["y"])], {"x": [1, 4]}, {"y": None},
                      {"p": np.array([0, 1, 0, 1], np.int64)})
    _, graph = load_model(path)
    with pytest.raises(UnsupportedOpError, match=r"retraining does not support op Pad; it supports Abs, Add, AveragePool, "
                                                 r"BatchNormalization, Clip, Conv, Div, Erf, Exp, Flatten, Gelu"):
        Network(graph)
    path = make_model(tmp_path / "pow.onnx", [H("Pow", ["x", "x"], ["y"])], {"x": [1, 4]}, {"y": None})
    _, graph = load_model(path)
    with pytest.raises(UnsupportedOpError, match="Pow by a constant scalar exponent only"):
        Network(graph)
    for attrs in ({"perm": [1, 0]}, {}):  # without perm, Transpose reverses the axes: the batch axis too
        path = make_model(tmp_path / "t.onnx", [H("Transpose", ["x"], ["y"], **attrs)], {"x": [1, 4]}, {"y": None})
        _, graph = load_model(path)
        with pytest.raises(UnsupportedOpError, match="keep the batch axis first"):
            Network(graph).forward({"x": np.ones((2, 4), np.float32)})
    path = make_model(tmp_path / "r.onnx", [H("Reshape", ["x", "s"], ["y"])], {"x": [1, 4]}, {"y": None},
                      {"s": np.array([2, 2], np.int64)})
    _, graph = load_model(path)
    with pytest.raises(UnsupportedOpError, match=r"needs a batch axis first; tensor 'y' has shape \(2, 2\)"):
        Network(graph).forward({"x": np.ones((3, 4), np.float32)})


def test_a_weight_read_by_two_layers_is_one_parameter(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w"], ["h"], transB=1), H("Gemm", ["h", "w"], ["y"], transB=1)],
                      {"x": [1, 4]}, {"y": None}, {"w": rand(4, 4)})
    _, graph = load_model(path)
    net = Network(graph)
    assert net.params == ["w"]
    env, tape = net.forward({"x": np.ones((2, 4), np.float32)}, keep=True)
    pgrads = net.backward(tape, {net.output: np.ones(env[net.output].shape, np.float32)})
    assert list(pgrads) == ["w"]  # both uses' gradients summed into one


def test_max_pool_gives_each_output_s_gradient_to_one_input_even_on_ties(tmp_path):
    """After a Relu most windows tie at 0: each output's gradient goes to exactly one
    input of its window (the first maximum), never to several."""
    path = make_model(tmp_path / "m.onnx", [H("Relu", ["x"], ["r"]), H("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                      {"x": [1, 3, 6, 6]}, {"y": None})
    _, graph = load_model(path)
    net = Network(graph)
    net.input_grads = True
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32) - 1.0  # mostly negative: ties at 0
    env, tape = net.forward({"x": x}, keep=True)
    dy = np.random.default_rng(1).standard_normal(env["y"].shape).astype(np.float32)
    grads = {"y": dy}
    net.backward(tape, grads)
    # the gradient reaching the Relu's output, tile by tile
    _, cache, _ = tape[1]
    from weightless_mcu.train import ops

    dr = ops.pool_backward(cache[0], dy)
    tiles = dr.reshape(2, 3, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 3, 4)
    assert np.array_equal(np.count_nonzero(tiles, axis=-1), np.ones((2, 3, 3, 3), int) * (dy != 0))
    np.testing.assert_allclose(tiles.sum(axis=-1), dy, rtol=1e-6)
    assert (env["r"] == 0).reshape(2, 3, 3, 2, 3, 2).all(axis=(3, 5)).any()  # some tiles really tie
