"""Every supported op, in small models built with onnx.helper, compiled to C and
run against onnxruntime: all on the host build, a representative set under QEMU."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from weightless_mcu import verify

from .conftest import make_model, rand

H = helper.make_node


def _conv_case(**attrs):
    cin, cout, k = attrs.pop("cin", 3), attrs.pop("cout", 6), attrs.pop("k", 3)
    group = attrs.get("group", 1)
    hw = attrs.pop("hw", 9)
    return ([H("Conv", ["x", "w", "b"], ["y"], **attrs)], {"x": [1, cin, hw, hw]}, {"y": None},
            {"w": rand(cout, cin // group, k, k, seed=1), "b": rand(cout, seed=2)})


CASES = {
    "gemm_transB": ([H("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=0.5, beta=2.0)], {"x": [1, 20]}, {"y": None},
                    {"w": rand(7, 20), "b": rand(7, seed=1)}),
    "gemm_no_bias": ([H("Gemm", ["x", "w"], ["y"])], {"x": [1, 13]}, {"y": None}, {"w": rand(13, 9)}),
    "gemm_transA_row_bias": ([H("Gemm", ["x", "w", "b"], ["y"], transA=1)], {"x": [6, 3]}, {"y": None},
                             {"w": rand(6, 5), "b": rand(3, 5, seed=1)}),
    "matmul_add_relu": ([H("MatMul", ["x", "w"], ["m"]), H("Add", ["m", "b"], ["a"]), H("Relu", ["a"], ["y"])],
                        {"x": [1, 17]}, {"y": None}, {"w": rand(17, 11), "b": rand(11, seed=1)}),
    "matmul_3d_const": ([H("MatMul", ["x", "w"], ["y"])], {"x": [1, 4, 6]}, {"y": None}, {"w": rand(6, 5)}),
    "matmul_two_activations": ([H("MatMul", ["x", "z"], ["y"])], {"x": [2, 3, 4], "z": [2, 4, 5]}, {"y": None}, {}),
    "add_broadcast": ([H("Add", ["x", "c"], ["y"])], {"x": [1, 4, 3, 5]}, {"y": None}, {"c": rand(4, 1, 1)}),
    "add_residual_relu": ([H("Relu", ["x"], ["r"]), H("Add", ["r", "x"], ["s"]), H("Relu", ["s"], ["y"])],
                          {"x": [1, 2, 3, 3]}, {"y": None}, {}),
    "add_two_inputs_broadcast": ([H("Add", ["x", "z"], ["y"])], {"x": [1, 3, 1, 5], "z": [1, 1, 4, 1]}, {"y": None}, {}),
    "relu": ([H("Relu", ["x"], ["y"])], {"x": [1, 30]}, {"y": None}, {}),
    "transpose_size2_axes": ([H("Transpose", ["x"], ["y"], perm=[0, 2, 1])], {"x": [1, 2, 3]}, {"y": None}, {}),
    "add_scalars": ([H("Add", ["x", "c"], ["y"])], {"x": []}, {"y": None}, {"c": np.array(1.5, np.float32)}),
    "clip": ([H("Clip", ["x", "lo", "hi"], ["y"])], {"x": [1, 30]}, {"y": None},
             {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}),
    "clip_min_only": ([H("Clip", ["x", "lo"], ["y"])], {"x": [1, 30]}, {"y": None}, {"lo": np.array(0.1, np.float32)}),
    "sigmoid": ([H("Sigmoid", ["x"], ["y"])], {"x": [1, 30]}, {"y": None}, {}),
    "tanh": ([H("Tanh", ["x"], ["y"])], {"x": [1, 30]}, {"y": None}, {}),
    "leaky_relu": ([H("LeakyRelu", ["x"], ["y"], alpha=0.2)], {"x": [1, 30]}, {"y": None}, {}),
    "hard_sigmoid": ([H("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4)], {"x": [1, 30]}, {"y": None}, {}),
    "hard_swish": ([H("HardSwish", ["x"], ["y"])], {"x": [1, 30]}, {"y": None}, {}, 14),
    # The math of audio front ends: an STFT's magnitude (two Convs, |X|^2 = re^2 + im^2, its square
    # root) and a log of it; exponents as their cheap forms (2, 0.5) and as powf.
    "stft_magnitude_log": ([H("Conv", ["x", "wr"], ["re"], strides=[4]), H("Conv", ["x", "wi"], ["im"], strides=[4]),
                            H("Pow", ["re", "two"], ["re2"]), H("Pow", ["im", "two"], ["im2"]),
                            H("Add", ["re2", "im2"], ["p"]), H("Sqrt", ["p"], ["mag"]), H("Add", ["mag", "eps"], ["m1"]),
                            H("Log", ["m1"], ["y"])],
                           {"x": [1, 1, 64]}, {"y": None},
                           {"wr": rand(6, 1, 8, seed=1), "wi": rand(6, 1, 8, seed=2), "two": np.array(2.0, np.float32),
                            "eps": np.array(1e-3, np.float32)}),
    "pow_constant_forms": ([H("Abs", ["x"], ["a"]), H("Pow", ["a", "half"], ["h"]), H("Pow", ["h", "e15"], ["g"]),
                            H("Pow", ["g", "one"], ["f"]), H("Pow", ["f", "minus1"], ["r"]), H("Pow", ["r", "three"], ["y"])],
                           {"x": [1, 24]}, {"y": None},
                           {"half": np.array(0.5, np.float32), "e15": np.array([1.5], np.float32),
                            "one": np.array(1.0, np.float32), "minus1": np.array(-1.0, np.float32),
                            "three": np.array(3, np.int64)}),
    "pow_exponent_tensor": ([H("Abs", ["x"], ["a"]), H("Pow", ["a", "e"], ["y"])], {"x": [1, 3, 4]}, {"y": None},
                            {"e": rand(3, 1, seed=3)}),
    "pow_runtime_exponent": ([H("Abs", ["x"], ["a"]), H("Pow", ["a", "z"], ["y"])], {"x": [1, 2, 5], "z": [1, 5]},
                             {"y": None}, {}),
    "exp_neg_reciprocal": ([H("Neg", ["x"], ["n"]), H("Exp", ["n"], ["e"]), H("Add", ["e", "one"], ["d"]),
                            H("Reciprocal", ["d"], ["y"])], {"x": [1, 30]}, {"y": None}, {"one": np.array(1.0, np.float32)}),
    "gelu_erf_block": ([H("MatMul", ["x", "w"], ["h"]), H("Div", ["h", "sqrt2"], ["s"]), H("Erf", ["s"], ["e"]),
                        H("Add", ["e", "one"], ["e1"]), H("Mul", ["h", "e1"], ["m"]), H("Mul", ["m", "half"], ["y"])],
                       {"x": [1, 12]}, {"y": None},
                       {"w": rand(12, 16, seed=4), "sqrt2": np.array(np.sqrt(2), np.float32),
                        "one": np.array(1.0, np.float32), "half": np.array(0.5, np.float32)}),
    "gelu_op": ([H("Gelu", ["x"], ["g"]), H("Gelu", ["g"], ["y"], approximate="tanh")], {"x": [1, 30]}, {"y": None}, {}, 20),
    "min_max_broadcast": ([H("Max", ["x", "z", "c"], ["m"]), H("Min", ["m", "d"], ["y"])],
                          {"x": [1, 3, 4], "z": [1, 1, 4]}, {"y": None}, {"c": rand(3, 1, seed=5), "d": rand(4, seed=6)}),
    # two constants before the run-time tensor: the chain starts from the run-time one
    "min_constants_first": ([H("Min", ["c", "d", "x"], ["y"])], {"x": [1, 2, 5]}, {"y": None},
                            {"c": rand(5, seed=7), "d": rand(2, 1, seed=8)}),
    "max_one_input_relu": ([H("Max", ["x"], ["m"]), H("Relu", ["m"], ["y"])], {"x": [1, 10]}, {"y": None}, {}),
    # Resize as torch writes it: F.interpolate / nn.Upsample nearest (asymmetric, floor), bilinear
    # (pytorch_half_pixel or align_corners), by scales or by sizes; a sequence resized (3-D).
    "resize_nearest_torch": ([H("Resize", ["x", "", "s"], ["y"], mode="nearest", coordinate_transformation_mode="asymmetric",
                                nearest_mode="floor")], {"x": [1, 3, 4, 5]}, {"y": None},
                             {"s": np.array([1, 1, 2, 3], np.float32)}),
    "resize_bilinear_half_pixel": ([H("Resize", ["x", "", "s"], ["y"], mode="linear",
                                      coordinate_transformation_mode="pytorch_half_pixel")], {"x": [1, 2, 5, 4]},
                                   {"y": None}, {"s": np.array([1, 1, 2, 2], np.float32)}),
    "resize_bilinear_align_corners_sizes": ([H("Resize", ["x", "", "", "z"], ["y"], mode="linear",
                                               coordinate_transformation_mode="align_corners")], {"x": [1, 2, 5, 4]},
                                            {"y": None}, {"z": np.array([1, 2, 9, 7], np.int64)}),
    "resize_linear_downsample": ([H("Resize", ["x", "", "", "z"], ["y"], mode="linear")], {"x": [1, 2, 9, 8]},
                                 {"y": None}, {"z": np.array([1, 2, 4, 5], np.int64)}),
    "resize_sequence_linear": ([H("Resize", ["x", "", "", "z"], ["y"], mode="linear")], {"x": [1, 3, 5]}, {"y": None},
                               {"z": np.array([1, 3, 12], np.int64)}),
    "depth_to_space_dcr": ([H("DepthToSpace", ["x"], ["y"], blocksize=2)], {"x": [1, 8, 3, 2]}, {"y": None}, {}),
    "depth_to_space_crd": ([H("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD")], {"x": [1, 8, 3, 2]}, {"y": None}, {}),
    "space_to_depth": ([H("SpaceToDepth", ["x"], ["y"], blocksize=2)], {"x": [1, 3, 4, 6]}, {"y": None}, {}),
    "log_softmax": ([H("LogSoftmax", ["x"], ["y"], axis=1)], {"x": [1, 10, 2]}, {"y": None}, {}),
    "softmax_last": ([H("Softmax", ["x"], ["y"])], {"x": [1, 10]}, {"y": None}, {}),
    "softmax_axis1": ([H("Softmax", ["x"], ["y"], axis=1)], {"x": [1, 4, 3, 2]}, {"y": None}, {}),
    "conv_pad_stride": _conv_case(pads=[1, 1, 1, 1], strides=[2, 2]),
    "conv_asym_pads": _conv_case(pads=[0, 1, 2, 0], k=3),
    "conv_dilation": _conv_case(dilations=[2, 2], pads=[2, 2, 2, 2], hw=11),
    "conv_same_upper": _conv_case(auto_pad="SAME_UPPER", strides=[2, 2], hw=10),
    "conv_group": _conv_case(group=2, cin=4, cout=6, pads=[1, 1, 1, 1]),
    "conv_depthwise": _conv_case(group=5, cin=5, cout=5, pads=[1, 1, 1, 1], strides=[2, 2]),
    "conv_depthwise_multiplier": _conv_case(group=3, cin=3, cout=6, pads=[1, 1, 1, 1]),
    # The depthwise kernel's interior paths (3x3 unrolled at any stride, other windows as loops) and
    # its checked border, asymmetric pads; an input smaller than the window (no interior at all).
    "conv_depthwise_3x3_asym": _conv_case(group=4, cin=4, cout=4, pads=[1, 0, 2, 1], hw=9),
    "conv_depthwise_3x3_s2_valid": _conv_case(group=4, cin=4, cout=4, strides=[2, 2], hw=10),
    "conv_depthwise_5x5_dilated": _conv_case(group=3, cin=3, cout=3, k=5, dilations=[2, 2], pads=[2, 3, 1, 2],
                                             strides=[1, 2], hw=12),
    "conv_depthwise_tiny": _conv_case(group=2, cin=2, cout=2, pads=[1, 1, 1, 1], hw=1),
    # small planes, copied with their padding onto the stack: 6x6 padded, and SAME_UPPER at stride 2
    "conv_depthwise_small": _conv_case(group=4, cin=4, cout=4, pads=[1, 1, 1, 1], hw=6),
    "conv_depthwise_small_same_s2": _conv_case(group=4, cin=4, cout=4, auto_pad="SAME_UPPER", strides=[2, 2], hw=6),
    "conv_pointwise": _conv_case(k=1, cin=7, cout=9, hw=5),
    "conv_1x1_stride2": _conv_case(k=1, cin=4, cout=8, strides=[2, 2], hw=7),
    "conv_5x5_tail_channels": _conv_case(k=5, cin=2, cout=5, pads=[2, 2, 2, 2]),
    "conv_1d": ([H("Conv", ["x", "w", "b"], ["y"], pads=[1, 1])], {"x": [1, 3, 12]}, {"y": None},
                {"w": rand(4, 3, 3), "b": rand(4, seed=1)}),
    "conv_bn_relu": ([H("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                      H("BatchNormalization", ["c", "s", "t", "m", "v"], ["n"]), H("Relu", ["n"], ["y"])],
                     {"x": [1, 3, 6, 6]}, {"y": None},
                     {"w": rand(4, 3, 3, 3), "s": rand(4, seed=1), "t": rand(4, seed=2), "m": rand(4, seed=3),
                      "v": np.abs(rand(4, seed=4)) + 0.5}),
    "batchnorm_alone": ([H("BatchNormalization", ["x", "s", "t", "m", "v"], ["y"], epsilon=1e-3)], {"x": [1, 3, 4, 4]},
                        {"y": None}, {"s": rand(3, seed=1), "t": rand(3, seed=2), "m": rand(3, seed=3),
                                      "v": np.abs(rand(3, seed=4)) + 0.5}),
    "maxpool": ([H("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], {"x": [1, 3, 9, 9]}, {"y": None}, {}),
    "maxpool_ceil": ([H("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], {"x": [1, 2, 7, 7]}, {"y": None}, {}),
    "avgpool_pads": ([H("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], {"x": [1, 2, 6, 6]}, {"y": None}, {}),
    "avgpool_include_pad": ([H("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)],
                            {"x": [1, 2, 6, 6]}, {"y": None}, {}),
    "avgpool_valid": ([H("AveragePool", ["x"], ["y"], kernel_shape=[4, 4], strides=[4, 4], auto_pad="VALID")], {"x": [1, 3, 8, 8]}, {"y": None}, {}),
    "global_avgpool": ([H("GlobalAveragePool", ["x"], ["y"])], {"x": [1, 5, 4, 3]}, {"y": None}, {}),
    "flatten_gemm": ([H("Flatten", ["x"], ["f"]), H("Gemm", ["f", "w"], ["y"], transB=1)], {"x": [1, 2, 3, 3]}, {"y": None}, {"w": rand(4, 18)}),
    "reshape": ([H("Reshape", ["x", "s"], ["y"])], {"x": [1, 2, 3, 4]}, {"y": None}, {"s": np.array([1, -1], np.int64)}),
    "transpose_nhwc": ([H("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], {"x": [1, 3, 4, 5]}, {"y": None}, {}),
    "transpose_view": ([H("GlobalAveragePool", ["x"], ["p"]), H("Transpose", ["p"], ["t"], perm=[0, 2, 3, 1]),
                        H("Reshape", ["t", "s"], ["y"])], {"x": [1, 6, 2, 2]}, {"y": None}, {"s": np.array([1, 6], np.int64)}),
    "identity_dropout": ([H("Identity", ["x"], ["i"]), H("Dropout", ["i"], ["d"]), H("Relu", ["d"], ["y"])], {"x": [1, 8]}, {"y": None}, {}),
    "output_is_input_copy": ([H("Identity", ["x"], ["y"])], {"x": [1, 8]}, {"y": None}, {}),
    "two_outputs": ([H("Relu", ["x"], ["y"]), H("Sigmoid", ["x"], ["z"])], {"x": [1, 8]}, {"y": None, "z": None}, {}),
    "sub_mul_div": ([H("Sub", ["x", "c"], ["a"]), H("Mul", ["a", "x"], ["b"]), H("Div", ["b", "d"], ["y"])],
                    {"x": [1, 3, 4]}, {"y": None}, {"c": rand(4), "d": np.abs(rand(3, 1, seed=1)) + 1}),
    "reduce_mean_spatial": ([H("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1)], {"x": [1, 4, 3, 5]}, {"y": None}, {}),
    "reduce_mean_last_nokeep": ([H("ReduceMean", ["x"], ["y"], axes=[-1], keepdims=0)], {"x": [1, 4, 6]}, {"y": None}, {}),
    "reduce_max_channels": ([H("ReduceMax", ["x"], ["y"], axes=[1])], {"x": [1, 4, 3, 2]}, {"y": None}, {}),
    "reduce_sum_all": ([H("ReduceSum", ["x", "ax"], ["y"], keepdims=0)], {"x": [1, 4, 3]}, {"y": None}, {"ax": np.array([0, 1, 2], np.int64)}),
    "pad_constant": ([H("Pad", ["x", "p", "v"], ["y"])], {"x": [1, 2, 3, 4]}, {"y": None},
                     {"p": np.array([0, 0, 1, 2, 0, 1, 2, 0], np.int64), "v": np.array(1.5, np.float32)}),
    "pad_edge": ([H("Pad", ["x", "p"], ["y"], mode="edge")], {"x": [1, 2, 3, 4]}, {"y": None},
                 {"p": np.array([0, 0, 2, 1, 0, 0, 1, 3], np.int64)}),
    "pad_reflect": ([H("Pad", ["x", "p"], ["y"], mode="reflect")], {"x": [1, 2, 4, 5]}, {"y": None},
                    {"p": np.array([0, 0, 3, 1, 0, 0, 2, 4], np.int64)}),
    "pad_axes_reflect_1d": ([H("Pad", ["x", "p", "", "ax"], ["y"], mode="reflect")], {"x": [1, 3, 6]}, {"y": None},
                            {"p": np.array([2, 3], np.int64), "ax": np.array([-1], np.int64)}, 18),
    "prelu_channels": ([H("PRelu", ["x", "s"], ["y"])], {"x": [1, 3, 4, 4]}, {"y": None}, {"s": rand(3, 1, 1, seed=3)}),
    "concat_channels_three": ([H("Relu", ["x"], ["r"]), H("Concat", ["x", "r", "z"], ["y"], axis=1)],
                              {"x": [1, 2, 3, 3], "z": [1, 4, 3, 3]}, {"y": None}, {}),
    "concat_last_axis_const": ([H("Concat", ["c", "x"], ["y"], axis=-1)], {"x": [1, 3, 4]}, {"y": None},
                               {"c": rand(1, 3, 2, seed=5)}),
    "gather_axis1_negative": ([H("Gather", ["x", "i"], ["y"], axis=1)], {"x": [1, 5, 3]}, {"y": None},
                              {"i": np.array([4, -1, 0, 2], np.int64)}),
    "gather_2d_indices_last": ([H("Gather", ["x", "i"], ["y"], axis=-1)], {"x": [1, 2, 6]}, {"y": None},
                               {"i": np.array([[5, 0], [1, 1]], np.int64)}),
    "matmul_vector_b": ([H("MatMul", ["x", "v"], ["y"])], {"x": [1, 4, 6]}, {"y": None}, {"v": rand(6, seed=2)}),
    "matmul_batched_const": ([H("MatMul", ["x", "c"], ["y"])], {"x": [2, 3, 4]}, {"y": None}, {"c": rand(2, 4, 5, seed=3)}),
    "matmul_vector_a_batched": ([H("MatMul", ["x", "z"], ["y"])], {"x": [4], "z": [3, 4, 2]}, {"y": None}, {}),
    "conv_transpose_stride_pads_group": ([H("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 0, 1, 1],
                                            output_padding=[1, 0], group=2, dilations=[1, 2])],
                                         {"x": [1, 4, 5, 4]}, {"y": None}, {"w": rand(4, 3, 3, 2, seed=6), "b": rand(6, seed=7)}),
    "conv_transpose_1d_same": ([H("ConvTranspose", ["x", "w"], ["y"], strides=[2], auto_pad="SAME_UPPER")],
                               {"x": [1, 3, 7]}, {"y": None}, {"w": rand(3, 2, 4, seed=8)}),
    "conv_transpose_output_shape": ([H("ConvTranspose", ["x", "w", "b"], ["y"], strides=[3, 2], output_shape=[10, 8])],
                                    {"x": [1, 2, 3, 3]}, {"y": None}, {"w": rand(2, 3, 3, 3, seed=9), "b": rand(3, seed=1)}),
    "matmul_broadcast_batches": ([H("MatMul", ["x", "z"], ["y"])], {"x": [3, 1, 2, 4], "z": [1, 2, 4, 5]}, {"y": None}, {}),
    "matmul_const_a_broadcast": ([H("MatMul", ["c", "x"], ["y"])], {"x": [2, 1, 4, 3]}, {"y": None}, {"c": rand(3, 5, 4, seed=4)}),
    "slice_steps_negative": ([H("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], {"x": [1, 6, 7, 5]}, {"y": None},
                             {"st": np.array([1, -1, 0], np.int64), "en": np.array([6, -100, 99], np.int64),
                              "ax": np.array([1, 2, -1], np.int64), "sp": np.array([2, -2, 3], np.int64)}),
    "slice_opset9_attrs": ([H("Slice", ["x"], ["y"], starts=[1, 2], ends=[3, 1000], axes=[1, 2])], {"x": [1, 4, 6]}, {"y": None}, {}, 9),
    "split_uneven_channels": ([H("Split", ["x", "sp"], ["a", "b", "c"], axis=1), H("Concat", ["c", "a"], ["y"], axis=1),
                               H("Relu", ["b"], ["z"])], {"x": [1, 6, 3, 2]}, {"y": None, "z": None},
                              {"sp": np.array([2, 3, 1], np.int64)}),
    "split_num_outputs_last": ([H("Split", ["x"], ["a", "b"], axis=-1, num_outputs=2)], {"x": [1, 3, 5]},
                               {"a": None, "b": None}, {}, 18),
    "expand_broadcast": ([H("Expand", ["x", "s"], ["y"])], {"x": [1, 3, 1]}, {"y": None}, {"s": np.array([2, 1, 3, 4], np.int64)}),
    "tile_repeats": ([H("Tile", ["x", "r"], ["y"])], {"x": [1, 2, 3]}, {"y": None}, {"r": np.array([1, 3, 2], np.int64)}),
    "pad_wrap": ([H("Pad", ["x", "p"], ["y"], mode="wrap")], {"x": [1, 2, 3, 4]}, {"y": None},
                 {"p": np.array([0, 0, 2, 1, 0, 0, 1, 5], np.int64)}, 19),
    "if_constant_condition": ([H("Shape", ["x"], ["shp"]), H("Gather", ["shp", "zero"], ["n"], axis=0),
                               H("Equal", ["n", "one"], ["cond"]),
                               H("If", ["cond"], ["y"],
                                 then_branch=helper.make_graph([H("Squeeze", ["x", "ax"], ["sq"])], "then", [],
                                                               [helper.make_tensor_value_info("sq", 1, None)]),
                                 else_branch=helper.make_graph([H("Identity", ["x"], ["id"])], "else", [],
                                                               [helper.make_tensor_value_info("id", 1, None)]))],
                              {"x": [1, 4, 3]}, {"y": [4, 3]},
                              {"zero": np.array(0, np.int64), "one": np.array(1, np.int64), "ax": np.array([0], np.int64)}),
    "unused_scalar_input": ([H("Relu", ["x"], ["y"])], {"x": [1, 4], "r": []}, {"y": None}, {}),
    "constant_node_value_ints": ([H("Constant", [], ["s"], value_ints=[1, -1]), H("Reshape", ["x", "s"], ["y"])],
                                 {"x": [1, 2, 3]}, {"y": [1, 6]}, {}),
    "constant_folding": ([H("Shape", ["x"], ["shp"]), H("Gather", ["shp", "zero"], ["n"], axis=0),
                          H("Unsqueeze", ["n", "ax"], ["n1"]), H("Concat", ["n1", "minus1"], ["s"], axis=0),
                          H("Reshape", ["x", "s"], ["y"])],
                         {"x": [1, 2, 3]}, {"y": [1, 6]},
                         {"zero": np.array(0, np.int64), "ax": np.array([0], np.int64), "minus1": np.array([-1], np.int64)}),
}

QEMU_CASES = ["gemm_transB", "matmul_add_relu", "add_residual_relu", "conv_pad_stride", "conv_depthwise",
              "conv_depthwise_3x3_asym", "conv_depthwise_5x5_dilated", "conv_depthwise_small",
              "conv_pointwise", "conv_group", "maxpool", "reduce_mean_spatial", "avgpool_pads", "softmax_last", "log_softmax", "hard_swish", "transpose_nhwc", "sigmoid",
              "two_outputs", "pad_reflect", "pad_edge", "pad_constant", "prelu_channels",
              "concat_channels_three", "gather_axis1_negative",
              "matmul_batched_const", "conv_transpose_stride_pads_group", "matmul_broadcast_batches",
              "matmul_const_a_broadcast", "slice_steps_negative", "split_uneven_channels", "tile_repeats", "pad_wrap",
              "stft_magnitude_log", "pow_constant_forms", "pow_runtime_exponent", "gelu_erf_block", "gelu_op",
              "min_max_broadcast", "resize_bilinear_half_pixel", "resize_nearest_torch", "depth_to_space_dcr"]


def _check(tmp_path, case, target):
    nodes, inputs, outputs, inits, *opset = CASES[case]
    path = make_model(tmp_path / f"{case}.onnx", nodes, inputs, outputs, inits, *opset)
    res = verify(path, target=target, samples=3)
    assert res["match"], (case, target, res["max_rel_error"], res["max_abs_error"])
    assert res["max_rel_error"] <= 1e-5
    return res


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_on_host(tmp_path, case):
    _check(tmp_path, case, "host")


@pytest.mark.parametrize("case", QEMU_CASES)
def test_op_under_qemu(tmp_path, case):
    res = _check(tmp_path, case, "cortex-m4")
    assert res["instructions"] > 0


def test_fused_relu_changes_nothing_but_speed(tmp_path):
    """The fused activation clamps: negative pre-activations come out as exactly 0."""
    nodes, inputs, outputs, inits = CASES["matmul_add_relu"]
    path = make_model(tmp_path / "m.onnx", nodes, inputs, outputs, inits)
    out = tmp_path / "o.npz"
    res = verify(path, target="host", samples=4, outputs=out)
    y = np.load(out)["y"]
    assert res["match"] and (y == 0).any() and (y >= 0).all()


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_of_large_and_shifted_inputs_is_exact_to_float32(tmp_path, op):
    """ONNX's test_logsoftmax_large_number row (10000..10003): (x - max) must come before
    log(sum), or the result is rounded at 10003's magnitude (-3.4404297 for -3.4401896).
    Checked element by element against float64, not relative to the largest output;
    and against large positive and negative offsets, where Softmax needs its max subtracted."""
    path = make_model(tmp_path / "m.onnx", [H(op, ["x"], ["y"], axis=1)], {"x": [1, 4]}, {"y": [1, 4]})
    base = np.array([0.0, 1.0, 2.0, 3.0])
    x = np.stack([base + 10000.0, base - 10000.0, base + 200.0, base * 40.0]).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    assert verify(path, target="host", inputs=tmp_path / "x.npz", outputs=tmp_path / "y.npz")["match"]
    got = np.load(tmp_path / "y.npz")["y"].astype(np.float64)
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=1, keepdims=True)
    log_sm = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    want = log_sm if op == "LogSoftmax" else np.exp(log_sm)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-30)


def test_elementwise_kernels_link_only_the_math_their_ops_call(tmp_path):
    """wl_unary_f32 and wl_binary_f32 compile in only the ops a model uses (wl_model_config.h):
    a Sigmoid links expf and neither erff, powf nor tanhf; a Pow by 1.5 links powf; an Add
    nothing of libm."""
    from weightless_mcu import compile_model
    from weightless_mcu.report import read_elf
    from weightless_mcu.targets import get_target
    from weightless_mcu.toolchain import build_firmware

    def linked(case):
        nodes, inputs, outputs, inits, *opset = CASES[case]
        out = tmp_path / case
        compile_model(make_model(tmp_path / f"{case}.onnx", nodes, inputs, outputs, inits, *opset), out)
        image = read_elf(build_firmware(out, get_target("cortex-m4"), tmp_path / f"build-{case}"))
        return {f for f in image.functions if f in ("expf", "erff", "powf", "tanhf", "logf", "sqrtf")}

    assert linked("sigmoid") == {"expf"}
    assert "powf" in linked("pow_constant_forms")
    assert linked("gelu_op") == {"erff", "tanhf"}
    assert linked("add_broadcast") == set()
