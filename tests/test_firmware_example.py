"""The output directory as a drop-in library: examples/firmware builds with the
generated Makefile fragment and with the generated CMakeLists.txt, places the
weight tables in a section of its own (external memory), runs under QEMU and
computes exactly what the verified harness firmware computes."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from .conftest import REPO

EXAMPLE = REPO / "examples" / "firmware"
QEMU = ["qemu-system-arm", "-machine", "mps2-an386", "-display", "none", "-serial", "none", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native", "-kernel"]
EXT_FLASH = (0x21000000, 0x22000000)  # the PSRAM region of examples/firmware/mps2_an386.ld


def _outputs(elf) -> np.ndarray:
    proc = subprocess.run([*QEMU, str(elf)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bits = [int(m.group(1), 16) for m in re.finditer(r"output\[\d+\] ([0-9a-f]{8})", proc.stdout)]
    return np.array(bits, np.uint32).view(np.float32)


def _table_addresses(elf) -> dict[str, int]:
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {f[2]: int(f[0], 16) for f in (line.split() for line in nm.splitlines()) if len(f) == 3
            and re.fullmatch(r"wl_digits_mlp_l\d+_(cells|codebook|bias)", f[2])}


@pytest.fixture(scope="module")
def make_build(tmp_path_factory):
    build = tmp_path_factory.mktemp("fw") / "build"
    wl = f"{sys.executable} -m weightless_mcu"
    proc = subprocess.run(["make", "-C", str(EXAMPLE), f"BUILD={build}", f"WEIGHTLESS_MCU={wl}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """The verified harness firmware's outputs for the example's input pattern."""
    work = tmp_path_factory.mktemp("ref")
    i = np.arange(64)
    x = (((i * 37) % 101).astype(np.float32) / np.float32(50.0) - np.float32(1.0)).astype(np.float32)
    np.savez(work / "x.npz", input=x[None])
    proc = subprocess.run([sys.executable, "-m", "weightless_mcu", "verify", str(REPO / "examples" / "digits_mlp.onnx"),
                           "--density", "0.3", "--inputs", str(work / "x.npz"), "--outputs", str(work / "y.npz"), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # matches onnxruntime on the decoded model
    return next(iter(np.load(work / "y.npz").values())).reshape(-1)


def test_makefile_fragment_build_runs_under_qemu(make_build, expected):
    got = _outputs(make_build / "firmware.elf")
    assert got.shape == (10,) and np.array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_weight_tables_land_in_their_own_section(make_build):
    tables = _table_addresses(make_build / "firmware.elf")
    assert {"wl_digits_mlp_l0_cells", "wl_digits_mlp_l0_codebook", "wl_digits_mlp_l1_bias"} <= set(tables)
    assert all(EXT_FLASH[0] <= a < EXT_FLASH[1] for a in tables.values()), tables


def test_fragment_lists_exactly_the_library_sources(make_build):
    lib = make_build / "digits"
    listed = re.findall(r"\$\(WL_DIGITS_MLP_DIR\)/(\S+\.c)", (lib / "model.mk").read_text())
    on_disk = ["model.c", *sorted(f"runtime/{p.name}" for p in (lib / "runtime").glob("*.c"))]
    assert listed == on_disk
    cmake_listed = re.findall(r"\$\{CMAKE_CURRENT_LIST_DIR\}/(\S+\.c)", (lib / "CMakeLists.txt").read_text())
    assert cmake_listed == on_disk


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed (scripts/install.sh installs it)")
def test_cmake_add_subdirectory_build_runs_under_qemu(make_build, expected, tmp_path):
    build = tmp_path / "cmake"
    cfg = subprocess.run(["cmake", "-S", str(EXAMPLE), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={EXAMPLE / 'arm-none-eabi.cmake'}",
                          f"-DWL_DIR={make_build / 'digits'}"], capture_output=True, text=True, timeout=120)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    bld = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True, timeout=300)
    assert bld.returncode == 0, bld.stdout[-3000:] + bld.stderr[-3000:]
    got = _outputs(build / "firmware.elf")
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert all(EXT_FLASH[0] <= a < EXT_FLASH[1] for a in _table_addresses(build / "firmware.elf").values())
