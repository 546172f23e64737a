"""Weightless tables on int8 layers: a float model compressed (with or without retraining) and
quantized with --quantize int8 keeps each layer's table, with K int8 values in the layer's weight
scale, and runs as int8 firmware that decodes as it goes. Checked against onnxruntime on the int8
model quantize_static makes of the decoded model (host, cortex-m4, cortex-m3), and that model's
own int8 weights against the tables."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from weightless_mcu import compile_model, verify
from weightless_mcu.api import Retraining
from weightless_mcu.compress import make_settings
from weightless_mcu.compress.settings import CompressionSettings, LayerSettings
from weightless_mcu.export import graph_to_onnx
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train.network import Network
from weightless_mcu.train.trainer import Objective, TrainConfig, train

from .conftest import make_model, rand
from .test_quantized import c_scratch_sizes
from .test_retraining import blobs, mlp

H = helper.make_node


def _cnn(tmp_path):
    """Every int8 weight path: a general conv whose 6 channels are a block of 4 and two single
    ones (18 taps, padded to 20), a grouped conv (2 groups of 5 channels), a depthwise and a
    pointwise conv, and a fully connected layer of 40 inputs (two decode chunks) and 10 outputs
    (two blocks of 4 and two single rows)."""
    nodes = [H("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv"), H("Relu", ["c1"], ["r1"]),
             H("Conv", ["r1", "w2", "b2"], ["c2"], group=2, pads=[1, 1, 1, 1], strides=[2, 2], name="grouped"),
             H("Conv", ["c2", "w3", "b3"], ["c3"], group=10, pads=[1, 1, 1, 1], name="depthwise"),
             H("Relu", ["c3"], ["r3"]),
             H("Conv", ["r3", "w4", "b4"], ["c4"], name="pointwise"),
             H("MaxPool", ["c4"], ["p"], kernel_shape=[2, 2], strides=[2, 2]), H("Flatten", ["p"], ["f"]),
             H("Gemm", ["f", "w5", "b5"], ["y"], transB=1, name="fc")]
    inits = {"w1": rand(6, 2, 3, 3, seed=1, scale=0.4), "b1": rand(6, seed=2, scale=0.1),
             "w2": rand(10, 3, 3, 3, seed=3, scale=0.4), "b2": rand(10, seed=4, scale=0.1),
             "w3": rand(10, 1, 3, 3, seed=5, scale=0.4), "b3": rand(10, seed=6, scale=0.1),
             "w4": rand(10, 10, 1, 1, seed=7, scale=0.4), "b4": rand(10, seed=8, scale=0.1),
             "w5": rand(10, 40, seed=9, scale=0.3), "b5": rand(10, seed=10, scale=0.1)}
    return make_model(tmp_path / "cnn.onnx", nodes, {"x": [1, 2, 9, 9]}, {"y": [1, 10]}, inits)


# Per layer: Bloomier tables at t = 6, 8 and 10 (the decode's three paths; fc: the streaming path at t < 8) and
# dense indices.
LAYERS = {"conv": dict(encoding="bloomier", bits=10), "grouped": dict(encoding="bloomier", bits=6),
          "depthwise": dict(encoding="codebook"), "pointwise": dict(encoding="bloomier", bits=8),
          "fc": dict(encoding="bloomier", bits=6)}
ENCODED_KERNELS = {"conv2d_encoded_s8", "depthwise_conv2d_encoded_s8", "fc_encoded_s8"}


def _settings():
    return CompressionSettings(LayerSettings(density=0.5, clusters=5, min_positions=0), LAYERS,
                               given=frozenset({"density", "clusters", "min_positions"}))


def _quantize_here(src, dst, calibration, **options):
    """onnxruntime's quantize_static run here (QDQ, int8, per channel unless overridden) on the
    samples of the calibration .npz, in order."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    cal = np.load(calibration)["x"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"x": c[None]} for c in cal])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, **options)


