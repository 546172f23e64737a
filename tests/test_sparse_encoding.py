"""The sparse stream encoding (SparseEncoding, firmware/include/wl_sparse.h): the packed stream
read back code by code by a decoder apart from the packer; its exact bytes; the C decodes
(whole, in ranges that start and end inside blocks, one position at a time, int8) equal to the
Python decode on every position, on the host and under QEMU; every compressed kernel (float and
int8) with it against onnxruntime; and `--encoding auto` taking it where it is the smallest."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from weightless_mcu import verify
from weightless_mcu.codegen import render_encoded_weights
from weightless_mcu.compress import encode_indices, make_settings
from weightless_mcu.compress.bloomier import padded_stream_bytes
from weightless_mcu.compress.encodings import STRUCT_BYTES, SparseEncoding, decode_sparse_stream
from weightless_mcu.compress.settings import LayerSettings

from .conftest import make_model, rand, run_c_check
from .test_bloomier_c import int8_case

H = helper.make_node


def sparse_case(positions, clusters, density, block, rng_seed=0, runs=False):
    """Random kept positions (or, with runs, long empty stretches: gaps of 32 units and more)."""
    rng = np.random.default_rng(rng_seed)
    keep = rng.random(positions) < density
    if runs:
        keep &= (np.arange(positions) // 700) % 3 == 0
    idx = np.where(keep, rng.integers(1, clusters + 1, size=positions), 0).astype(np.uint32)
    return SparseEncoding(idx, np.sort(rng.standard_normal(clusters)).astype(np.float32), block)


# (positions, K, density, block, runs): K = 1 (no index bits), 4, 15, 300 (9 bits); dense, sparse
# and empty layers; blocks that do not divide the positions; long gaps; blocks with nothing kept.
CASES = [(1000, 4, 0.08, 400, False), (999, 15, 0.3, 400, False), (513, 1, 0.5, 64, False), (2000, 300, 0.02, 1000, False),
         (700, 4, 1.0, 100, False), (640, 4, 0.0, 160, False), (5000, 7, 0.5, 1200, True), (4096, 4, 0.002, 64, False)]


def _cases():
    return [sparse_case(n, k, d, b, rng_seed=i, runs=runs) for i, (n, k, d, b, runs) in enumerate(CASES)]


def test_stream_reads_back_and_bytes_are_exact():
    for enc in _cases():
        stream, block_bits = enc.stream()
        back = decode_sparse_stream(stream, block_bits, enc.positions, enc.block_positions, enc.rice, enc.bits)
        assert np.array_equal(back, enc.indices)
        kept = np.flatnonzero(enc.indices)
        # every code: (gap >> r) zeros, a one, r bits of the gap, the index bits; blocks start afresh
        gaps, prev_end = [], 0
        for p in kept.tolist():
            start = p // enc.block_positions * enc.block_positions
            gaps.append(p - max(prev_end, start))
            prev_end = p + 1

        def cost(r):
            return sum((g >> r) + 1 + r + enc.bits for g in gaps)

        total = cost(enc.rice)
        assert int(block_bits[-1]) == total and block_bits.size == enc.blocks + 1
        assert enc.nbytes() == padded_stream_bytes(total) + 4 * (enc.blocks + 1) + 4 * enc.codebook.size + STRUCT_BYTES
        assert stream.size == padded_stream_bytes(total)
        assert all(total <= cost(r) for r in range(16))  # the best Rice parameter for these gaps


def _source(build, cases) -> tuple[int, list[tuple[int, int]]]:
    parts, rows, ranges = [], [], []
    for i, enc in enumerate(cases):
        parts.append(render_encoded_weights(f"wl_case{i}", enc))
        parts.append(render_encoded_weights(f"wl_case{i}_s8", int8_case(enc, rng_seed=i)))
        skew, step = (i * 37) % 101, 29 + 13 * i
        ranges.append((skew, step))
        rows.append(f"{{&wl_case{i}_weights, &wl_case{i}_s8_weights, {skew}u, {step}u}}")
    (build / "wl_sparse_cases.inc").write_text(
        "".join(parts) + "typedef struct { const wl_encoded_weights_t *table, *table8; uint32_t skew, step; } wl_case_t;\n"
        f"static const wl_case_t wl_cases[] = {{\n{', '.join(rows)}\n}};\n#define WL_CASES {len(cases)}u\n"
        f"#define WL_CASE_MAX {max(enc.positions for enc in cases)}\n")
    return 4 * sum(enc.positions for enc in cases) + 1, ranges


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m3"])
def test_c_decodes_equal_the_python_decode(tmp_path, target):
    cases = _cases()
    total, _ = _source(tmp_path, cases)
    got = run_c_check(tmp_path, target, "wl_sparse", ["wl_weights_decode.c"], total)
    at = 0
    for i, enc in enumerate(cases):
        n = enc.positions
        whole, ranged, query, s8 = (got[at + j * n:at + (j + 1) * n] for j in range(4))
        at += 4 * n
        want = enc.decode()
        assert np.array_equal(whole.view(np.uint32), want.view(np.uint32)), f"case {i}: decode"
        assert np.array_equal(ranged.view(np.uint32), want.view(np.uint32)), f"case {i}: decode in ranges"
        assert np.array_equal(query, enc.indices.astype(np.float32)), f"case {i}: query"
        assert np.array_equal(s8, int8_case(enc, rng_seed=i).decode().astype(np.float32)), f"case {i}: int8 decode"
    assert got[at] == -1.0  # a range past the end: WL_ERR_ARG


def _cnn(path):
    """A conv, a depthwise and a pointwise convolution, then three fully connected layers (one with
    26 outputs: rows after the last block of four)."""
    nodes = [H("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]), H("Relu", ["c"], ["r"]),
             H("Conv", ["r", "wd", "bd"], ["d"], pads=[1, 1, 1, 1], group=8), H("Conv", ["d", "wp", "bp"], ["e"]),
             H("Flatten", ["e"], ["f"]), H("Gemm", ["f", "w2", "b2"], ["h"], transB=1), H("Relu", ["h"], ["hr"]),
             H("Gemm", ["hr", "w3", "b3"], ["g"], transB=1), H("Gemm", ["g", "w4"], ["y"], transB=1)]
    return make_model(path, nodes, {"x": [1, 2, 6, 6]}, {"y": None},
                      {"w1": rand(8, 2, 3, 3, seed=1), "b1": rand(8, seed=2), "wd": rand(8, 1, 3, 3, seed=8),
                       "bd": rand(8, seed=9), "wp": rand(8, 8, 1, 1, seed=10), "bp": rand(8, seed=11),
                       "w2": rand(40, 288, seed=3, scale=0.1), "b2": rand(40, seed=4), "w3": rand(26, 40, seed=5),
                       "b3": rand(26, seed=6), "w4": rand(10, 26, seed=7)})


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m3"])
def test_every_float_kernel_with_sparse_streams(tmp_path, target):
    res = verify(_cnn(tmp_path / "m.onnx"), target=target, samples=3,
                 compression=make_settings(dict(density=0.3, clusters=7, min_positions=0, encoding="sparse")))
    assert res["match"], res["max_rel_error"]
    assert [layer["encoding"] for layer in res["layers"]] == ["sparse"] * 6
    assert {"conv2d_encoded", "depthwise_conv2d_encoded", "pointwise_conv2d_encoded", "fc_encoded"} <= {
        s["kernel"] for s in res["steps"]}


def test_every_int8_kernel_with_sparse_streams(tmp_path):
    from .test_int8_tables import _cnn as int8_cnn, _data

    src = int8_cnn(tmp_path)
    _data(tmp_path)
    res = verify(src, target="cortex-m4", inputs=tmp_path / "x.npz", quantize="int8", calibration_data=tmp_path / "cal.npz",
                 compression=make_settings(dict(density=0.3, clusters=5, min_positions=0, encoding="sparse")))
    assert res["match"] and res["max_lsb_error"] == 0, res
    assert {layer["encoding"] for layer in res["layers"]} == {"sparse"}
    assert {"conv2d_encoded_s8", "depthwise_conv2d_encoded_s8", "fc_encoded_s8"} <= {s["kernel"] for s in res["steps"]}


def test_a_zero_weight_times_inf_is_nan_as_in_onnxruntime(tmp_path):
    path = make_model(tmp_path / "m.onnx", [H("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"x": [1, 64]}, {"y": [1, 18]},
                      {"w": rand(18, 64), "b": rand(18, seed=1)})
    x = rand(3, 64, seed=2)
    x[0, 5], x[1, 40], x[2, 7] = np.inf, -np.inf, np.nan
    np.savez(tmp_path / "x.npz", x=x)
    comp = make_settings(dict(density=0.3, clusters=8, encoding="sparse", min_positions=0))
    res = verify(path, target="cortex-m4", inputs=tmp_path / "x.npz", outputs=tmp_path / "y.npz", compression=comp)
    y = np.load(tmp_path / "y.npz")["y"]
    assert res["match"], res
    assert np.isnan(y).any(axis=1).all() and not np.isnan(y).all()


def test_auto_takes_the_smallest_encoding():
    rng = np.random.default_rng(0)
    n = 64 * 256
    codebook = np.linspace(-1, 1, 4, dtype=np.float32)
    for density, want in ((0.08, "sparse"), (1.0, "codebook")):
        idx = np.where(rng.random(n) < density, rng.integers(1, 5, n), 0).astype(np.uint32)
        sizes = {}
        for encoding in ("sparse", "codebook", "bloomier"):
            enc, _ = encode_indices("fc", "w", idx, codebook, LayerSettings(encoding=encoding, bits=10, clusters=4), 7,
                                    block=4 * 256)
            sizes[encoding] = enc.nbytes()
        enc, report = encode_indices("fc", "w", idx, codebook, LayerSettings(bits=10, clusters=4), 7, block=4 * 256)
        assert enc.kind == report.encoding == want == min(sizes, key=sizes.get), sizes
    # without the kernel's block (no layout known) the stream is not offered
    enc, _ = encode_indices("fc", "w", idx, codebook, LayerSettings(bits=10, clusters=4), 7)
    assert enc.kind != "sparse"
