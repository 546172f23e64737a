"""Weightless compression end to end: pruning, clustering, encodings chosen per
layer, settings checked, and compressed models run as firmware against
onnxruntime on the decoded model."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from weightless_mcu import compile_model, verify
from weightless_mcu.compress import make_settings
from weightless_mcu.compress.prune import kmeans_1d, magnitude_masks
from weightless_mcu.errors import OptionError

from .conftest import make_model, mlperf, rand
from .test_errors import assert_clean_error, run_cli

H = helper.make_node


def settings(**kw):
    return make_settings(kw)


def test_ad01_compresses_over_25x_and_matches_decoded_model():
    res = verify(mlperf("ad01"), target="cortex-m4", samples=8, compression=settings(density=0.1, clusters=16, bits=8))
    assert res["match"] and res["reference"] == "decoded model", res["max_rel_error"]
    assert res["compression_ratio"] >= 25
    assert res["weights_float32_bytes"] / res["weights_stored_bytes"] == pytest.approx(res["compression_ratio"], rel=1e-3)
    assert res["flash_bytes"] < res["weights_float32_bytes"] / 20  # the dense weights are not in the image
    total = sum(layer["positions"] for layer in res["layers"])
    protected = [layer for layer in res["layers"] if layer["positions"] < 0.02 * total]
    assert [layer["positions"] for layer in protected] == [1024, 1024]  # the 8-neuron bottleneck, in and out
    for layer in protected:  # dense indices: every weight kept, no false positives
        assert layer["encoding"] == "codebook" and layer["kept"] == layer["positions"] and layer["false_positives"] == 0
    for layer in (layer for layer in res["layers"] if layer not in protected):
        assert layer["encoding"] == "bloomier"
        assert layer["kept"] == int(np.ceil(0.1 * layer["positions"]))
        assert layer["clusters"] == 16 and layer["bits"] == 8
        assert layer["cells"] >= layer["kept"] and layer["bytes"] < layer["float32_bytes"] / 10
        # About K / 2^t of the pruned positions decode to a weight.
        pruned = layer["positions"] - layer["kept"]
        assert abs(layer["false_positives"] - pruned * 16 / 256) < 5 * np.sqrt(pruned * 16 / 256) + 5
    # The decoded model is not the original: the false positives change the outputs.
    assert res["decoded_max_rel_deviation"] > 1e-3


@pytest.mark.parametrize("name", ["resnet8", "vww"])
def test_conv_models_compressed_match_on_cortex_m4(name):
    res = verify(mlperf(name), target="cortex-m4", samples=4, compression=settings(density=0.3, clusters=16, bits=8))
    assert res["match"], res["max_rel_error"]
    assert res["compression_ratio"] > 5
    _assert_tables_but_protected(res["layers"])


def _assert_tables_but_protected(layers):
    """Every layer in a Bloomier table or a sparse stream (whichever is smaller) but the protected
    ones: the output layer and layers under 2% of the weights (here the output layer is under 2%
    too), kept as dense indices."""
    total = sum(layer["positions"] for layer in layers)
    for layer in layers:
        if layer["positions"] < 256:  # min_positions: float32
            assert layer["encoding"] == "dense", layer
        elif layer["positions"] < 0.02 * total:
            assert layer["encoding"] == "codebook" and layer["kept"] == layer["positions"], layer
        else:
            assert layer["encoding"] in ("bloomier", "sparse"), layer
    assert layers[-1]["encoding"] == "codebook"


def _conv_model(path, **attrs):
    cin, cout, k, group = attrs.pop("cin"), attrs.pop("cout"), attrs.pop("k"), attrs.get("group", 1)
    return make_model(path, [H("Conv", ["x", "w", "b"], ["c"], **attrs), H("Relu", ["c"], ["y"])],
                      {"x": [1, cin, 10, 10]}, {"y": None},
                      {"w": rand(cout, cin // group, k, k, seed=1), "b": rand(cout, seed=2)})


SMALL = {
    "conv3x3": dict(cin=6, cout=10, k=3, pads=[1, 1, 1, 1]),
    "conv_group": dict(cin=8, cout=12, k=3, group=4, pads=[1, 1, 1, 1], strides=[2, 2]),
    "depthwise": dict(cin=24, cout=24, k=3, group=24, pads=[1, 1, 1, 1]),
    "pointwise": dict(cin=40, cout=18, k=1),
}


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
@pytest.mark.parametrize("case", sorted(SMALL))
@pytest.mark.parametrize("bits", [5, 8, 11])
def test_small_conv_models(tmp_path, case, target, bits):
    """Bloomier tables of t < 8, t = 8 and t > 8 behind each compressed conv kernel
    (forced: auto would store these small layers as codebooks whatever t is)."""
    path = _conv_model(tmp_path / "m.onnx", **dict(SMALL[case]))
    res = verify(path, target=target, samples=2,
                 compression=settings(density=0.4, clusters=7, bits=bits, min_positions=0, encoding="bloomier"))
    assert res["match"], res["max_rel_error"]
    assert (res["layers"][0]["encoding"], res["layers"][0]["bits"]) == ("bloomier", bits)


@pytest.mark.parametrize("encoding", ["bloomier", "codebook"])
def test_fc_models_with_forced_encoding(tmp_path, encoding):
    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w", "b"], ["h"], transB=1), H("Relu", ["h"], ["r"]),
                                             H("MatMul", ["r", "w2"], ["y"])],
                      {"x": [1, 50]}, {"y": None}, {"w": rand(30, 50), "b": rand(30, seed=1), "w2": rand(30, 7, seed=2)})
    for target in ("host", "cortex-m4"):
        res = verify(path, target=target, samples=3,
                     compression=settings(density=0.2, clusters=4, bits=6, encoding=encoding, min_positions=0))
        assert res["match"], (target, res["max_rel_error"])
        assert [layer["encoding"] for layer in res["layers"]] == [encoding, encoding]


def test_false_positives_are_exactly_the_pruned_positions_that_decode_non_zero(tmp_path):
    from weightless_mcu.api import _prepare

    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w"], ["y"], transB=1)], {"x": [1, 300]}, {"y": [1, 40]},
                      {"w": rand(40, 300)})
    _, graph, reports = _prepare(path, None, None, settings(density=0.1, clusters=8, bits=6), lambda _: None)
    (report,) = reports
    decoded = graph.tensors[report.tensor].data
    assert report.encoding == "bloomier"
    assert np.count_nonzero(decoded) - report.kept == report.false_positives > 0


@pytest.mark.parametrize("bits", [9, 12, 16])
def test_false_positive_rate_is_k_over_2_to_the_t_above_8_bits(bits):
    """Above t = 8 a word is stored as two planes, and the mask of the lanes' high bits is a
    rotation of their low bytes' mask. Each non-key position still decodes to 1..K at the rate
    K / 2^t, in a table holding keys and in an empty one (there the mask alone decides: a mask
    of the high bits that shared bits with a lane's low byte, or was the hash itself, gave up to
    seven times the rate)."""
    from weightless_mcu.compress.bloomier import build_table

    rng = np.random.default_rng(bits)
    n, k = 1_000_000, 16
    keys = np.sort(rng.choice(n, n // 10, replace=False))
    for table, stored in ((build_table(n, keys, rng.integers(1, k + 1, keys.size), bits, seed=3), keys),
                          (build_table(n, np.zeros(0, np.int64), np.zeros(0), bits, seed=3), keys[:0])):
        words = table.query()
        assert np.array_equal(words[stored], table.query(stored))
        others = np.ones(n, bool)
        others[stored] = False
        hits = int(np.count_nonzero((words[others] >= 1) & (words[others] <= k)))
        expected = others.sum() * k / 2 ** bits
        assert abs(hits - expected) < 5 * np.sqrt(expected) + 5, (bits, stored.size, hits, expected)


def test_small_layers_stay_dense_and_auto_picks_the_smallest(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w1"], ["h"]), H("Gemm", ["h", "w2"], ["y"])],
                      {"x": [1, 8]}, {"y": None}, {"w1": rand(8, 8), "w2": rand(8, 400, seed=1)})
    m = compile_model(path, tmp_path / "out", compression=settings(density=0.9, clusters=3, bits=8))
    enc = {layer["tensor"]: layer["encoding"] for layer in m["layers"]}
    assert enc["w1_wl_rows"] == "dense"  # 64 positions < 256
    # At density 0.9 a 2-bit index per position beats 8-bit Bloomier cells.
    assert enc["w2_wl_rows"] == "codebook"


def test_global_pruning_keeps_the_largest_weights_overall():
    a, b = rand(100, scale=1.0), rand(100, seed=1, scale=0.01)
    ma, mb = magnitude_masks([a, b], 0.5, "global")
    assert ma.sum() + mb.sum() == 100 and ma.sum() > 90
    la, lb = magnitude_masks([a, b], 0.5, "layer")
    assert la.sum() == lb.sum() == 50


def test_kmeans_is_deterministic_and_exact_on_few_values():
    v = rand(5000, seed=3)
    c1, i1 = kmeans_1d(v, 16)
    c2, i2 = kmeans_1d(v.copy(), 16)
    assert np.array_equal(c1, c2) and np.array_equal(i1, i2)
    assert np.all(np.diff(c1) > 0) and c1.size == 16
    # Every value goes to its nearest centre.
    assert np.array_equal(i1, np.argmin(np.abs(v[:, None] - c1[None, :]), axis=1))
    c, i = kmeans_1d(np.array([1.0, 1.0, 2.0, 5.0], np.float32), 3)
    assert np.array_equal(c[i], np.array([1, 1, 2, 5], np.float32))


@pytest.mark.parametrize("opts, needle", [
    (dict(bits=3, clusters=8), "3 bits hold at most 7 clusters"),
    (dict(density=0.0), "density must be in (0, 1]"),
    (dict(density=1.5), "density must be in (0, 1]"),
    (dict(bits=17), "bits must be 1 to 16"),
    (dict(hashes=5), "hashes must be 2 to 4"),
    (dict(clusters=0), "clusters must be at least 1"),
])
def test_settings_out_of_range(opts, needle):
    with pytest.raises(OptionError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("^", r"\^")):
        make_settings(opts)


def test_more_clusters_than_kept_weights(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w"], ["y"])], {"x": [1, 20]}, {"y": [1, 20]}, {"w": rand(20, 20)})
    line = assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out", "--density", "0.01", "--clusters", "16",
                                      "--min-positions", "0"), "16 clusters", "4 kept weights")
    assert "layer" in line and not (tmp_path / "out").exists()


def test_cli_bits_too_small(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Relu", ["x"], ["y"])], {"x": [1, 4]}, {"y": [1, 4]})
    assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out", "--clusters", "8", "--bits", "3"), "at most 7 clusters")


def test_config_file_sets_layers(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w1"], ["h"], transB=1, name="fc1"),
                                             H("Gemm", ["h", "w2"], ["y"], transB=1, name="fc2")],
                      {"x": [1, 64]}, {"y": None}, {"w1": rand(64, 64), "w2": rand(32, 64, seed=1)})
    cfg = tmp_path / "wl.toml"
    cfg.write_text('[defaults]\ndensity = 0.1\nclusters = 4\nbits = 6\n\n[layers.fc2]\nencoding = "dense"\n'
                   '[layers.w1]\ndensity = 0.25\n')
    proc = run_cli("verify", path, "--config", cfg, "--target", "host", "--json", tmp_path / "r.json", "-q")
    assert proc.returncode == 0, proc.stderr
    import json

    layers = {layer["name"]: layer for layer in json.loads((tmp_path / "r.json").read_text())["layers"]}
    assert layers["fc1"]["kept"] == 1024 and layers["fc1"]["clusters"] == 4
    assert layers["fc2"]["encoding"] == "dense"
    cfg.write_text('[layers.nope]\ndensity = 0.5\n')
    assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out", "--config", cfg), "nope", "fc1")
    cfg.write_text('[defaults]\ndensty = 0.5\n')
    assert_clean_error(run_cli("compile", path, "-o", tmp_path / "out", "--config", cfg), "densty")


def test_compressed_compile_is_byte_identical_and_reported(tmp_path):
    from weightless_mcu import report

    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        proc = run_cli("compile", mlperf("resnet8"), "-o", out, "--density", "0.2", "--clusters", "8", "--bits", "7", "-q")
        assert proc.returncode == 0, proc.stderr
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert "runtime/wl_weights_decode.c" in {f.as_posix() for f in files}
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    rep = report(a)
    assert rep["compression_ratio"] > 5
    _assert_tables_but_protected(rep["layers"])
    # The model's flash holds the tables, not the float32 weights.
    assert rep["flash_bytes"] < rep["weights_float32_bytes"] / 3


def test_a_table_that_decodes_a_kept_key_wrongly_is_refused(monkeypatch):
    """encode_indices checks every kept key against the table it built: a solver
    fault must stop compression, not change the decoded model silently."""
    import weightless_mcu.compress as comp
    from weightless_mcu.compress.settings import LayerSettings

    real = comp.build_table

    def broken(*args, **kwargs):
        table = real(*args, **kwargs)
        table.words[0] ^= np.uint64(1)  # one flipped cell bit
        return table

    rng = np.random.default_rng(0)
    indices = np.where(rng.random(4000) < 0.2, rng.integers(1, 17, 4000), 0).astype(np.uint32)
    s = LayerSettings(encoding="bloomier", bits=8, clusters=16)
    comp.encode_indices("fc", "w", indices, np.linspace(-1, 1, 16, dtype=np.float32), s, 7)  # the real solver passes
    monkeypatch.setattr(comp, "build_table", broken)
    with pytest.raises(RuntimeError, match="wrong index"):
        comp.encode_indices("fc", "w", indices, np.linspace(-1, 1, 16, dtype=np.float32), s, 7)


@pytest.mark.parametrize("encoding,bits", [("bloomier", 8), ("bloomier", 6), ("bloomier", 9), ("codebook", 8)])
def test_every_fc_path_gives_onnxruntime_s_nan_for_a_zero_weight_times_inf(tmp_path, encoding, bits):
    """A pruned (zero) weight times an infinite input is NaN in onnxruntime and the
    dense kernel; the Bloomier paths that skip pruned positions must say the same."""
    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"x": [1, 64]}, {"y": [1, 18]},
                      {"w": rand(18, 64), "b": rand(18, seed=1)})
    x = rand(3, 64, seed=2)
    x[0, 5], x[1, 40], x[2, 7] = np.inf, -np.inf, np.nan
    np.savez(tmp_path / "x.npz", x=x)
    np.savez(tmp_path / "finite.npz", x=rand(2, 64, seed=3))
    comp = settings(density=0.3, clusters=8, bits=bits, encoding=encoding, min_positions=0)
    res = verify(path, target="host", inputs=tmp_path / "x.npz", outputs=tmp_path / "y.npz", compression=comp)
    y = np.load(tmp_path / "y.npz")["y"]
    assert res["match"], res
    assert np.isnan(y).any(axis=1).all()  # every sample has NaN outputs: the pruned positions of its Inf input
    assert not np.isnan(y).all()  # not the whole output: some rows keep that input's weight (Inf, not NaN)
    assert verify(path, target="host", inputs=tmp_path / "finite.npz", compression=comp)["match"]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m7", "cortex-m33"])
def test_compressed_model_on_every_core(tmp_path, target):
    """A conv + fc model with Bloomier tables at t = 8 (the fc fast path), t = 5 and t = 11
    and a codebook layer, as firmware on the cores other than the m4 (soft float on the m3)."""
    nodes = [H("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]), H("Relu", ["c"], ["r"]), H("Flatten", ["r"], ["f"]),
             H("Gemm", ["f", "w2", "b2"], ["h"], transB=1), H("Relu", ["h"], ["hr"]),
             H("Gemm", ["hr", "w3", "b3"], ["g"], transB=1), H("Gemm", ["g", "w4"], ["y"], transB=1)]
    path = make_model(tmp_path / "m.onnx", nodes, {"x": [1, 2, 6, 6]}, {"y": None},
                      {"w1": rand(8, 2, 3, 3, seed=1), "b1": rand(8, seed=2), "w2": rand(40, 288, seed=3, scale=0.1),
                       "b2": rand(40, seed=4), "w3": rand(24, 40, seed=5), "b3": rand(24, seed=6), "w4": rand(10, 24, seed=7)})
    from weightless_mcu.compress.settings import CompressionSettings, LayerSettings

    comp = CompressionSettings(defaults=LayerSettings(density=0.4, clusters=7, min_positions=0, bits=8, encoding="bloomier"),
                               layers={"w1": {"bits": 5}, "w3": {"bits": 11}, "w4": {"encoding": "codebook"}})
    res = verify(path, target=target, samples=2, compression=comp)
    assert res["match"] and res["target"] == target, res["max_rel_error"]
    assert [(layer["encoding"], layer["bits"]) for layer in res["layers"]] == [
        ("bloomier", 5), ("bloomier", 8), ("bloomier", 11), ("codebook", 3)]