def _data(tmp_path):
    np.savez(tmp_path / "cal.npz", x=np.stack([rand(2, 9, 9, seed=100 + i) for i in range(16)]))
    np.savez(tmp_path / "x.npz", x=np.stack([rand(2, 9, 9, seed=300 + i) for i in range(24)]))


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m3"])
def test_compressed_model_quantized_runs_on_its_tables_as_int8_firmware(tmp_path, target):
    src = _cnn(tmp_path)
    _data(tmp_path)
    res = verify(src, target=target, inputs=tmp_path / "x.npz", quantize="int8", calibration_data=tmp_path / "cal.npz",
                 compression=_settings())
    kernels = [s["kernel"] for s in res["steps"]]
    assert ENCODED_KERNELS <= set(kernels) and kernels.count("conv2d_encoded_s8") == 3, kernels
    assert not {"conv2d", "fc", "fc_s8", "conv2d_s8", "fc_encoded", "conv2d_encoded"} & set(kernels), kernels
    # Bit-equal to onnxruntime running the int8 model of the decoded model.
    assert res["match"] and res["max_lsb_error"] == 0 and res["lsb_differing_share"] == 0, res
    assert res["reference"] == "int8 model the decoded model was quantized to"
    layers = {r["name"]: r for r in res["layers"]}
    for name, want in LAYERS.items():
        r = layers[name]
        assert r["encoding"] == want["encoding"] and r["clusters"] == 5 and r["dense_bytes"] * 4 == r["float32_bytes"]
        if "bits" in want:
            assert r["bits"] == want["bits"]
    # The ratio is against the int8 model: int8 weights, and per output channel an int32 bias, multiplier and
    # shift; what is stored instead of the weights is the tables.
    per_channel = 12 * (6 + 10 + 10 + 10 + 10)
    assert res["weights_float32_bytes"] == 6 * 18 + 10 * 27 + 10 * 9 + 10 * 10 + 10 * 40 + per_channel
    assert res["weights_stored_bytes"] == sum(r["bytes"] for r in layers.values()) + per_channel


def _initializers(path) -> dict:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_the_tables_decode_to_the_int8_weights_quantize_static_wrote(tmp_path):
    """Independently of the firmware: the int8 model written for a compressed model has one
    scale per compressed weight tensor, at most K distinct non-zero int8 values per layer, zeros
    where the decoded float model has them, and the decoded float weights within half a step of
    its dequantized ones; the generated C holds int8 codebooks of those values."""
    src = _cnn(tmp_path)
    _data(tmp_path)
    out = tmp_path / "out"
    saved = {}
    import weightless_mcu.api as api

    real = api._prepare

    def spy(model, *a, **k):  # keep the decoded float model and the int8 model it was quantized to
        result = real(model, *a, **k)
        saved["int8" if "int8" in str(model) else "float"] = (model, onnx.load(str(model)) if "int8" in str(model)
                                                              else api.graph_to_onnx(result[1]))
        return result

    api._prepare = spy
    try:
        manifest = compile_model(src, out, target="cortex-m4", quantize="int8", calibration_data=tmp_path / "cal.npz",
                                 compression=_settings())
    finally:
        api._prepare = real
    q = {t.name: numpy_helper.to_array(t) for t in saved["int8"][1].graph.initializer}
    decoded = {t.name: numpy_helper.to_array(t) for t in saved["float"][1].graph.initializer}
    dq = {n.input[0]: n for n in saved["int8"][1].graph.node if n.op_type == "DequantizeLinear"}
    model_c = (out / "model.c").read_text()
    for w in ("w1", "w2", "w3", "w4", "w5"):
        ints = q[f"{w}_quantized"].astype(np.int64)
        node = dq[f"{w}_quantized"]
        scale = q[node.input[1]]
        assert scale.size == 1 and not q[node.input[2]].any()  # per tensor, symmetric
        values = np.unique(ints[ints != 0])
        assert 1 <= values.size <= 5
        assert not ints[decoded[w] == 0].any()  # (a shared value under half a step may become 0 too)
        assert np.all(np.abs(ints * np.float32(scale) - decoded[w]) <= scale / 2 * (1 + 1e-6))
        assert all(f"{v}," in model_c for v in values)
    codebooks = [line for line in model_c.splitlines() if "_codebook[" in line and "static const" in line]
    assert len(codebooks) == 5 and all("int8_t" in c for c in codebooks), codebooks
    assert manifest["quantization"]["float_model"] == str(src)


