"""The Bloomier streaming loops of the fully connected kernels (firmware/include/wl_fc_stream.h),
one per (t, hashes): every t from 1 to 16 with 2, 3 and 4 hashes, float32 and int8 codebooks; and
the row-block loop of codebook encodings (dense indices), and the sparse streams' loop.
Each loop's outputs equal, to the bit, the dense float kernel's on the weights the Python decode
gives (the same sums in the same order), numpy's within rounding, and for int8 numpy's exact
integer result; a build without the loops (every table decoded into a buffer instead) gives the
same bits, and so does one with the cases' group decodes but no loops (--optimize size). On the
host for every case and under QEMU (cortex-m4, cortex-m3) for all of them; a generated library
lists the cases its tables use, and links neither the general decoder nor other cases."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from weightless_mcu import compile_model, verify
from weightless_mcu.compress import make_settings
from weightless_mcu.errors import OptionError
from weightless_mcu.report_text import encoding_lines

from weightless_mcu.codegen import bloomier_cases, model_config, render_encoded_weights
from weightless_mcu.qemu import run_firmware
from weightless_mcu.resources import firmware_dir
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_image

from .conftest import REPO
from .test_bloomier_c import bloomier_case, codebook_case, int8_case
from .test_sparse_encoding import sparse_case

SHIFT, MULTIPLIER, OFFSET = 30, 1 << 20, 3  # int8 requantization: (acc + bias) / 1024, rounded half to even


def _cases():
    """(table, rows, in, out): t 1..16 x hashes 2..4, odd sizes (a partial row block, groups across
    blocks), K as large as t allows up to 16, and one wide t = 16 codebook."""
    cases = []
    for t in range(1, 17):
        for hashes in (2, 3, 4):
            rows, k_in, n_out = (2, 37, 14) if (t + hashes) % 2 else (1, 150, 9)
            clusters = 300 if (t, hashes) == (16, 4) else min(16, (1 << t) - 1)
            positions = k_in * n_out
            enc = bloomier_case(positions, positions // 8 + 1, t, clusters, hashes=hashes, rng_seed=10 * t + hashes)
            cases.append((enc, rows, k_in, n_out))
    for clusters, density in ((15, 0.3), (1, 0.5), (255, 1.0)):  # codebook encodings: their row-block loop
        cases.append((codebook_case(37 * 14, clusters, density, rng_seed=clusters), 2, 37, 14))
    for clusters, density in ((4, 0.08), (15, 0.3), (1, 0.5), (300, 0.9)):  # sparse streams: a block is 4 rows
        cases.append((sparse_case(37 * 14, clusters, density, 4 * 37, rng_seed=clusters), 2, 37, 14))
    return cases


def _c_array(ctype, name, values):
    body = ", ".join(f"{v!r}f" if ctype == "float" else str(int(v)) for v in np.asarray(values).ravel().tolist())
    return f"static const {ctype} {name}[] __attribute__((aligned(4))) = {{{body or '0'}}};\n"


def _inputs(cases):
    out = []
    for i, (enc, rows, k_in, n_out) in enumerate(cases):
        rng = np.random.default_rng(1000 + i)
        out.append({"x": rng.standard_normal((rows, k_in)).astype(np.float32),
                    "x8": rng.integers(-128, 128, size=(rows, k_in)).astype(np.int8),
                    "bias": rng.standard_normal(n_out).astype(np.float32),
                    "bias8": rng.integers(-5000, 5000, size=n_out).astype(np.int32),
                    "enc8": int8_case(enc, i)})
    return out


def _dense_order(decoded, k_in, n_out):
    """The dense kernel's weight matrix [out, in] from positions in its walk order (row blocks of
    four outputs interleaved, then the remaining rows)."""
    full = n_out - n_out % 4
    w = np.zeros((n_out, k_in), decoded.dtype)
    head = decoded[:full * k_in].reshape(full // 4, k_in, 4)
    w[:full] = head.transpose(0, 2, 1).reshape(full, k_in)
    w[full:] = decoded[full * k_in:].reshape(n_out - full, k_in)
    return w


def _source(tmp_path, cases, inputs):
    parts = []
    for i, ((enc, rows, k_in, n_out), d) in enumerate(zip(cases, inputs)):
        parts.append(render_encoded_weights(f"wl_case{i}", enc))
        parts.append(render_encoded_weights(f"wl_case{i}_s8", d["enc8"]))
        parts.append(_c_array("float", f"wl_case{i}_dense", enc.decode()))
        parts.append(_c_array("float", f"wl_case{i}_x", d["x"]))
        parts.append(_c_array("int8_t", f"wl_case{i}_x8", d["x8"]))
        parts.append(_c_array("float", f"wl_case{i}_bias", d["bias"]))
        parts.append(_c_array("int32_t", f"wl_case{i}_bias8", d["bias8"]))
        parts.append(_c_array("int32_t", f"wl_case{i}_mult", [MULTIPLIER] * n_out))
        parts.append(_c_array("int32_t", f"wl_case{i}_shift", [SHIFT] * n_out))
    rows = ",\n".join(
        f"{{{rows}, {k_in}, {n_out}, &wl_case{i}_weights, &wl_case{i}_s8_weights, wl_case{i}_dense, wl_case{i}_x, "
        f"wl_case{i}_x8, wl_case{i}_bias, wl_case{i}_bias8, wl_case{i}_mult, wl_case{i}_shift}}"
        for i, (_, rows, k_in, n_out) in enumerate(cases))
    most = max(rows * n_out for _, rows, _, n_out in cases)
    (tmp_path / "wl_fc_stream_cases.inc").write_text(
        "".join(parts) + "typedef struct { int32_t rows, in, out; const wl_encoded_weights_t *table, *table8;\n"
        "  const float *dense, *x; const int8_t *x8; const float *bias; const int32_t *bias8, *multiplier, *shift; } wl_case_t;\n"
        f"static const wl_case_t wl_cases[] = {{\n{rows}\n}};\n#define WL_CASES {len(cases)}u\n#define WL_CASE_MAX_OUT {most}\n")
    return 3 * sum(rows * n_out for _, rows, _, n_out in cases)


# Builds of the same kernels: every loop compiled in; none (every table read position by position
# through the general decoder); the cases' group decodes without loops (--optimize size).
BUILDS = {"loops": (), "decode": ("WL_BLOOMIER_CASES(X)=",), "size": ("WL_BLOOMIER_LOOPS=0", "WL_FC_CODEBOOK=0")}


def _run(tmp_path, target, cases, inputs, build_name: str):
    build = tmp_path / build_name
    build.mkdir()
    total = _source(build, cases, inputs)
    header = ("int wl_fc_stream_check_run(const float *in, float *out);\n#define WL_HARNESS_INPUT_SIZE 1\n"
              f"#define WL_HARNESS_OUTPUT_SIZE {total}\n#define WL_HARNESS_RUN(in, out) wl_fc_stream_check_run(in, out)\n")
    fw = firmware_dir()
    sources = [REPO / "tests" / "c" / "wl_fc_stream_check.c", fw / "src" / "wl_weights_decode.c",
               fw / "src" / "wl_fc_encoded_f32.c", fw / "src" / "wl_fc_encoded_s8.c", fw / "src" / "wl_fc_f32.c"]
    elf = build_image(get_target(target), build / "build", sources, [build, fw / "include"], header,
                      model_defines=BUILDS[build_name])
    return run_firmware(elf, get_target(target), np.zeros((1, 1), np.float32), total, model="fc-stream").outputs[0]


def _check(tmp_path, target, cases):
    inputs = _inputs(cases)
    got = _run(tmp_path, target, cases, inputs, "loops")
    start = 0
    for (enc, rows, k_in, n_out), d in zip(cases, inputs):
        n = rows * n_out
        stream, dense, s8 = (got[start + j * n:start + (j + 1) * n].reshape(rows, n_out) for j in range(3))
        start += 3 * n
        label = f"t={enc.table.bits} hashes={enc.table.hashes}" if enc.kind == "bloomier" else f"{enc.kind} {enc.bits}"
        assert np.array_equal(stream, dense), f"{label}: the streaming loop differs from the dense kernel"
        w = _dense_order(enc.decode().astype(np.float64), k_in, n_out)
        np.testing.assert_allclose(dense, d["x"].astype(np.float64) @ w.T + d["bias"], rtol=1e-4, atol=1e-4,
                                   err_msg=label)
        w8 = _dense_order(d["enc8"].decode().astype(np.int64), k_in, n_out)
        acc = (d["x8"].astype(np.int64) @ w8.T + d["bias8"]) * MULTIPLIER
        want8 = np.clip(np.round(acc / float(1 << SHIFT)) + OFFSET, -128, 127)  # exact: |acc| < 2^53
        assert np.array_equal(s8, want8), f"{label}: int8 loop"
    assert start == got.size
    for other in ("decode", "size"):
        again = _run(tmp_path, target, cases, inputs, other)
        assert np.array_equal(got.view(np.uint32), again.view(np.uint32)), f"the {other} build gives other bits"


def test_every_t_and_hash_count_on_host(tmp_path):
    _check(tmp_path, "host", _cases())


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_every_t_and_hash_count_under_qemu(tmp_path, target):
    _check(tmp_path, target, _cases())


def test_a_generated_library_compiles_only_the_loops_its_tables_use():
    class S:  # the parts of lowering.Step that model_config reads
        def __init__(self, kernel, enc):
            self.kernel, self.encoding = kernel, enc
            self.encodings = [enc] if enc is not None else []

    a, b = bloomier_case(400, 40, 10, 16, hashes=4), bloomier_case(400, 40, 7, 16, hashes=3)
    steps = [S("fc_encoded", a), S("fc_encoded_s8", b), S("fc_encoded", a), S("conv2d_encoded", b), S("fc", None)]
    assert bloomier_cases(steps) == [(7, 3), (10, 4)]
    speed, size = model_config(steps), model_config(steps, "size")
    assert "#define WL_BLOOMIER_CASES(X) X(7, 3) X(10, 4)\n" in speed and "#define WL_BLOOMIER_LOOPS 1\n" in speed
    assert "#define WL_BLOOMIER_LOOPS 0\n" in size and "#define WL_BLOOMIER_ONLY_LISTED 1\n" in size
    assert "#define WL_BLOOMIER_CASES(X) \n" in model_config(steps[3:])
    # a sparse stream's decode and loop are compiled in only for a model that has one
    assert "#define WL_SPARSE 0\n" in speed
    assert "#define WL_SPARSE 1\n" in model_config([*steps, S("conv2d_encoded", sparse_case(400, 4, 0.1, 100))])
    # the loops test a lane's low byte first: a t > 8 table with K > 255 is read by the general decoder
    big = model_config([*steps, S("fc_encoded", bloomier_case(400, 40, 12, 300))])
    assert "#define WL_BLOOMIER_CASES(X) X(7, 3) X(10, 4)\n" in big and "#define WL_BLOOMIER_ONLY_LISTED 0\n" in big
    assert "#define WL_BLOOMIER_ONLY_LISTED 1\n" in speed


def _fc_model(path, n_out, n_in):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((n_out, n_in)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(n_out).astype(np.float32), "b")
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "fc",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])], [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("bits", [6, 11])
def test_optimize_size_and_speed_in_firmware(tmp_path, bits):
    """Both ways verify against onnxruntime under QEMU (two rows after the last block of four
    included); size links less code and runs more instructions; neither links the general decoder
    or a loop of a case the model does not use, and speed no second decoder of its case."""
    model = _fc_model(tmp_path / "fc.onnx", 30, 64)  # 7 blocks of four outputs and two rows after them
    opts = make_settings(dict(density=0.2, clusters=8, bits=bits, encoding="bloomier", hashes=3))
    res = {o: verify(model, target="cortex-m4", samples=3, compression=opts, optimize=o) for o in ("speed", "size")}
    for o, r in res.items():
        assert r["match"], (o, r["max_rel_error"])
        assert not {"wl_bloomier_group", "wl_weights_query", "wl_weights_decode_f32"} & set(r["code"]), (o, r["code"])
        # with the loop, the rows after the last block of four read their weights through it: no
        # decoder of the case's own; without it (size), through the case's lane decode
        assert (f"wl_fc_lane_t{bits}_h3" in r["code"]) == (o == "size"), (o, r["code"])
        assert [n for n in r["code"] if n.startswith(("wl_fc_lane_t", "wl_fc_groups_t"))] == \
            [n for n in r["code"] if n.endswith(f"_t{bits}_h3")]
    assert f"wl_fc_groups_t{bits}_h3" in res["speed"]["code"] and f"wl_fc_groups_t{bits}_h3" not in res["size"]["code"]
    code = {o: sum(r["code"].values()) for o, r in res.items()}
    assert code["size"] < code["speed"] and res["size"]["instructions"] > res["speed"]["instructions"]
    # the whole-model ratio: the dense model's model flash, built on its own, over the compressed one's
    dense = verify(model, target="cortex-m4", samples=1)
    for r in res.values():
        assert r["dense_flash_bytes"] == dense["flash_bytes"] and "dense_flash_bytes" not in dense
        assert r["model_flash_ratio"] == pytest.approx(dense["flash_bytes"] / r["flash_bytes"], rel=1e-3)
    assert res["size"]["model_flash_ratio"] > res["speed"]["model_flash_ratio"]
    line = [x for x in encoding_lines(res["size"]) if x.startswith("  whole model")]
    assert line == [f"  whole model: {res['size']['flash_bytes']:,} B of model flash (tables, constants, code) against "
                    f"{dense['flash_bytes']:,} B dense ({res['size']['model_flash_ratio']:.1f}x)"]


@pytest.mark.parametrize("optimize", ["speed", "size"])
def test_a_wide_table_with_more_than_255_values_in_firmware(tmp_path, optimize):
    """t > 8 with K > 255: the loops test a lane's low byte, so this table is read position by
    position through the general decoder, which the library then links; equal to onnxruntime."""
    model = _fc_model(tmp_path / "fc.onnx", 30, 64)
    opts = make_settings(dict(density=0.3, clusters=300, bits=12, encoding="bloomier"))
    r = verify(model, target="cortex-m4", samples=2, compression=opts, optimize=optimize)
    assert r["match"], r["max_rel_error"]
    assert "wl_weights_query" in r["code"] and not any(n.startswith("wl_fc_groups_t") for n in r["code"]), r["code"]


def test_optimize_is_checked(tmp_path):
    model = _fc_model(tmp_path / "fc.onnx", 8, 16)
    with pytest.raises(OptionError, match="--optimize"):
        compile_model(model, tmp_path / "out", optimize="fast")


def test_cli_optimize_size_writes_a_library_without_loops(tmp_path):
    from weightless_mcu.cli import main

    model = _fc_model(tmp_path / "fc.onnx", 12, 40)
    args = ["compile", str(model), "-o", str(tmp_path / "out"), "--density", "0.3", "--bits", "9", "--clusters", "8",
            "--encoding", "bloomier", "-q"]
    assert main(args + ["--optimize", "size"]) == 0
    config = (tmp_path / "out" / "runtime" / "wl_model_config.h").read_text()
    assert "X(9, 4)" in config and "#define WL_BLOOMIER_LOOPS 0" in config
    assert main(args) == 0
    assert "#define WL_BLOOMIER_LOOPS 1" in (tmp_path / "out" / "runtime" / "wl_model_config.h").read_text()


def test_conv_tables_decode_through_their_listed_case(tmp_path):
    """A convolution's table is decoded by its case's group decode (wl_weights_decode.c), and the
    general one is not linked; the firmware verifies against onnxruntime under QEMU."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((12, 6, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12, 8, 8])], [w])
    model = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    for bits, hashes in ((11, 4), (6, 2)):
        opts = make_settings(dict(density=0.3, clusters=8, bits=bits, encoding="bloomier", hashes=hashes))
        r = verify(model, target="cortex-m4", samples=2, compression=opts)
        assert r["match"], r["max_rel_error"]
        assert f"wl_decode_group_t{bits}_h{hashes}" in r["code"]
        assert not {"wl_bloomier_group", "wl_weights_query"} & set(r["code"]), r["code"]
