"""Quantized (QDQ) models as onnxruntime's quantizer writes them: int8 firmware that
gives onnxruntime's int8 outputs, on the host and under QEMU, in a quarter of the RAM."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from weightless_mcu import compile_model, verify
from weightless_mcu.errors import UnsupportedOpError
from weightless_mcu.lowering.quantized import multiplier_shift
from weightless_mcu.qemu import run_firmware
from weightless_mcu.resources import firmware_dir
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_image

from .conftest import REPO, make_model, rand

H = helper.make_node


class _Calibration(CalibrationDataReader):
    """count inputs "x" of the given shape, standard normal with seeds 100, 101, ..."""

    def __init__(self, shape: tuple[int, ...], count: int):
        self._it = iter([{"x": rand(*shape, seed=100 + i)} for i in range(count)])

    def get_next(self):
        return next(self._it, None)


def _mlp(tmp_path, n_in=27, hidden=42, n_out=6, relu=True):
    # sizes that leave remainders: rows beyond the kernel's blocks of 4, inputs beyond its words of 4
    nodes = [H("Gemm", ["x", "w1", "b1"], ["h"], transB=1)]
    nodes += [H("Relu", ["h"], ["r"])] if relu else [H("Identity", ["h"], ["r"])]
    nodes += [H("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    inits = {"w1": rand(hidden, n_in, seed=1, scale=0.3), "b1": rand(hidden, seed=2, scale=0.1),
             "w2": rand(n_out, hidden, seed=3, scale=0.3), "b2": rand(n_out, seed=4, scale=0.1)}
    return make_model(tmp_path / "mlp.onnx", nodes, {"x": [1, n_in]}, {"y": [1, n_out]}, inits)


def _quantized(tmp_path, per_channel=True, activations=QuantType.QInt8, **mlp):
    src = _mlp(tmp_path, **mlp)
    out = tmp_path / f"mlp_q_{int(per_channel)}_{activations.name}.onnx"
    quantize_static(str(src), str(out), _Calibration((1, onnx.load(src).graph.input[0].type.tensor_type.shape.dim[1].dim_value), 32),
                    quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=activations,
                    weight_type=QuantType.QInt8)
    return out


def _qdq(src, out, shape: tuple[int, ...], activations: QuantType):
    """src quantized by quantize_static (QDQ, per-channel int8 weights) on 16 calibration inputs."""
    quantize_static(str(src), str(out), _Calibration(shape, 16), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=activations, weight_type=QuantType.QInt8)
    return out


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("activations", [QuantType.QInt8, QuantType.QUInt8])
def test_qdq_mlp_on_the_host_gives_onnxruntimes_outputs_exactly(tmp_path, per_channel, activations):
    res = verify(_quantized(tmp_path, per_channel, activations), target="host", samples=64)
    assert res["match"] and res["max_abs_error"] == 0.0, res
    assert res["max_lsb_error"] == 0 and res["lsb_differing_share"] == 0.0
    assert [s["kernel"] for s in res["steps"]] == ["quantize", "fc_s8", "fc_s8", "dequantize"]


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_qdq_mlp_under_qemu_gives_onnxruntimes_outputs_exactly(tmp_path, target):
    res = verify(_quantized(tmp_path, True, QuantType.QInt8), target=target, samples=16)
    assert res["match"] and res["max_abs_error"] == 0.0, res
    assert res["instructions"] > 0


def test_int8_activations_take_a_quarter_of_the_arena(tmp_path):
    f32 = compile_model(_mlp(tmp_path, relu=True), tmp_path / "f32", target="host")
    q = compile_model(_quantized(tmp_path, True, QuantType.QInt8), tmp_path / "q", target="host")
    # float32: the hidden layer, 42 floats (input and output are the caller's); int8: the
    # quantized input and the hidden layer, 27 + 42 bytes, each region 16-byte aligned.
    assert f32["arena_lower_bound_bytes"] == 4 * 42 and f32["arena_bytes"] == 176
    assert q["arena_lower_bound_bytes"] == 27 + 42
    assert q["arena_bytes"] == 32 + 48


def test_multiplier_and_shift_are_the_float32_scale_exactly():
    rng = np.random.default_rng(0)
    reals = np.concatenate([rng.uniform(1e-6, 0.99, 500), 2.0 ** -rng.integers(1, 33, 50), [2.0 ** -32, 0.5, 1.0, 3.75]])
    reals = reals.astype(np.float32)
    mult, shift = multiplier_shift(reals)
    for r, m, s in zip(reals.tolist(), mult.tolist(), shift.tolist()):
        assert 1 <= s <= 62 and (1 << 30) <= m < (1 << 31)
        assert Fraction(m, 1 << s) == Fraction(r)
    tiny = multiplier_shift(np.array([2.0 ** -33, 1e-12], np.float32))
    assert tiny[0].tolist() == [0, 0]


def _round_half_even(x: Fraction) -> int:
    floor = x.numerator // x.denominator
    rem = x - floor
    return floor + (1 if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and floor % 2) else 0)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_c_requantize_rounds_the_exact_product_half_to_even(tmp_path, target):
    rng = np.random.default_rng(1)
    acc = [int(v) for v in rng.integers(-(1 << 24), 1 << 24, 300)]
    mult, shift = multiplier_shift(rng.uniform(1e-4, 0.9, 300).astype(np.float32))
    mult, shift = [int(v) for v in mult], [int(v) for v in shift]
    # exact ties, both parities and signs: acc * 2^30 / 2^31 = acc / 2
    for a in (1, 3, 5, -1, -3, -5, 2, -2, (1 << 31) - 1, -(1 << 31)):
        acc.append(a), mult.append(1 << 30), shift.append(31)
    # a product beyond int32 saturates
    acc.append((1 << 31) - 1), mult.append((1 << 31) - 1), shift.append(1)
    # sums of products and a bias near the int32 limits, as the kernels pass them (|acc| < 2^32)
    for a in ((1 << 32) - 1, -(1 << 32) + 1, 3 * (1 << 30) + 7, -3 * (1 << 30) - 5):
        acc.append(a), mult.append(int(rng.integers(1 << 30, 1 << 31))), shift.append(int(rng.integers(33, 63)))
    inc = tmp_path / "wl_requantize_cases.inc"
    inc.write_text(f"#define WL_REQ_CASES {len(acc)}u\n"
                   f"static const int64_t wl_req_acc[] = {{{', '.join(f'(int64_t){a}LL' for a in acc)}}};\n"
                   f"static const int32_t wl_req_mult[] = {{{', '.join(map(str, mult))}}};\n"
                   f"static const int32_t wl_req_shift[] = {{{', '.join(map(str, shift))}}};\n")
    header = ("int wl_requantize_probe_run(const float *in, float *out);\n#define WL_HARNESS_INPUT_SIZE 1\n"
              f"#define WL_HARNESS_OUTPUT_SIZE {len(acc)}\n#define WL_HARNESS_RUN(in, out) wl_requantize_probe_run(in, out)\n")
    fw = firmware_dir()
    elf = build_image(get_target(target), tmp_path / "build", [REPO / "tests" / "c" / "wl_requantize_probe.c"],
                      [tmp_path, fw / "include"], header)
    out = run_firmware(elf, get_target(target), np.zeros((1, 1), np.float32), len(acc), model="requantize").outputs[0]
    got = out.view(np.int32).tolist()
    want = [max(-(1 << 31), min((1 << 31) - 1, _round_half_even(Fraction(a * m, 1 << s)))) for a, m, s in zip(acc, mult, shift)]
    assert got == want


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_c_requantize_s8_rounds_as_the_exact_product_and_clamps(tmp_path, target):
    """The layers' output step (wl_requantize_s8): the 64-bit product of an int32 sum plus an int32
    bias, rounded half to even on its high word for shifts from 32, through wl_requantize below."""
    rng = np.random.default_rng(2)
    n = 400
    real = np.concatenate([rng.uniform(1e-5, 0.45, n - 50), rng.uniform(0.5, 0.9, 50)]).astype(np.float32)
    mult, shift = (v.astype(np.int64) for v in multiplier_shift(real))
    offset = rng.integers(-128, 128, n)
    bias = rng.integers(-(1 << 31), 1 << 31, n)
    # sums that land the result near the int8 range, where the rounding shows
    target_q = rng.integers(-160, 160, n)
    acc = np.clip(np.round(target_q / real.astype(np.float64)) - bias + rng.integers(-3, 4, n), -(1 << 30), 1 << 30)
    acc, bias, mult, shift, offset = (list(map(int, v)) for v in (acc, bias, mult, shift, offset))
    for k in range(24):  # exact ties: (acc + bias) * 2^30 / 2^s with (acc + bias) an odd multiple of 2^(s - 31)
        s = 32 + k % 8
        total = (2 * int(rng.integers(-100, 100)) + 1) << (s - 31)
        b = int(rng.integers(-(1 << 31), 1 << 31)) if k % 2 else 0
        if abs(total - b) >= 1 << 30:
            b = 0
        acc.append(total - b), bias.append(b), mult.append(1 << 30), shift.append(s), offset.append(int(k % 5) - 2)
    inc = tmp_path / "wl_requantize_cases.inc"
    inc.write_text(f"#define WL_REQ_S8_CASES {len(acc)}u\n"
                   + "".join(f"static const int32_t wl_s8_{name}[] = {{{', '.join(map(str, v))}}};\n"
                             for name, v in (("acc", acc), ("bias", bias), ("mult", mult), ("shift", shift), ("offset", offset))))
    header = ("int wl_requantize_s8_probe_run(const float *in, float *out);\n#define WL_HARNESS_INPUT_SIZE 1\n"
              f"#define WL_HARNESS_OUTPUT_SIZE {len(acc)}\n#define WL_HARNESS_RUN(in, out) wl_requantize_s8_probe_run(in, out)\n")
    elf = build_image(get_target(target), tmp_path / "build", [REPO / "tests" / "c" / "wl_requantize_probe.c"],
                      [tmp_path, firmware_dir() / "include"], header)
    got = run_firmware(elf, get_target(target), np.zeros((1, 1), np.float32), len(acc), model="requantize").outputs[0]
    want = [max(-128, min(127, _round_half_even(Fraction((a + b) * m, 1 << s)) + o))
            for a, b, m, s, o in zip(acc, bias, mult, shift, offset)]
    assert got.view(np.int32).tolist() == want
    assert len(set(want)) > 100 and sum(s >= 32 for s in shift) > 300  # the fast path, over the whole range


def test_per_axis_activation_quantization_is_refused_naming_the_node(tmp_path):
    nodes = [H("QuantizeLinear", ["x", "s", "z"], ["xq"], axis=1, name="quant_x"),
             H("DequantizeLinear", ["xq", "s", "z"], ["y"], axis=1)]
    path = make_model(tmp_path / "pa.onnx", nodes, {"x": [1, 4]}, {"y": [1, 4]},
                      {"s": np.full(4, 0.1, np.float32), "z": np.zeros(4, np.int8)})
    with pytest.raises(UnsupportedOpError, match="quant_x.*per-tensor"):
        compile_model(path, tmp_path / "out", target="host")
    assert not (tmp_path / "out").exists()


def test_int16_quantization_is_refused_naming_the_node(tmp_path):
    nodes = [H("QuantizeLinear", ["x", "s", "z"], ["xq"], name="quant16"), H("DequantizeLinear", ["xq", "s", "z"], ["y"])]
    path = make_model(tmp_path / "q16.onnx", nodes, {"x": [1, 4]}, {"y": [1, 4]},
                      {"s": np.float32(0.1), "z": np.int16(0)}, opset=21)
    with pytest.raises(UnsupportedOpError, match="quant16.*int16"):
        compile_model(path, tmp_path / "out", target="host")


def test_relu_and_clip_between_the_layer_and_its_quantize_become_the_clamp(tmp_path):
    """QDQ written by hand (the quantizer drops a Relu before a QuantizeLinear; other tools
    keep it): Gemm -> Relu / Clip -> QuantizeLinear folds into one int8 layer."""
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (8, 12)).astype(np.int8)
    ws = rng.uniform(0.002, 0.01, 8).astype(np.float32)
    xs, ys = np.float32(0.02), np.float32(0.01)
    b = rng.integers(-2000, 2000, 8).astype(np.int32)
    for act in ("Relu", "Clip"):
        nodes = [H("QuantizeLinear", ["x", "xs", "xz"], ["xq"]), H("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
                 H("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0), H("DequantizeLinear", ["bq", "bs"], ["bd"], axis=0),
                 H("Gemm", ["xd", "wd", "bd"], ["h"], transB=1),
                 H(act, ["h", "lo", "hi"] if act == "Clip" else ["h"], ["r"]),
                 H("QuantizeLinear", ["r", "ys", "yz"], ["yq"]), H("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
        inits = {"xs": xs, "xz": np.int8(3), "wq": w, "ws": ws, "wz": np.zeros(8, np.int8), "bq": b,
                 "bs": (xs * ws).astype(np.float32), "ys": ys, "yz": np.int8(-20), "lo": np.float32(-0.3), "hi": np.float32(0.45)}
        path = make_model(tmp_path / f"{act}.onnx", nodes, {"x": [1, 12]}, {"y": [1, 8]}, inits)
        res = verify(path, target="host", samples=64)
        assert [s["kernel"] for s in res["steps"]] == ["quantize", "fc_s8", "dequantize"], act
        assert res["match"] and res["max_abs_error"] == 0.0, (act, res)


def test_int8_outputs_may_differ_by_one_step_on_at_most_one_percent():
    from weightless_mcu.api import _compare_lsb

    ref = [np.zeros((10, 20), np.float32)]
    outs = [{"name": "y", "shape": [1, 20], "lsb": 0.5}]
    one = ref[0].copy()
    one[0, 0] = 0.5
    assert _compare_lsb([one], ref, outs) == {"max_lsb_error": 1, "lsb_differing_share": 0.005}
    two = one.copy()
    two[3, 4] = -1.0
    assert _compare_lsb([two], ref, outs)["max_lsb_error"] == 2
    assert _compare_lsb([one], ref, [{"name": "y", "shape": [1, 20]}]) is None


def test_quantize_dequantize_round_trip_of_an_activation(tmp_path):
    """x -> QuantizeLinear -> DequantizeLinear, int8 and uint8, values beyond the range, at
    exact halves of a step and not finite: the quantize kernel rounds half to even and
    saturates as onnxruntime does."""
    for zp in (np.int8(-5), np.uint8(130)):
        nodes = [H("QuantizeLinear", ["x", "s", "z"], ["xq"]), H("DequantizeLinear", ["xq", "s", "z"], ["y"])]
        path = make_model(tmp_path / f"rt_{zp.dtype}.onnx", nodes, {"x": [1, 64]}, {"y": [1, 64]},
                          {"s": np.float32(0.125), "z": zp})
        halves = (np.arange(64, dtype=np.float32) - 32) * np.float32(0.0625)  # k/2 steps: ties both ways
        x = np.stack([halves, rand(64, seed=5, scale=30.0), rand(64, seed=6, scale=3.0)])
        x[2, :3] = [np.nan, np.inf, -np.inf]  # NaN saturates low, as onnxruntime's vector max does
        np.savez(tmp_path / "x.npz", x=x)
        res = verify(path, target="host", inputs=tmp_path / "x.npz")
        assert [s["kernel"] for s in res["steps"]] == ["quantize", "dequantize"]
        assert res["match"] and res["max_abs_error"] == 0.0, (zp.dtype, res)


def test_compression_options_on_a_quantized_model_say_the_int8_layers_stay_as_they_are(tmp_path):
    from weightless_mcu.compress import CompressionSettings
    from weightless_mcu.compress.settings import LayerSettings

    said: list[str] = []
    m = compile_model(_quantized(tmp_path), tmp_path / "out", target="host",
                      compression=CompressionSettings(LayerSettings(density=0.3), {}), progress=said.append)
    assert any("2 int8 layer(s) stay uncompressed" in s for s in said), said
    assert m["compression_ratio"] == 1.0


def test_scales_and_zero_points_from_constant_nodes(tmp_path):
    """Some exporters write the quantization parameters as Constant nodes, not initializers."""
    nodes = [H("Constant", [], ["s"], value=helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [0.05])),
             H("Constant", [], ["z"], value=helper.make_tensor("z", onnx.TensorProto.UINT8, [], [140])),
             H("QuantizeLinear", ["x", "s", "z"], ["xq"]), H("DequantizeLinear", ["xq", "s", "z"], ["y"])]
    path = make_model(tmp_path / "const.onnx", nodes, {"x": [1, 32]}, {"y": [1, 32]})
    res = verify(path, target="host", samples=4)
    assert [s["kernel"] for s in res["steps"]] == ["quantize", "dequantize"]
    assert res["match"] and res["max_abs_error"] == 0.0, res


def test_a_dequantize_with_other_parameters_than_its_quantize_is_refused(tmp_path):
    nodes = [H("QuantizeLinear", ["x", "s", "z"], ["xq"]), H("DequantizeLinear", ["xq", "s", "z2"], ["y"], name="deq")]
    path = make_model(tmp_path / "mismatch.onnx", nodes, {"x": [1, 8]}, {"y": [1, 8]},
                      {"s": np.float32(0.1), "z": np.int8(0), "z2": np.int8(3)})
    with pytest.raises(UnsupportedOpError, match="deq.*zero point"):
        compile_model(path, tmp_path / "out", target="host")



def _cnn(tmp_path):
    """Convolutions of every kind the int8 kernel takes: padded, strided and dilated, depthwise,
    pointwise; then MaxPool and Flatten (float between a dequantize and a quantize) and a Gemm."""
    nodes = [H("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), H("Relu", ["c1"], ["r1"]),
             H("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1]),
             H("Conv", ["c2", "w3", "b3"], ["c3"], group=12, pads=[1, 1, 1, 1]), H("Relu", ["c3"], ["r3"]),
             H("Conv", ["r3", "w4", "b4"], ["c4"]), H("MaxPool", ["c4"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             H("Flatten", ["p"], ["f"]), H("Gemm", ["f", "w5", "b5"], ["y"], transB=1)]
    inits = {"w1": rand(8, 3, 3, 3, seed=1, scale=0.3), "b1": rand(8, seed=2, scale=0.1),
             "w2": rand(12, 8, 3, 3, seed=3, scale=0.2), "b2": rand(12, seed=4, scale=0.1),
             "w3": rand(12, 1, 3, 3, seed=5, scale=0.3), "b3": rand(12, seed=6, scale=0.1),
             "w4": rand(16, 12, 1, 1, seed=7, scale=0.3), "b4": rand(16, seed=8, scale=0.1),
             "w5": rand(5, 64, seed=9, scale=0.2), "b5": rand(5, seed=10, scale=0.1)}
    src = make_model(tmp_path / "cnn.onnx", nodes, {"x": [1, 3, 12, 12]}, {"y": [1, 5]}, inits)

    return _qdq(src, tmp_path / "cnn_q.onnx", (1, 3, 12, 12), QuantType.QInt8)


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m3"])
def test_qdq_cnn_gives_onnxruntimes_outputs_exactly(tmp_path, target):
    x = np.stack([rand(3, 12, 12, seed=500 + i, scale=1.5) for i in range(24 if target == "host" else 6)])
    np.savez(tmp_path / "x.npz", x=x)
    res = verify(_cnn(tmp_path), target=target, inputs=tmp_path / "x.npz")
    kernels = [s["kernel"] for s in res["steps"]]
    assert kernels.count("conv2d_s8") == 3 and kernels.count("depthwise_conv2d_s8") == 1
    assert "fc_s8" in kernels and "conv2d" not in kernels
    assert res["match"] and res["max_lsb_error"] == 0, res



def _depthwise(tmp_path):
    """The depthwise kernel's paths: 3x3 windows inside the input at strides 1 and 2 (odd plane
    sizes; unpadded, so the last window's row ends at the plane's edge), a padded 5x5 and a dilated
    3x3 window; a depthwise multiplier of 2 and an odd number of channels go to the general kernel."""
    nodes = [H("Conv", ["x", "w1", "b1"], ["c1"], group=6, strides=[2, 2], pads=[1, 1, 1, 1]),
             H("Relu", ["c1"], ["r1"]),
             H("Conv", ["r1", "w2", "b2"], ["c2"], group=6),
             H("Conv", ["c2", "w3", "b3"], ["c3"], group=6, pads=[2, 2, 2, 2]),
             H("Conv", ["c3", "w4", "b4"], ["c4"], group=6, dilations=[2, 2], pads=[2, 1, 2, 1]),
             H("Conv", ["c4", "w5", "b5"], ["c5"], group=6),
             H("Conv", ["c5", "w6", "b6"], ["y"])]
    inits = {"w1": rand(6, 1, 3, 3, seed=1, scale=0.4), "b1": rand(6, seed=2, scale=0.1),
             "w2": rand(6, 1, 3, 3, seed=3, scale=0.4), "b2": rand(6, seed=4, scale=0.1),
             "w3": rand(6, 1, 5, 5, seed=5, scale=0.3), "b3": rand(6, seed=6, scale=0.1),
             "w4": rand(6, 1, 3, 3, seed=7, scale=0.4), "b4": rand(6, seed=8, scale=0.1),
             "w5": rand(12, 1, 3, 3, seed=9, scale=0.4), "b5": rand(12, seed=10, scale=0.1),
             "w6": rand(5, 12, 1, 1, seed=11, scale=0.4), "b6": rand(5, seed=12, scale=0.1)}
    src = make_model(tmp_path / "dw.onnx", nodes, {"x": [1, 6, 19, 17]}, {"y": None}, inits)

    return _qdq(src, tmp_path / "dw_q.onnx", (1, 6, 19, 17), QuantType.QUInt8)


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m3"])
def test_qdq_depthwise_convolutions_give_onnxruntimes_outputs_exactly(tmp_path, target):
    res = verify(_depthwise(tmp_path), target=target, samples=16 if target == "host" else 4)
    assert [s["kernel"] for s in res["steps"]] == ["quantize", *["depthwise_conv2d_s8"] * 4, "conv2d_s8",
                                                   "conv2d_s8", "dequantize"]
    assert res["match"] and res["max_lsb_error"] == 0, res


def test_qdq_conv1d_gives_onnxruntimes_outputs_exactly(tmp_path):
    nodes = [H("Conv", ["x", "w", "b"], ["c"], pads=[2, 1], strides=[2], dilations=[2]), H("Relu", ["c"], ["y"])]
    src = make_model(tmp_path / "c1d.onnx", nodes, {"x": [1, 4, 30]}, {"y": None},
                     {"w": rand(6, 4, 3, seed=1, scale=0.3), "b": rand(6, seed=2, scale=0.1)})

    out = _qdq(src, tmp_path / "c1d_q.onnx", (1, 4, 30), QuantType.QUInt8)
    res = verify(out, target="host", samples=32)
    assert [s["kernel"] for s in res["steps"]] == ["quantize", "conv2d_s8", "dequantize"]
    assert res["match"] and res["max_lsb_error"] == 0, res


def _residual(tmp_path, count_include_pad):
    """A residual block (Add of two int8 tensors with their own scales, then Relu), padded max
    and average pooling and global average pooling: every int8 op besides the layers."""
    nodes = [H("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), H("Relu", ["c1"], ["r1"]),
             H("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             H("Add", ["c2", "r1"], ["s"]), H("Relu", ["s"], ["r2"]),
             H("MaxPool", ["r2"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             H("AveragePool", ["m"], ["a"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
               count_include_pad=count_include_pad),
             H("GlobalAveragePool", ["a"], ["g"]), H("Flatten", ["g"], ["f"]), H("Gemm", ["f", "w3", "b3"], ["y"], transB=1)]
    inits = {"w1": rand(8, 3, 3, 3, seed=1, scale=0.3), "b1": rand(8, seed=2, scale=0.1),
             "w2": rand(8, 8, 3, 3, seed=3, scale=0.2), "b2": rand(8, seed=4, scale=0.1),
             "w3": rand(4, 8, seed=5, scale=0.5), "b3": rand(4, seed=6, scale=0.1)}
    src = make_model(tmp_path / f"res{count_include_pad}.onnx", nodes, {"x": [1, 3, 10, 10]}, {"y": [1, 4]}, inits)

    return _qdq(src, tmp_path / f"res{count_include_pad}_q.onnx", (1, 3, 10, 10), QuantType.QInt8)


@pytest.mark.parametrize("target,count_include_pad", [("host", 0), ("host", 1), ("cortex-m4", 0), ("cortex-m3", 1)])
def test_qdq_residual_block_and_pooling_stay_int8(tmp_path, target, count_include_pad):
    x = np.stack([rand(3, 10, 10, seed=700 + i, scale=1.5) for i in range(24 if target == "host" else 6)])
    np.savez(tmp_path / "x.npz", x=x)
    res = verify(_residual(tmp_path, count_include_pad), target=target, inputs=tmp_path / "x.npz")
    kernels = [s["kernel"] for s in res["steps"]]
    assert kernels.count("add_s8") == 1 and kernels.count("pool2d_s8") == 3, kernels
    assert "pool2d" not in kernels and "binary" not in kernels
    assert res["match"] and res["max_lsb_error"] == 0, res


def _average_pools(tmp_path, opset):
    """Average pooling of every kind onnxruntime adds up in its own order, each its own output."""
    pools = {"p_2x2": dict(kernel_shape=[2, 2], strides=[2, 2]),  # columns first (before opset 19)
             "p_3x3": dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             "p_3x3_inc": dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
             "p_3x3_s3": dict(kernel_shape=[3, 3], strides=[3, 3]),  # row by row
             "p_whole": dict(kernel_shape=[12, 12])}  # four lanes (before opset 19)
    nodes = [H("Conv", ["x", "w", "b"], ["c"]), H("Relu", ["c"], ["r"])]
    nodes += [H("AveragePool", ["r"], [name], **attrs) for name, attrs in pools.items()]
    nodes += [H("GlobalAveragePool", ["r"], ["g"])]
    inits = {"w": rand(4, 3, 1, 1, seed=11, scale=0.5), "b": rand(4, seed=12, scale=0.1)}
    outputs = {name: None for name in [*pools, "g"]}
    src = make_model(tmp_path / f"pools{opset}.onnx", nodes, {"x": [1, 3, 12, 12]}, outputs, inits, opset=opset)
    return _qdq(src, tmp_path / f"pools{opset}_q.onnx", (1, 3, 12, 12), QuantType.QInt8)


@pytest.mark.parametrize("target,opset", [("host", 13), ("host", 19), ("cortex-m4", 13)])
def test_int8_average_pooling_rounds_as_onnxruntimes_float_kernels(tmp_path, target, opset):
    """An average that lies on a half step of the output (a 2x2 window whose scales are equal,
    one time in four) is decided by the float32 rounding of onnxruntime's sum: the firmware adds
    in the same order as the kernel onnxruntime picks for each pooling, so every output is equal."""
    model = _average_pools(tmp_path, opset)
    res = verify(model, target=target, samples=48 if target == "host" else 12)
    assert [s["kernel"] for s in res["steps"]].count("pool2d_s8") == 6
    assert res["match"] and res["max_lsb_error"] == 0 and res["lsb_differing_share"] == 0.0, res


def _elementwise_branches(tmp_path, activations):
    """Sigmoid, Tanh, HardSwish and LeakyRelu (then Relu) of one int8 tensor of 140 elements,
    concatenated: each input of the Concat with its own scale."""
    nodes = [H("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), H("Sigmoid", ["c"], ["s"]), H("Tanh", ["c"], ["t"]),
             H("HardSwish", ["c"], ["h"]), H("LeakyRelu", ["c"], ["l0"], alpha=0.1), H("Relu", ["l0"], ["l"]),
             H("Concat", ["s", "t", "h", "l"], ["y"], axis=1)]
    inits = {"w": rand(4, 2, 3, 3, seed=21, scale=0.6), "b": rand(4, seed=22, scale=0.2)}
    src = make_model(tmp_path / "branches.onnx", nodes, {"x": [1, 2, 5, 7]}, {"y": [1, 16, 5, 7]}, inits, opset=14)
    return _qdq(src, tmp_path / f"branches_{activations.name}.onnx", (1, 2, 5, 7), activations)


@pytest.mark.parametrize("target,activations", [("host", QuantType.QInt8), ("host", QuantType.QUInt8),
                                                ("cortex-m4", QuantType.QInt8)])
def test_elementwise_ops_and_concat_stay_int8_and_equal_onnxruntime(tmp_path, target, activations):
    """An elementwise op between a DequantizeLinear and a QuantizeLinear is a table of its 256
    results, computed as onnxruntime computes them; Concat copies, or requantizes through a table
    where an input's parameters differ. No float32 buffer is left between them."""
    res = verify(_elementwise_branches(tmp_path, activations), target=target, samples=64 if target == "host" else 8)
    assert res["match"] and res["max_lsb_error"] == 0 and res["lsb_differing_share"] == 0.0, res
    kernels = [s["kernel"] for s in res["steps"]]
    assert kernels.count("lut_s8") == 4 and kernels.count("concat_s8") == 1, kernels
    assert kernels.count("dequantize") == 1 and not {"unary", "concat", "binary"} & set(kernels), kernels