def test_a_table_larger_than_the_int8_weights_gives_way_unless_asked_for(tmp_path):
    """With the encoding left to the compiler, a layer whose table with its int8 codebook takes
    at least its plain int8 bytes is stored plainly (the same weights); an encoding the user
    gave is kept."""
    src = _cnn(tmp_path)
    _data(tmp_path)
    def settings(**given):
        return CompressionSettings(LayerSettings(density=0.5, clusters=15, min_positions=0, **given), {},
                                   given=frozenset({"density", "clusters", "min_positions", *given}))

    manifest = compile_model(src, tmp_path / "auto", target="host", quantize="int8",
                             calibration_data=tmp_path / "cal.npz", compression=settings())
    layers = {r["name"]: r for r in manifest["layers"]}
    # 15 values: 4-bit indices, 15 B of codebook and 32 B of struct outweigh 90 and 100 int8 weights
    assert [(layers[n]["encoding"], layers[n]["bytes"]) for n in ("depthwise", "pointwise")] == \
        [("dense", 90), ("dense", 100)]
    assert layers["fc"]["encoding"] == "sparse" and layers["fc"]["bytes"] < 400  # the smallest at density 0.5
    assert all(r["bytes"] < r["dense_bytes"] for r in layers.values() if r["encoding"] != "dense")
    kernels = [s["kernel"] for s in manifest["steps"]]
    assert "depthwise_conv2d_s8" in kernels and "fc_encoded_s8" in kernels
    forced = compile_model(src, tmp_path / "forced", target="host", quantize="int8",
                           calibration_data=tmp_path / "cal.npz", compression=settings(encoding="codebook"))
    kept = {r["name"]: r for r in forced["layers"]}
    assert [(kept[n]["encoding"], kept[n]["bytes"] > kept[n]["dense_bytes"]) for n in ("depthwise", "pointwise")] == \
        [("codebook", True)] * 2


def test_retrained_and_quantized_mlp_keeps_its_accuracy_as_int8_firmware(tmp_path):
    """Retraining in float32, then int8 with the training images as calibration data: the
    firmware equals onnxruntime on the int8 model, whose accuracy is that of the compressed
    float model within a point."""
    path = mlp(tmp_path / "m.onnx", hidden=64)
    x, y = blobs(1500)
    _, graph = load_model(path)  # trained first, as a user's model is
    run_passes(graph)
    net = Network(graph)
    train(net, x[:1200], y[:1200], Objective(net, True), TrainConfig(epochs=4, lr=3e-3), lambda _: None, "t")
    net.export()
    onnx.save(graph_to_onnx(graph), path)
    np.savez(tmp_path / "train.npz", x=x[:1200], y=y[:1200])
    np.savez(tmp_path / "cal.npz", x=x[:200])
    np.savez(tmp_path / "test.npz", x=x[1200:], y=y[1200:])
    res = verify(path, target="cortex-m4", data=tmp_path / "test.npz", quantize="int8",
                 calibration_data=tmp_path / "cal.npz",
                 compression=make_settings(dict(density=0.2, clusters=4, bits=8, encoding="bloomier")),
                 retraining=Retraining(tmp_path / "train.npz", TrainConfig(epochs=2, lr=3e-3), seeds=2))
    assert res["match"] and res["predictions_match"] == res["samples"] == 300, res
    assert "fc_encoded_s8" in [s["kernel"] for s in res["steps"]]
    assert res["accuracy_float"] > 0.9 and abs(res["accuracy"] - res["accuracy_float"]) <= 0.01
    assert res["retraining"]["validation_accuracy_original"] > 0.9


