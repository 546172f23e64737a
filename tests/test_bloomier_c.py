"""The Python decode and the C decode of compressed weights agree bit for bit
on every position, kept and pruned: Bloomier tables of many shapes, t from 1
to 16, K up to 2^t - 1, n = 0, n = 1, density 1.0, and codebook encodings, with
float32 and int8 codebooks; on the host build for all and under QEMU for a few; with the
general decode and with a decode of its own for each table's (t, hashes)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from weightless_mcu.codegen import render_encoded_weights
from weightless_mcu.compress.bloomier import build_table
from weightless_mcu.compress.encodings import BloomierEncoding, CodebookEncoding
from weightless_mcu.qemu import run_firmware
from weightless_mcu.resources import firmware_dir
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_image

from .conftest import REPO


def bloomier_case(positions, n_keys, bits, clusters, hashes=4, seed=7, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    keys = np.sort(rng.choice(positions, size=n_keys, replace=False)) if n_keys else np.zeros(0, np.int64)
    values = rng.integers(1, clusters + 1, size=n_keys)
    table = build_table(positions, keys, values, bits, hashes=hashes, seed=seed)
    codebook = np.sort(rng.standard_normal(clusters)).astype(np.float32)
    enc = BloomierEncoding(table, codebook, n_keys, 0)
    assert np.array_equal(table.query()[keys], values), "construction: every kept key decodes to its value"
    return enc


def codebook_case(positions, clusters, density, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    idx = np.where(rng.random(positions) < density, rng.integers(1, clusters + 1, size=positions), 0).astype(np.uint32)
    return CodebookEncoding(idx, np.sort(rng.standard_normal(clusters)).astype(np.float32))


def int8_case(enc, rng_seed=0):
    """The same table with an int8 codebook (an int8 layer's shared values), extremes included."""
    k = int(enc.codebook.size)
    book = np.random.default_rng(rng_seed).integers(-128, 128, size=k)
    book[:min(k, 2)] = [-128, 127][:min(k, 2)]
    return dataclasses.replace(enc, codebook=book.astype(np.int8))


def all_cases():
    cases = []
    for bits in range(1, 17):
        k_max = (1 << bits) - 1
        for clusters in sorted({1, k_max, min(k_max, 16)}):
            positions = 37 + 53 * bits
            cases.append(bloomier_case(positions, positions // 10 + 1, bits, clusters, rng_seed=bits))
    cases += [
        bloomier_case(0, 0, 8, 16),            # n = 0 positions
        bloomier_case(1, 1, 8, 3),             # one key
        bloomier_case(9, 0, 5, 7),             # no key stored: every position is pruned
        bloomier_case(640, 640, 8, 255),       # density 1.0
        bloomier_case(4000, 400, 8, 16, hashes=3),
        bloomier_case(4000, 400, 6, 8, hashes=2),
        bloomier_case(3001, 1500, 16, 65535),  # t = 16, K = 2^16 - 1
        bloomier_case(20000, 2000, 8, 16),     # several blocks
        bloomier_case(5003, 700, 7, 100, hashes=2),
        codebook_case(1000, 16, 0.1),
        codebook_case(777, 1, 0.5),
        codebook_case(513, 255, 1.0),
        codebook_case(3, 2, 0.0),
    ]
    cases += [int8_case(bloomier_case(37 + 53 * t, 20 + 5 * t, t, min((1 << t) - 1, 16), rng_seed=t), t)
              for t in range(1, 17)]
    cases += [int8_case(bloomier_case(20000, 2000, 8, 16)), int8_case(bloomier_case(3001, 1500, 16, 300), 1),
              int8_case(codebook_case(1000, 15, 0.2)), int8_case(codebook_case(3, 2, 0.0), 2)]
    return cases


# What tests/c/wl_decode_dump.c writes per table after the decodes: queries past the
# end give 0; a decode past the end, and a query, decode or fc kernel call on an
# unknown kind of encoding, are refused (WL_ERR_ARG = -1; a query gives 0).
CHECKS = np.array([0, 0, 0, -1, 0, -1, -1], np.float32)


def expected(enc) -> np.ndarray:
    words = enc.table.query() if isinstance(enc, BloomierEncoding) else enc.indices
    return np.concatenate([words.astype(np.float32), enc.decode()])


def expected_dump(cases) -> np.ndarray:
    return np.concatenate([expected(e) for e in cases] + [CHECKS] * len(cases))


def listed(cases) -> tuple[str, ...]:
    """Defines for a build whose decode has a case of its own for each table's (t, hashes), and
    nothing else (as a generated library's wl_model_config.h sets them)."""
    pairs = sorted({(e.table.bits, e.table.hashes) for e in cases if isinstance(e, BloomierEncoding)})
    return ("WL_BLOOMIER_DECODE_CASES(X)=" + " ".join(f"X({t},{h})" for t, h in pairs), "WL_BLOOMIER_ONLY_LISTED=1")


def build_dump(tmp_path, target, cases, sanitize=False, defines=()):
    tables = "\n".join(render_encoded_weights(f"wl_dump_t{i}", e) for i, e in enumerate(cases))
    ptrs = ", ".join(f"&wl_dump_t{i}_weights" for i in range(len(cases)))
    inc = tmp_path / "wl_decode_tables.inc"
    s8 = ", ".join(str(int(e.codebook.dtype == np.int8)) for e in cases)
    inc.write_text(f"{tables}\n#define WL_DUMP_TABLES {len(cases)}u\n"
                   f"static const wl_encoded_weights_t *const wl_dump_tables[] = {{{ptrs}}};\n"
                   f"static const int wl_dump_s8[] = {{{s8}}};\n")
    total = int(sum(2 * e.positions for e in cases)) + CHECKS.size * len(cases)
    header = ("int wl_decode_dump_run(const float *in, float *out);\n#define WL_HARNESS_INPUT_SIZE 1\n"
              f"#define WL_HARNESS_OUTPUT_SIZE {max(total, 1)}\n#define WL_HARNESS_RUN(in, out) wl_decode_dump_run(in, out)\n")
    fw = firmware_dir()
    sources = [REPO / "tests" / "c" / "wl_decode_dump.c", fw / "src" / "wl_weights_decode.c", fw / "src" / "wl_fc_encoded_f32.c",
               fw / "src" / "wl_fc_encoded_s8.c"]
    elf = build_image(get_target(target), tmp_path / f"build-{target}", sources, [tmp_path, fw / "include"], header,
                      sanitize=sanitize, model_defines=defines)
    return elf, total


def run_cases(tmp_path, target, cases, defines=()):
    elf, total = build_dump(tmp_path, target, cases, defines=defines)
    out = run_firmware(elf, get_target(target), np.zeros((1, 1), np.float32), max(total, 1), model="decode-dump").outputs[0]
    start = 0
    for i, enc in enumerate(cases):
        want = expected(enc)
        got = out[start:start + want.size]
        start += want.size
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), f"case {i} ({enc.kind}) differs at {np.flatnonzero(got != want)[:5]}"
    checks = out[start:].reshape(len(cases), CHECKS.size)
    assert np.array_equal(checks, np.tile(CHECKS, (len(cases), 1))), checks


def test_c_decode_matches_python_on_host(tmp_path):
    run_cases(tmp_path, "host", all_cases())


def test_listed_cases_decode_matches_python_on_host(tmp_path):
    cases = all_cases()
    cases += [bloomier_case(500, 60, t, min(15, (1 << t) - 1), hashes=h, rng_seed=t + h) for t in range(1, 17) for h in (2, 3)]
    run_cases(tmp_path, "host", cases, listed(cases))


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m3"])
def test_c_decode_matches_python_under_qemu(tmp_path, target):
    cases = [bloomier_case(2000, 200, 8, 16), bloomier_case(999, 300, 5, 31), bloomier_case(1200, 100, 13, 1000),
             bloomier_case(700, 700, 16, 65535), codebook_case(900, 7, 0.3),
             int8_case(bloomier_case(2000, 200, 8, 16)), int8_case(bloomier_case(999, 300, 5, 31), 1),
             int8_case(bloomier_case(1200, 100, 13, 1000), 2), int8_case(codebook_case(900, 7, 0.3), 3),
             bloomier_case(800, 90, 10, 16, hashes=3), bloomier_case(800, 90, 7, 16, hashes=2)]
    run_cases(tmp_path, target, cases)
    (tmp_path / "listed").mkdir()
    run_cases(tmp_path / "listed", target, cases, listed(cases))


def test_nbytes_is_what_lands_in_flash(tmp_path):
    """nbytes() equals the sizes of the symbols the firmware links for the encoding."""
    from weightless_mcu.report import read_elf

    cases = [bloomier_case(5000, 500, 8, 16), bloomier_case(333, 40, 6, 20), codebook_case(1000, 16, 0.1),
             int8_case(bloomier_case(333, 40, 6, 7)), int8_case(codebook_case(1000, 15, 0.1))]
    elf, _ = build_dump(tmp_path, "cortex-m4", cases)
    syms = read_elf(elf).symbols
    for i, enc in enumerate(cases):
        linked = sum(size for name, (size, _) in syms.items() if name.startswith(f"wl_dump_t{i}_"))
        assert linked == enc.nbytes(), (i, linked, enc.nbytes())


def test_block_size_cap_never_merges_dense_regions():
    """The 16-bit cap on groups per block is applied before the search that keeps
    every block within 1,024 words: capped afterwards, the 3,600 keys on each side
    of the first natural block boundary fell into one block that no seed solves."""
    groups, boundary = 400_000, 107_874  # the first block boundary for 7,200 keys among 400,000 groups
    keys = np.arange(4 * boundary - 3600, 4 * boundary + 3600)
    values = np.arange(keys.size) % 16 + 1
    table = build_table(4 * groups, keys, values, 8)
    assert np.array_equal(table.query(keys), values)
    assert np.diff(table.block_word.astype(np.int64)).max() <= 1024
