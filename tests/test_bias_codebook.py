"""Biases stored as shared values (BiasCodebookEncoding): the packed words against an
independent bit-stream packer, the C decode against the Python decode on every channel (host
and QEMU), exact bytes, the arena rule (a bias decoded into the arena only where the arena
does not grow), and a retrained model whose encoded biases run as firmware equal to
onnxruntime on the decoded model."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from weightless_mcu import verify
from weightless_mcu.api import Retraining
from weightless_mcu.codegen import build_program, weight_bytes
from weightless_mcu.compress import make_settings
from weightless_mcu.compress.bloomier import pack_stream
from weightless_mcu.compress.encodings import BiasCodebookEncoding, stream_words
from weightless_mcu.errors import OptionError
from weightless_mcu.frontend import load_model
from weightless_mcu.passes import run_passes
from weightless_mcu.train.trainer import TrainConfig

from .conftest import make_model, rand, run_c_check
from .test_retraining import blobs, mlp

H = helper.make_node


def _case(n: int, clusters: int, seed: int) -> BiasCodebookEncoding:
    rng = np.random.default_rng(seed)
    codebook = rng.standard_normal(clusters).astype(np.float32)
    return BiasCodebookEncoding(rng.integers(0, clusters, n).astype(np.uint32), codebook)


# (channels, K): every index width (1, 2, 4, 8 bits), channel counts that fill the last word and
# ones that do not, and K that uses all of its width or not.
CASES = [(1, 2), (31, 2), (32, 2), (33, 2), (7, 3), (16, 4), (17, 4), (60, 4), (9, 5), (8, 16), (100, 16),
         (5, 17), (4, 200), (300, 256)]


def test_bits_bytes_and_words():
    for n, k in CASES:
        enc = _case(n, k, seed=n + k)
        assert enc.bits == {2: 1, 3: 2, 4: 2, 5: 4, 16: 4, 17: 8, 200: 8, 256: 8}[k]
        per = 32 // enc.bits
        assert enc.nbytes() == 4 * ((n + per - 1) // per) + 4 * k
        # the firmware's words are the little-endian bit stream of the indices, cut into 32-bit words
        stream = stream_words(pack_stream(enc.indices, enc.bits))
        assert np.array_equal(enc.words(), stream[:enc.words().size])
        assert not stream[enc.words().size:].any()
        assert np.array_equal(enc.decode(), enc.codebook[enc.indices])
        assert np.array_equal(BiasCodebookEncoding.from_words(enc.words(), enc.codebook, n).indices, enc.indices)


def _source(build, cases) -> int:
    parts, rows = [], []
    for i, enc in enumerate(cases):
        words = ", ".join(f"0x{int(w):08x}u" for w in enc.words())
        values = ", ".join(f"{float(v).hex()}f" for v in enc.codebook)
        parts.append(f"static const uint32_t wl_case{i}_index[] = {{{words}}};\n"
                     f"static const float wl_case{i}_codebook[] = {{{values}}};\n")
        rows.append(f"{{wl_case{i}_index, wl_case{i}_codebook, {enc.positions}u, {enc.bits}u}}")
    (build / "wl_bias_decode_cases.inc").write_text(
        "".join(parts) + "typedef struct { const uint32_t *index; const float *codebook; uint32_t n, bits; } wl_case_t;\n"
        f"static const wl_case_t wl_cases[] = {{\n{', '.join(rows)}\n}};\n#define WL_CASES {len(cases)}u\n")
    return sum(enc.positions for enc in cases) + 2


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m3"])
def test_c_decode_equals_python_decode(tmp_path, target):
    cases = [_case(n, k, seed=n + k) for n, k in CASES]
    total = _source(tmp_path, cases)
    got = run_c_check(tmp_path, target, "wl_bias_decode", ["wl_bias_decode_f32.c"], total)
    want = np.concatenate([enc.decode() for enc in cases])
    assert np.array_equal(got[:-2].view(np.uint32), want.view(np.uint32))  # to the bit, every channel
    assert list(got[-2:]) == [-1.0, -1.0]  # 3 and 16 bits per index: WL_ERR_ARG


def test_bias_clusters_setting_is_checked():
    assert make_settings(dict(bias_clusters=0)).defaults.bias_clusters == 0
    with pytest.raises(OptionError, match="bias_clusters"):
        make_settings(dict(bias_clusters=300))


def _cnn(path):
    """conv's and fc_b's steps run while the MaxPool's input and output (a larger set) are not
    both live, so their decoded biases fit in the arena the MaxPool needs anyway."""
    nodes = [H("Conv", ["x", "wa", "ba"], ["ha"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv"),
             H("Relu", ["ha"], ["ra"]), H("MaxPool", ["ra"], ["pa"], kernel_shape=[2, 2], strides=[2, 2]),
             H("Flatten", ["pa"], ["fa"]),
             H("Gemm", ["fa", "wb", "bb"], ["hb"], transB=1, name="fc_b"), H("Relu", ["hb"], ["rb"]),
             H("Gemm", ["rb", "wc", "bc"], ["y"], transB=1, name="fc_c")]
    return make_model(path, nodes, {"x": [1, 1, 8, 8]}, {"y": [1, 4]},
                      {"wa": rand(8, 1, 3, 3, scale=0.3), "ba": rand(8, seed=3, scale=0.5),
                       "wb": rand(24, 128, seed=1, scale=0.2), "bb": rand(24, seed=4, scale=0.5),
                       "wc": rand(4, 24, seed=2, scale=0.3), "bc": rand(4, seed=5, scale=0.5)})


CNN_PARAMS = 8 * 9 + 8 + 24 * 128 + 24 + 4 * 24 + 4


def _with_bias_encodings(path, clusters=4):
    _, graph = load_model(path)
    run_passes(graph)
    for node in graph.nodes:
        if node.op in ("Gemm", "Conv"):
            b = graph.tensors[node.inputs[2]]
            order = np.argsort(b.data)
            idx = np.zeros(b.data.size, np.uint32)
            idx[order] = np.arange(b.data.size) * clusters // b.data.size  # equal-count bins
            codebook = np.array([b.data[idx == c].mean() for c in range(clusters)], np.float32)
            enc = BiasCodebookEncoding(idx, codebook)
            b.data = enc.decode()
            graph.bias_encodings[node.inputs[2]] = enc
    return graph


def test_arena_decides_where_a_bias_is_decoded(tmp_path):
    graph = _with_bias_encodings(_cnn(tmp_path / "c.onnx"))
    program = build_program(graph, "c")
    kernels = [(s.kernel, s.layer) for s in program.steps]
    # conv and fc_b decode their biases (the MaxPool's 2,560 B bound the arena); fc_c's 4 channels
    # are stored as float32: 16 B against 4 + 16 B as shared values
    assert ("bias_decode", "conv") in kernels and ("bias_decode", "fc_b") in kernels
    assert ("bias_decode", "fc_c") not in kernels
    plain = _with_bias_encodings(_cnn(tmp_path / "c.onnx"))
    plain.bias_encodings.clear()
    base = build_program(plain, "c")
    assert program.arena.size == base.arena.size == 4 * (8 * 64 + 8 * 16)
    original, stored = weight_bytes(program)
    assert original == weight_bytes(base)[0] == 4 * CNN_PARAMS
    saved = sum(4 * n - BiasCodebookEncoding.bytes_for(n, 4) for n in (8, 24))
    assert weight_bytes(base)[1] - stored == saved
    # one row: fc_b's bias is decoded into fc_b's own output, the conv's into an arena region
    dec = {s.layer: s for s in program.steps if s.kernel == "bias_decode"}
    fc_b = next(s for s in program.steps if s.layer == "fc_b" and s.kernel != "bias_decode")
    assert dec["fc_b"].output == fc_b.output == fc_b.bias
    conv = next(s for s in program.steps if s.layer == "conv" and s.kernel != "bias_decode")
    assert dec["conv"].output == conv.bias != conv.output and program.shapes[conv.bias] == (8,)
    assert program.buffers[conv.bias] != program.buffers[conv.output]


def test_a_bias_that_would_grow_the_arena_stays_float32(tmp_path):
    """Five rows: the bias needs its own region, and the layer writes the model's output, so the
    arena would hold nothing but the bias: it is stored as float32 (the same values)."""
    path = make_model(tmp_path / "rows.onnx", [H("Gemm", ["x", "w", "b"], ["y"], transB=1, name="fc")],
                      {"x": [5, 16]}, {"y": [5, 48]}, {"w": rand(48, 16, scale=0.3), "b": rand(48, seed=1)})
    graph = _with_bias_encodings(path)
    program = build_program(graph, "rows")
    assert [s.kernel for s in program.steps] == ["fc"] and program.arena.size == 0
    fc = program.steps[0]
    assert np.array_equal(next(c.data for c in fc.consts if c.role == "bias"), graph.tensors["b"].data)
    assert len(np.unique(graph.tensors["b"].data)) == 4
    # one row: decoded into the output (the caller's buffer), still no arena
    graph1 = _with_bias_encodings(make_model(tmp_path / "row.onnx", [H("Gemm", ["x", "w", "b"], ["y"], transB=1, name="fc")],
                                             {"x": [1, 16]}, {"y": [1, 48]}, {"w": rand(48, 16, scale=0.3), "b": rand(48, seed=1)}))
    program1 = build_program(graph1, "row")
    assert [s.kernel for s in program1.steps] == ["bias_decode", "fc"] and program1.arena.size == 0


def test_retrained_biases_run_as_firmware(tmp_path):
    """The pipeline shares conv's and fc_b's biases (fc_c's 4 stay float32) and the firmware,
    decoding them before each layer, equals onnxruntime on the decoded model."""
    path = _cnn(tmp_path / "c.onnx")
    x, y = blobs(1500, dims=64)
    x = x.reshape(-1, 1, 8, 8)
    np.savez(tmp_path / "train.npz", x=x[:1200], y=y[:1200])
    np.savez(tmp_path / "test.npz", x=x[1200:], y=y[1200:])
    res = verify(path, target="cortex-m4", data=tmp_path / "test.npz", progress=lambda _: None,
                 compression=make_settings(dict(density=0.3, clusters=4, bits=6, min_positions=0)),
                 retraining=Retraining(tmp_path / "train.npz", TrainConfig(epochs=1, lr=3e-3), seeds=1))
    assert res["match"] and res["predictions_match"] == res["samples"] == 300
    flash = {(row["layer"], row["kernel"]): row for row in res["steps"]}
    for layer, n in (("conv", 8), ("fc_b", 24)):
        assert flash[(layer, "bias_decode")]["parts"]["bias"] == BiasCodebookEncoding.bytes_for(n, 4)
    assert ("fc_c", "bias_decode") not in flash and flash[("fc_c", "fc_encoded")]["parts"]["bias"] == 16
    assert res["weights_float32_bytes"] == 4 * CNN_PARAMS
    assert res["compression_ratio"] == pytest.approx(4 * CNN_PARAMS / res["weights_stored_bytes"], rel=1e-3)
