"""Compression settings (options over a TOML config, typed, validated), the config
that init-config writes, the per-layer report of each encoding, and the choice of
the smallest encoding, float32 included."""
from __future__ import annotations

import tomllib

import numpy as np
import pytest
from onnx import helper

from weightless_mcu.api import _prepare
from weightless_mcu.compress import encode_indices, make_settings
from weightless_mcu.compress.bloomier import build_table, padded_stream_bytes
from weightless_mcu.compress.prune import kmeans_1d, magnitude_masks
from weightless_mcu.compress.settings import LayerSettings, config_text
from weightless_mcu.errors import OptionError

from .conftest import make_model, rand


def test_options_over_the_config_file_typed_and_validated(tmp_path):
    cfg = tmp_path / "w.toml"
    cfg.write_text('[defaults]\ndensity = 0.25\nclusters = 8.0\nbits = 6\nprune = "global"\n'
                   '[layers."conv 1"]\nbits = 9\nencoding = "codebook"\n[layers.fc]\ndensity = 1\n')
    s = make_settings({"clusters": 12, "hashes": None}, cfg)
    assert s.prune == "global"
    assert (s.defaults.density, s.defaults.clusters, s.defaults.bits, s.defaults.hashes) == (0.25, 12, 6, 4)
    assert isinstance(s.defaults.clusters, int)
    assert s.layers == {"conv 1": {"bits": 9, "encoding": "codebook"}, "fc": {"density": 1.0}}
    assert isinstance(s.layers["fc"]["density"], float)
    conv = s.for_layer("conv 1", "w1")
    assert (conv.bits, conv.encoding, conv.density, conv.clusters) == (9, "codebook", 0.25, 12)
    assert s.for_layer("other", "fc").density == 1.0  # a table may name the tensor as well as the node
    assert make_settings({"prune": "layer"}, cfg).prune == "layer"  # the command line wins
    assert make_settings({}) is None and make_settings({"density": None}) is None


@pytest.mark.parametrize("text,needle", [
    ("[defaults]\ndensity = 0.5\n[extra]\na = 1\n", "unknown section(s) extra; use [defaults] and [layers.NAME]"),
    ("[defaults]\ncolour = 1\n", "[defaults]: unknown setting 'colour' (known: bias_clusters, bits, cells_per_key, channels"),
    ("[defaults]\nclusters = 2.5\n", "[defaults]: setting 'clusters' has a bad value 2.5"),
    ("[defaults]\nclusters = true\n", "setting 'clusters' has a bad value True"),
    ("[layers]\nfc = 3\n", "[layers] entries must be tables, like [layers.\"fc\"]"),
    ("[layers.fc]\nbits = \"many\"\n", "[layers.fc]: setting 'bits' has a bad value 'many'"),
    ("[defaults]\ndensity = 0\n", "compression settings: density must be in (0, 1], not 0.0"),
    ("[defaults]\nprune = \"some\"\n", "prune must be 'layer' or 'global', not 'some'"),
    ("[defaults\n", "is not valid TOML"),
])
def test_config_errors_name_the_file_section_and_setting(tmp_path, text, needle):
    cfg = tmp_path / "w.toml"
    cfg.write_text(text)
    with pytest.raises(OptionError) as err:
        make_settings({}, cfg)
    assert needle in str(err.value)


def test_a_missing_config_file_and_a_bad_option(tmp_path):
    with pytest.raises(OptionError, match=r"--config .*nope.toml: No such file"):
        make_settings({}, tmp_path / "nope.toml")
    with pytest.raises(OptionError, match="--min-positions: setting 'min_positions' has a bad value 'x'"):
        make_settings({"min_positions": "x"})


def test_the_written_config_is_valid_toml_with_every_default():
    defaults = LayerSettings(density=0.3, bits=7)
    text = config_text("net", [("conv 1", "Conv", 54), ("fc", "Gemm", 30000)], defaults)
    parsed = tomllib.loads(text)
    assert parsed["defaults"] == {**LayerSettings(density=0.3, bits=7).__dict__, "prune": "layer", "protect": "auto"}
    assert parsed["layers"] == {"conv 1": {}, "fc": {}}
    lines = text.splitlines()
    assert lines[0].startswith("# Compression settings for net:")
    assert '[layers."conv 1"]  # Conv, 54 weights (below min_positions: stays dense)' in lines
    assert '[layers."fc"]  # Gemm, 30,000 weights' in lines
    comments = [line.index("#") for line in lines if line and line[0].isalpha() and "=" in line]
    assert len(set(comments)) == 1  # the comments line up
    assert "# density = 0.3" in lines and "# clusters = 16" in lines


def _indices(n, density, clusters, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < density, rng.integers(1, clusters + 1, n), 0).astype(np.uint32)