def test_encoded_int8_kernels_take_per_channel_requantization(tmp_path):
    """The encoded int8 kernels with a multiplier and shift per output channel: an int8 model
    (per-channel scales) whose int8 weights take five values in every layer, each layer stored as
    a table of them (a Bloomier table's false positives written into the reference model too),
    run on the host and on cortex-m4 against onnxruntime on that int8 model."""
    from weightless_mcu.api import _prepare, _Prepared, verify_prepared
    from weightless_mcu.compress import encode_indices
    from weightless_mcu.compress.int8_tables import int8_layout
    from weightless_mcu.quantized import QCONV, QFC
    from weightless_mcu.targets import get_target

    src = _cnn(tmp_path)
    model = onnx.load(str(src))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:  # weights: a scale per output channel times five shared integers
        if init.name.startswith("w"):
            shape = numpy_helper.to_array(init).shape
            q = rng.choice([-127, -60, 0, 35, 127], size=shape).astype(np.float32)
            q.reshape(shape[0], -1)[:, 0] = 127  # every channel reaches 127: its scale is exactly s_c
            s = rng.uniform(0.002, 0.01, shape[0]).astype(np.float32).reshape(-1, *[1] * (len(shape) - 1))
            init.CopyFrom(numpy_helper.from_array((q * s).astype(np.float32), init.name))
    onnx.save(model, tmp_path / "shared.onnx")
    _data(tmp_path)
    _quantize_here(tmp_path / "shared.onnx", tmp_path / "q.onnx", tmp_path / "cal.npz")
    reference, graph, _ = _prepare(tmp_path / "q.onnx", None, None, None, lambda _: None)
    inits = {t.name: t for t in reference.graph.initializer}
    settings = {"conv": LayerSettings(encoding="bloomier", bits=6), "fc": LayerSettings(encoding="bloomier", bits=8)}
    for node in [n for n in graph.nodes if n.op in (QFC, QCONV)]:
        w, layout = int8_layout(graph, node)
        assert np.unique(node.attrs["w_scale"]).size > 1  # per channel
        flat = layout.walk(w).astype(np.int64)
        book = np.array([-127, -60, 35, 127])
        indices = np.searchsorted(book, flat).astype(np.uint32) + 1
        indices[flat == 0] = 0
        enc, _ = encode_indices(node.name, node.inputs[1], indices, book.astype(np.int8),
                                settings.get(node.name, LayerSettings(encoding="codebook")), 7)
        graph.encodings[node.inputs[1]] = enc
        decoded = layout.unwalk(enc.decode().astype(np.float32)).astype(np.int8)
        graph.tensors[node.inputs[1]].data = decoded.astype(np.int64)
        name = {"conv": "w1", "grouped": "w2", "depthwise": "w3", "pointwise": "w4", "fc": "w5"}[node.name]
        inits[f"{name}_quantized"].CopyFrom(numpy_helper.from_array(decoded, f"{name}_quantized"))
    assert sum(e.kind == "bloomier" and e.false_positives > 0 for e in graph.encodings.values()) >= 1
    prep = _Prepared(graph, [], reference, None, None, None)
    for target in ("host", "cortex-m4"):
        res = verify_prepared(prep, get_target(target), model=src, inputs=tmp_path / "x.npz")
        assert ENCODED_KERNELS <= {s["kernel"] for s in res["steps"]}
        assert res["match"] and res["max_lsb_error"] == 0 and res["lsb_differing_share"] == 0, (target, res)


def test_the_scratch_of_the_encoded_int8_convolutions_is_what_the_kernels_use(tmp_path):
    """Sized twice, by the lowering and by WL_CONV_ENC_S8_SCRATCH / WL_DW_ENC_S8_SCRATCH (what the
    kernels use): they agree on the general, grouped, depthwise and pointwise convolutions."""
    from weightless_mcu.api import _prepared
    from weightless_mcu.codegen import build_program

    src = _cnn(tmp_path)
    _data(tmp_path)
    manifest = compile_model(src, tmp_path / "out", target="host", quantize="int8",
                             calibration_data=tmp_path / "cal.npz", compression=_settings())
    with _prepared(src, None, None, _settings(), None, "int8", tmp_path / "cal.npz", "minmax", lambda _: None) as prep:
        program = build_program(prep.graph, manifest["name"])
    macros = {"conv2d_encoded_s8": "WL_CONV_ENC_S8_SCRATCH", "depthwise_conv2d_encoded_s8": "WL_DW_ENC_S8_SCRATCH"}
    checked = [(i, s.scratch, macros[s.kernel]) for i, s in enumerate(program.steps) if s.kernel in macros]
    assert len(checked) == 4
    assert c_scratch_sizes(tmp_path, tmp_path / "out", manifest["name"], checked) == [s for _, s, _ in checked]


def test_a_convolution_decodes_as_many_channels_as_the_arena_has_room_for(tmp_path, monkeypatch):
    """The channel block of wl_conv2d_encoded_s8 grows into the arena's free space at its step:
    fewer passes of its im2col, the arena's size unchanged, every other region where it was."""
    import weightless_mcu.codegen as codegen
    from weightless_mcu.api import _prepared

    src = _cnn(tmp_path)
    _data(tmp_path)
    with _prepared(src, None, None, _settings(), None, "int8", tmp_path / "cal.npz", "minmax", lambda _: None) as prep:
        grown = codegen.build_program(prep.graph, "m")
        monkeypatch.setattr(codegen, "GROWABLE", {})
        plain = codegen.build_program(prep.graph, "m")
    blocks = {s.layer: s.params.block for s in grown.steps if s.kernel == "conv2d_encoded_s8"}
    assert blocks == {"conv": 4, "grouped": 4, "pointwise": 8}  # pointwise: 10 channels, two row blocks at once
    assert {s.layer: s.params.block for s in plain.steps if s.kernel == "conv2d_encoded_s8"} == \
        {"conv": 4, "grouped": 4, "pointwise": 4}
    assert grown.arena.size == plain.arena.size
    moved = {r.root for r in grown.arena.regions} ^ {r.root for r in plain.arena.regions}
    assert not moved and all(grown.arena.offset[t] == plain.arena.offset[t] for t in plain.arena.offset)
    i = next(k for k, s in enumerate(grown.steps) if s.layer == "pointwise")
    mine = next(r for r in grown.arena.regions if r.root == codegen.scratch_name(i))
    live = [r for r in grown.arena.regions if r.first <= i <= r.last and r is not mine]
    assert all(r.offset + r.size <= mine.offset or mine.offset + mine.size <= r.offset for r in live)
    assert mine.offset + mine.size <= grown.arena.size