def test_a_table_agrees_with_the_op_computed_independently():
    """The table of Sigmoid against numpy: the same integers but where the float32 sigmoid of
    onnxruntime and numpy's differ in the last bits at a rounding boundary (a step at most)."""
    from weightless_mcu.ir import Graph, Node
    from weightless_mcu.quantized import int8_table

    graph = Graph("g", [], {}, [], [], 13)
    x_quant, y_quant = (0.05, 7), (1 / 256, -128)
    table = int8_table(graph, [Node("Sigmoid", "s", ["a"], ["b"])], x_quant, y_quant).astype(np.int64)
    v = np.arange(-128, 128)
    real = (v - x_quant[1]).astype(np.float32) * np.float32(x_quant[0])
    want = np.clip(np.rint(1 / (1 + np.exp(-real.astype(np.float64))) / y_quant[0]) + y_quant[1], -128, 127)
    assert np.abs(table - want).max() <= 1 and (table != want).sum() <= 3
    assert table[0] < table[128] < table[255] and np.all(np.diff(table) >= 0)  # monotonic, like the op


def _broadcast_binary(tmp_path):
    """Squeeze-and-excitation: a tensor times the sigmoid of its channel means (Mul broadcast over
    the plane), plus the means (Add broadcast), less the tensor (Sub, one shape), then a layer."""
    nodes = [H("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), H("GlobalAveragePool", ["c"], ["g"]),
             H("Sigmoid", ["g"], ["s"]), H("Mul", ["c", "s"], ["m"]), H("Add", ["m", "g"], ["a"]),
             H("Sub", ["a", "c"], ["d"]), H("Conv", ["d", "w2", "b2"], ["y"])]
    inits = {"w": rand(4, 3, 3, 3, seed=31, scale=0.5), "b": rand(4, seed=32, scale=0.2),
             "w2": rand(4, 4, 1, 1, seed=33, scale=0.5), "b2": rand(4, seed=34, scale=0.2)}
    src = make_model(tmp_path / "se.onnx", nodes, {"x": [1, 3, 5, 7]}, {"y": [1, 4, 5, 7]}, inits)
    return _qdq(src, tmp_path / "se_q.onnx", (1, 3, 5, 7), QuantType.QInt8)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_broadcast_mul_add_and_sub_of_int8_tensors_equal_onnxruntime(tmp_path, target):
    res = verify(_broadcast_binary(tmp_path), target=target, samples=64 if target == "host" else 8)
    assert res["match"] and res["max_lsb_error"] == 0 and res["lsb_differing_share"] == 0.0, res
    kernels = [s["kernel"] for s in res["steps"]]
    assert kernels.count("binary_s8") == 3 and "binary" not in kernels and kernels.count("dequantize") == 1, kernels


def test_the_scratch_the_compiler_reserves_is_what_the_kernels_use(tmp_path):
    """The arena scratch of each int8 convolution is sized twice, by the lowering (Python) and by
    WL_CONV_S8_SCRATCH / WL_DW_S8_SCRATCH (C, what the kernel uses): they must agree on every
    kernel path (depthwise at strides 1 and 2, padded, dilated; the general kernel)."""
    from weightless_mcu.codegen import build_program
    from weightless_mcu.frontend import load_model
    from weightless_mcu.passes import run_passes

    model = _depthwise(tmp_path)
    manifest = compile_model(model, tmp_path / "out", target="host")
    _, graph = load_model(model)
    run_passes(graph)
    program = build_program(graph, manifest["name"])
    macros = {"conv2d_s8": "WL_CONV_S8_SCRATCH", "depthwise_conv2d_s8": "WL_DW_S8_SCRATCH"}
    checked = [(i, s.scratch, macros[s.kernel]) for i, s in enumerate(program.steps) if s.kernel in macros]
    assert len(checked) == 6
    assert c_scratch_sizes(tmp_path, tmp_path / "out", manifest["name"], checked) == [s for _, s, _ in checked]


def c_scratch_sizes(tmp_path, out, name: str, checked) -> list[int]:
    """What the C macros give for the steps (index, _, macro) of the model generated in out, as a
    host program that includes its model.c prints them."""
    import subprocess

    prints = "".join(f'    printf("%d\\n", (int)({m}(&wl_{name}_l{i}_params)));\n' for i, _, m in checked)
    (tmp_path / "probe.c").write_text(f'#include <stdio.h>\n#include "model.c"\nint main(void)\n{{\n{prints}    return 0;\n}}\n')
    exe = tmp_path / "probe"
    cc = subprocess.run(["gcc", "-std=c99", f"-I{out}", f"-I{out / 'runtime'}", str(tmp_path / "probe.c"),
                         *map(str, (out / "runtime").glob("*.c")), "-lm", "-o", str(exe)], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    return [int(v) for v in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]


def _softmax_model(tmp_path, quantized_out: bool, op: str = "Softmax"):
    """x -> QuantizeLinear -> DequantizeLinear -> Softmax (or LogSoftmax) over axis 1 of (1, 6, 3, 5)
    [-> Q -> DQ]."""
    consts = {"xs": np.array(0.07, np.float32), "xz": np.array(-9, np.int8),
              "ys": np.array(1 / 256, np.float32), "yz": np.array(-128, np.int8)}
    nodes = [H("QuantizeLinear", ["x", "xs", "xz"], ["q"]), H("DequantizeLinear", ["q", "xs", "xz"], ["f"]),
             H(op, ["f"], ["s" if quantized_out else "y"], axis=1)]
    if op == "LogSoftmax":  # values in [-10, 0]
        consts.update(ys=np.array(10 / 255, np.float32), yz=np.array(127, np.int8))
    if quantized_out:
        nodes += [H("QuantizeLinear", ["s", "ys", "yz"], ["sq"]), H("DequantizeLinear", ["sq", "ys", "yz"], ["y"])]
    return make_model(tmp_path / f"{op}_{int(quantized_out)}.onnx", nodes, {"x": [1, 6, 3, 5]}, {"y": [1, 6, 3, 5]},
                      consts)


@pytest.mark.parametrize("target,quantized_out,op", [("host", True, "Softmax"), ("host", False, "Softmax"),
                                                     ("cortex-m4", True, "Softmax"), ("cortex-m3", False, "Softmax"),
                                                     ("host", True, "LogSoftmax"), ("cortex-m4", False, "LogSoftmax")])
def test_softmax_of_an_int8_tensor_to_int8_or_float(tmp_path, target, quantized_out, op):
    """Softmax reads the int8 tensor and writes int8 (or float32, a classifier's output) with the
    float32 arithmetic of the dequantize -> softmax -> quantize kernels, without their buffers."""
    res = verify(_softmax_model(tmp_path, quantized_out, op), target=target, samples=48 if target == "host" else 8,
                 tolerance=0.0)
    kernels = [s["kernel"] for s in res["steps"]]
    assert kernels == ["quantize", "softmax_s8"] + ["dequantize"] * quantized_out, kernels
    if quantized_out:
        assert res["match"] and res["max_lsb_error"] == 0, res
    else:  # float32 out: onnxruntime's expf is not newlib's; within the float kernels' tolerance
        assert res["max_rel_error"] < 1e-5, res
    assert res["arena_bytes"] <= 16 * ((90 + 15) // 16) * (1 + quantized_out)  # int8 tensors only


def _tflite2onnx_style(tmp_path):
    """The pattern tflite2onnx writes for a uint8 TFLite model (per its source: every operator a
    float one): float32 weights (the uint8 ones dequantized) behind QuantizeLinear ->
    DequantizeLinear, a float32 bias (the int32 one times the input scale times the weight
    scale), uint8 Q/DQ pairs on the activations."""
    rng = np.random.default_rng(8)
    xs, xz, ys, yz, zs, zz = 0.02, 128, 0.03, 0, 0.05, 131
    w1s, w1z, w2s, w2z = 0.004, 128, 0.006, 128  # symmetric uint8 weights: less 128, they fit int8
    w1 = ((rng.integers(1, 256, (5, 3, 3, 3)) - w1z).astype(np.float32) * np.float32(w1s)).astype(np.float32)
    w2 = ((rng.integers(1, 256, (4, 5 * 6 * 6)) - w2z).astype(np.float32) * np.float32(w2s)).astype(np.float32)
    b1 = (rng.integers(-900, 900, 5).astype(np.float32) * np.float32(xs * w1s)).astype(np.float32)
    b2 = (rng.integers(-900, 900, 4).astype(np.float32) * np.float32(ys * w2s)).astype(np.float32)
    u8 = lambda v: np.array(v, np.uint8)  # noqa: E731
    f32 = lambda v: np.array(v, np.float32)  # noqa: E731
    consts = {"xs": f32(xs), "xz": u8(xz), "ys": f32(ys), "yz": u8(yz), "zs": f32(zs), "zz": u8(zz),
              "w1s": f32(w1s), "w1z": u8(w1z), "w2s": f32(w2s), "w2z": u8(w2z), "w1": w1, "w2": w2, "b1": b1, "b2": b2,
              "shape": np.array([1, -1], np.int64)}
    nodes = [H("QuantizeLinear", ["x", "xs", "xz"], ["xq"]), H("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
             H("QuantizeLinear", ["w1", "w1s", "w1z"], ["w1q"]), H("DequantizeLinear", ["w1q", "w1s", "w1z"], ["w1f"]),
             H("Conv", ["xf", "w1f", "b1"], ["c"]), H("Relu", ["c"], ["r"]),
             H("QuantizeLinear", ["r", "ys", "yz"], ["rq"]), H("DequantizeLinear", ["rq", "ys", "yz"], ["rf"]),
             H("Reshape", ["rf", "shape"], ["f"]), H("QuantizeLinear", ["f", "ys", "yz"], ["fq"]),
             H("DequantizeLinear", ["fq", "ys", "yz"], ["ff"]),
             H("QuantizeLinear", ["w2", "w2s", "w2z"], ["w2q"]), H("DequantizeLinear", ["w2q", "w2s", "w2z"], ["w2f"]),
             H("Gemm", ["ff", "w2f", "b2"], ["g"], transB=1),
             H("QuantizeLinear", ["g", "zs", "zz"], ["gq"]), H("DequantizeLinear", ["gq", "zs", "zz"], ["y"])]
    return make_model(tmp_path / "tflite2onnx_style.onnx", nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 4]}, consts)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_uint8_models_in_tflite2onnx_form_run_as_int8_layers(tmp_path, target):
    """Weights quantized from float32 constants at compile time and a float32 bias taken back to
    int32 at the accumulator's scale: both layers run as int8 kernels (their uint8 weights less
    the zero point fit int8 here), within verify's rule against onnxruntime's float32 layers."""
    res = verify(_tflite2onnx_style(tmp_path), target=target, samples=64 if target == "host" else 8)
    assert [s["kernel"] for s in res["steps"]] == ["quantize", "conv2d_s8", "fc_s8", "dequantize"], res["steps"]
    assert res["match"] and res["max_lsb_error"] <= 1 and res["lsb_differing_share"] <= 0.01, res


def _constant_operands(tmp_path):
    """A per-channel scale (Mul by a constant broadcast over the plane) and a constant offset
    (Add), stored by the quantizer as int8 constants behind DequantizeLinear."""
    nodes = [H("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), H("Mul", ["c", "k"], ["m"]),
             H("Add", ["m", "o"], ["a"]), H("Conv", ["a", "w2", "b2"], ["y"])]
    inits = {"w": rand(4, 3, 3, 3, seed=41, scale=0.5), "b": rand(4, seed=42, scale=0.2),
             "k": rand(1, 4, 1, 1, seed=43, scale=1.0), "o": rand(1, 4, 5, 7, seed=44, scale=0.3),
             "w2": rand(3, 4, 1, 1, seed=45, scale=0.5), "b2": rand(3, seed=46, scale=0.1)}
    src = make_model(tmp_path / "consts.onnx", nodes, {"x": [1, 3, 5, 7]}, {"y": [1, 3, 5, 7]}, inits)
    return _qdq(src, tmp_path / "consts_q.onnx", (1, 3, 5, 7), QuantType.QUInt8)


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_an_int8_tensor_and_a_quantized_constant_combine_in_int8(tmp_path, target):
    model = _constant_operands(tmp_path)
    dq_of_constants = [n for n in onnx.load(model).graph.node if n.op_type == "DequantizeLinear"
                       and n.input[0] in ("k_quantized", "o_quantized")]
    assert len(dq_of_constants) == 2  # the form this test is about
    res = verify(model, target=target, samples=64 if target == "host" else 8)
    assert res["match"] and res["max_lsb_error"] == 0 and res["lsb_differing_share"] == 0.0, res
    kernels = [s["kernel"] for s in res["steps"]]
    assert kernels == ["quantize", "conv2d_s8", "binary_s8", "add_s8", "conv2d_s8", "dequantize"], kernels