def test_each_encoding_s_report_row():
    idx = _indices(4000, 0.2, 8)
    book = np.linspace(-1, 1, 8, dtype=np.float32)
    kept = int((idx > 0).sum())
    enc, r = encode_indices("fc", "w", idx, book, LayerSettings(bits=6, clusters=8, encoding="bloomier"), 5)
    assert (r.name, r.tensor, r.encoding, r.positions, r.kept, r.clusters, r.bits) == ("fc", "w", "bloomier", 4000, kept, 8, 6)
    assert r.cells == enc.table.cells and r.cells_per_key == round(r.cells / kept, 4)
    assert r.false_positives == int(np.count_nonzero(enc.decode()[idx == 0])) > 0
    assert (r.bytes, r.float32_bytes) == (enc.nbytes(), 16000) and enc.kept == kept
    enc, r = encode_indices("fc", "w", idx, book, LayerSettings(clusters=8, encoding="codebook"), 5)
    assert (r.encoding, r.kept, r.clusters, r.bits, r.cells, r.cells_per_key, r.false_positives) == \
        ("codebook", kept, 8, 4, None, None, 0)
    assert (r.bytes, r.float32_bytes) == (enc.nbytes(), 16000)


def test_auto_takes_float32_when_it_is_the_smallest():
    """300 positions with 255 shared values: indices (300 B) and codebook (1,020 B) cost more
    than the 1,200 B of float32 weights, so auto keeps them dense (the weights as given)."""
    idx = _indices(300, 1.0, 255)
    idx[:255] = np.arange(1, 256)
    book = np.linspace(-1, 1, 255, dtype=np.float32)
    dense = book[idx - 1]
    enc, r = encode_indices("fc", "w", idx, book, LayerSettings(clusters=255, bits=8), 5, dense)
    assert enc.kind == "dense" and np.array_equal(enc.decode(), dense)
    assert (r.encoding, r.positions, r.kept, r.clusters, r.bits, r.false_positives, r.bytes, r.float32_bytes) == \
        ("dense", 300, 300, None, None, 0, 1200, 1200)
    # one position more per shared value: the indices win
    idx = _indices(3000, 1.0, 255)
    enc, r = encode_indices("fc", "w", idx, book, LayerSettings(clusters=255, bits=8), 5, book[np.maximum(idx, 1) - 1])
    assert r.encoding == "codebook" and r.bytes < 12000


def test_kmeans_keeps_k_distinct_values_under_heavy_ties():
    """Most values equal: the quantile start collapses, the rest is spread over the
    other distinct values; still exactly k shared values, each value at its nearest."""
    values = np.concatenate([np.zeros(500), np.linspace(1, 2, 40), [5.0, 6.0]])
    for k in (3, 8, 20):
        book, idx = kmeans_1d(values, k)
        assert book.size == k and np.unique(book).size == k
        nearest = np.abs(values[:, None] - book[None, :].astype(np.float64)).min(axis=1)
        assert np.all(np.abs(values - book[idx]) <= nearest + 1e-6)
    with pytest.raises(OptionError, match="the number of clusters must be at least 1, not 0"):
        kmeans_1d(values, 0)


def test_one_shot_compression_keeps_a_layer_float32_when_that_is_smallest(tmp_path):
    w = rand(10, 30)
    path = make_model(tmp_path / "m.onnx", [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], {"x": [1, 30]},
                      {"y": [1, 10]}, {"w": w})
    comp = make_settings({"density": 1.0, "clusters": 255, "bits": 8, "min_positions": 0})
    _, graph, (report,) = _prepare(path, None, None, comp, lambda _: None)
    assert (report.encoding, report.bytes) == ("dense", 1200)
    assert "w" not in graph.encodings and np.array_equal(graph.const("w"), w)  # the weights as they were


def _two_fc(tmp_path, shared=False):
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="fc1"),
             helper.make_node("Gemm", ["h", "w1" if shared else "w2"], ["y"], transB=1, name="fc2")]
    inits = {"w1": rand(32, 32)} if shared else {"w1": rand(32, 32), "w2": rand(16, 32, seed=1)}
    return make_model(tmp_path / "m.onnx", nodes, {"x": [1, 32]}, {"y": None}, inits)


def test_layer_tables_name_a_node_or_its_tensor(tmp_path):
    cfg = tmp_path / "w.toml"
    cfg.write_text('[defaults]\ndensity = 0.5\nclusters = 4\nmin_positions = 0\n[layers.fc1]\ndensity = 0.25\n'
                   '[layers.w2]\nencoding = "codebook"\n')
    _, _, reports = _prepare(_two_fc(tmp_path), None, None, make_settings({}, cfg), lambda _: None)
    by_name = {r.name: r for r in reports}
    assert by_name["fc1"].kept == 256 and by_name["fc2"].encoding == "codebook" and by_name["fc2"].kept == 256
    cfg.write_text('[layers.nope]\ndensity = 0.5\n[layers.gone]\ndensity = 0.5\n')
    with pytest.raises(OptionError) as err:
        _prepare(_two_fc(tmp_path), None, None, make_settings({}, cfg), lambda _: None)
    assert str(err.value) == ("the settings name layer(s) gone, nope, which have no compressible weights; "
                              "compressible: fc1, fc2")