def test_the_channel_block_takes_the_room_up_to_the_next_live_region():
    """grow_channel_block: whole row blocks of channels within the room, at most a group's whole
    row blocks; _grow_scratch: the room is up to the nearest region live at that step."""
    import dataclasses

    from weightless_mcu.arena import ArenaPlan, Region
    from weightless_mcu.codegen import _grow_scratch, scratch_name
    from weightless_mcu.lowering.quantized import ConvEncS8Params, ConvS8Params, grow_channel_block
    from weightless_mcu.lowering.step import Step

    conv = ConvS8Params(8, 12, 12, 22, 8, 8, 5, 5, 1, 1, 0, 0, 1, 1, 1, 0, 0, -128, 127)  # kpad 200, 5 row blocks
    step = Step("conv2d_encoded_s8", "c", ("x",), "y", ConvEncS8Params(dataclasses.astuple(conv), 4), scratch=1800)
    assert [grow_channel_block(step, room).params.block for room in (0, 799, 800, 1599, 1600, 10**6)] == \
        [4, 4, 8, 8, 12, 20]
    assert grow_channel_block(step, 800).scratch == 2600

    def plan(*regions):
        return ArenaPlan(6000, 0, list(regions), {})
    scratch = Region(scratch_name(0), 1800, 0, 0, 0)
    for regions, block in [((Region("a", 100, 0, 0, 2700), Region("b", 100, 0, 0, 5000)), 8),  # nearest live: a
                           ((Region("a", 100, 1, 1, 2000), Region("b", 100, 0, 0, 4400)), 16),  # a is not live then
                           ((Region("a", 100, 0, 0, 1800),), 4)]:
        steps, arena = _grow_scratch([step], plan(scratch, *regions))
        assert steps[0].params.block == block, regions
        assert next(r for r in arena.regions if r.root == scratch.root).size == steps[0].scratch


def test_a_layer_the_quantizer_leaves_in_float32_keeps_its_table(tmp_path):
    """A layer left in float32 in the int8 model (here excluded from quantization) keeps its table
    with float32 values read off its weights, and runs the float kernel on it between the int8
    layers; the firmware equals onnxruntime on that model."""
    from weightless_mcu.api import _prepare, _Prepared, verify_prepared
    from weightless_mcu.compress.int8_tables import int8_tables
    from weightless_mcu.targets import get_target

    src = _cnn(tmp_path)
    _data(tmp_path)
    _, fgraph, freports = _prepare(src, None, None, _settings(), lambda _: None)
    onnx.save(graph_to_onnx(fgraph), tmp_path / "decoded.onnx")
    _quantize_here(tmp_path / "decoded.onnx", tmp_path / "q.onnx", tmp_path / "cal.npz", nodes_to_exclude=["fc"],
                   extra_options={"TensorQuantOverrides": {t: [{"symmetric": True}] for t in fgraph.encodings}})
    reference, graph, _ = _prepare(tmp_path / "q.onnx", None, None, None, lambda _: None)
    reports = {r.name: r for r in int8_tables(fgraph, freports, graph)}
    assert reports["fc"].encoding == "bloomier" and reports["fc"].dense_bytes == reports["fc"].float32_bytes
    assert reports["conv"].dense_bytes * 4 == reports["conv"].float32_bytes
    res = verify_prepared(_Prepared(graph, list(reports.values()), reference, None, None, None), get_target("host"),
                          model=src, inputs=tmp_path / "x.npz")
    kernels = [s["kernel"] for s in res["steps"]]
    assert "fc_encoded" in kernels and "conv2d_encoded_s8" in kernels, kernels
    assert res["match"], res