def test_a_weight_read_by_two_layers_stays_float32(tmp_path):
    comp = make_settings({"density": 0.3, "min_positions": 0})
    _, graph, reports = _prepare(_two_fc(tmp_path, shared=True), None, None, comp, lambda _: None)
    assert reports == [] and not graph.encodings


def test_pruning_and_table_options_out_of_range():
    w = np.ones((4, 4), np.float32)
    for density in (0.0, 1.5):
        with pytest.raises(OptionError, match=f"density must be in \\(0, 1\\], not {density}"):
            magnitude_masks([w], density)
    with pytest.raises(OptionError, match="global pruning takes one density for all layers"):
        magnitude_masks([w, w], [0.5, 0.6], "global")
    with pytest.raises(OptionError, match="Bloomier cells must have 1 to 16 bits, not 17"):
        build_table(16, np.array([1]), np.array([1]), 17)
    with pytest.raises(OptionError, match="the number of location hashes must be 2 to 4, not 5"):
        build_table(16, np.array([1]), np.array([1]), 8, hashes=5)
    # a stream is whole 32-bit words plus one, so that any 32 bits can be read with two aligned loads
    assert [padded_stream_bytes(n) for n in (0, 1, 32, 33, 64)] == [4, 8, 8, 12, 12]


@pytest.mark.parametrize("hashes,at_most", [(4, 1.05), (3, 1.13), (2, 2.4)])
def test_cells_per_key_near_the_thresholds_for_each_hash_count(hashes, at_most):
    """A 40,000-key table is sized near the k-XORSAT threshold of its hash count."""
    rng = np.random.default_rng(0)
    keys = np.sort(rng.choice(400_000, 40_000, replace=False))
    values = rng.integers(1, 16, keys.size)
    table = build_table(400_000, keys, values, 8, hashes=hashes)
    assert np.array_equal(table.query(keys), values)
    assert table.cells / keys.size <= at_most


def test_setting_bounds_are_inclusive_where_they_should_be():
    for ok in (dict(bits=1, clusters=1), dict(bits=16, clusters=65535), dict(seed=0), dict(seed=2**32 - 1),
               dict(hashes=2), dict(hashes=4), dict(cells_per_key=1.0), dict(cells_per_key=4.0), dict(min_positions=0),
               dict(density=1.0, channels=1.0)):
        LayerSettings(**ok).validate("x")
    for bad, needle in ((dict(bits=0), "bits must be 1 to 16, not 0"), (dict(bits=17), "bits must be 1 to 16"),
                        (dict(clusters=0), "clusters must be at least 1, not 0"),
                        (dict(bits=2, clusters=4), "2 bits hold at most 3 clusters (2^t - 1), not 4"),
                        (dict(seed=2**32), "seed must be a 32-bit unsigned integer"),
                        (dict(seed=-1), "seed must be a 32-bit unsigned integer"),
                        (dict(hashes=1), "hashes must be 2 to 4, not 1"), (dict(cells_per_key=0.9), "cells_per_key must be in [1, 4]"),
                        (dict(min_positions=-1), "min_positions must be >= 0"), (dict(channels=0.0), "channels must be in (0, 1]"),
                        (dict(encoding="zip"), "encoding must be one of auto, bloomier, codebook, sparse, dense, not 'zip'")):
        with pytest.raises(OptionError) as err:
            LayerSettings(**bad).validate("layer 'fc'")
        assert str(err.value).startswith("layer 'fc': ") and needle in str(err.value), (bad, str(err.value))
    with pytest.raises(OptionError, match="3 clusters are more than the 2 kept weights"):
        kmeans_1d(np.array([1.0, 2.0]), 3)


def test_layers_below_min_positions_are_reported_as_float32(tmp_path):
    path = make_model(tmp_path / "m.onnx", [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="big"),
                                            helper.make_node("Gemm", ["h", "w2"], ["y"], transB=1, name="small")],
                      {"x": [1, 40]}, {"y": None}, {"w1": rand(30, 40), "w2": rand(5, 30, seed=1)})
    _, _, reports = _prepare(path, None, None, make_settings({"density": 0.5, "min_positions": 200}), lambda _: None)
    small = next(r for r in reports if r.name == "small")
    assert (small.encoding, small.positions, small.kept, small.bytes, small.float32_bytes, small.false_positives) == \
        ("dense", 150, 150, 600, 600, 0)
    assert next(r for r in reports if r.name == "big").encoding != "dense"
