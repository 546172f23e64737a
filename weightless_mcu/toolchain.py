"""Build a test firmware from an output directory: the generated library, the
harness, and (on a board) the start-up code and a linker script rendered from
the board table."""
from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import FitError, ToolchainError
from .resources import firmware_dir, template_environment
from .stack_usage import STACK_FLAGS
from .targets import Target

# -std=c99 alone turns floating-point contraction off; fused multiply-adds are
# both faster and more accurate, so they are asked for explicitly.
OPT_FLAGS = ["-O2", "-std=c99", "-ffp-contract=fast", "-ffunction-sections", "-fdata-sections"]
WARN_FLAGS = ["-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wconversion"]  # the model and its kernels, every target
STACK_BYTES = 16 * 1024
# Host builds for testing the C: out-of-bounds reads, overflows and other undefined behaviour abort the run.
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        hint = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi" if "arm" in tool else "install a C compiler"
        raise ToolchainError(f"'{tool}' was not found on PATH ({hint})")
    return path


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        overflow = [line for line in detail if "overflowed by" in line or "RAM overflow" in line]
        if overflow:
            raise FitError(f"{what}: the image does not fit the board's memory ({overflow[0].split(': ', 1)[-1].strip()})")
        first_errors = "\n".join(detail[:20])
        raise ToolchainError(f"{what} failed ({Path(cmd[0]).name} exit {proc.returncode}):\n{first_errors}")


def _render(template: str, **ctx) -> str:
    return template_environment().get_template(template).render(**ctx)


def build_firmware(out_dir: Path, target: Target, build_dir: Path, *, sanitize: bool = False,
                   profile: bool = False) -> Path:
    """Compile and link the harness firmware for the library in out_dir; returns the ELF.
    sanitize (host only): with AddressSanitizer and UndefinedBehaviorSanitizer. profile: the
    model calls the harness's step marker after every kernel (per-step instruction counts)."""
    out_dir = Path(out_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    ctypes = {"float32": "float", "int8": "int8_t", "uint8": "uint8_t"}

    def io(kind: str, tensors: list[dict]) -> list[dict]:  # named as codegen names the run function's parameters
        return [{"size": _size(t["shape"]), "c": kind if len(tensors) == 1 else f"{kind}{k}",
                 "ctype": ctypes[t.get("dtype", "float32")]} for k, t in enumerate(tensors)]

    ctx = {"name": manifest["name"], "inputs": io("input", manifest["inputs"]), "outputs": io("output", manifest["outputs"])}
    return build_image(target, build_dir, [out_dir / "model.c", *sorted((out_dir / "runtime").glob("*.c"))],
                       [out_dir, out_dir / "runtime"], _render("harness_model.h.j2", **ctx),
                       weights_section=manifest.get("weights_section"), sanitize=sanitize,
                       model_defines=("WL_PROFILE",) if profile else ())


def build_image(target: Target, build_dir: Path, model_sources: list[Path], include_dirs: list[Path],
                harness_header: str, *, extra_sources: tuple[Path, ...] = (), extra_ldflags: tuple[str, ...] = (),
                model_warnings: tuple[str, ...] = tuple(WARN_FLAGS), weights_section: str | None = None,
                sanitize: bool = False, model_defines: tuple[str, ...] = ()) -> Path:
    """Compile model sources with the test harness (whose binding to the model is
    harness_header) and, on a board, the start-up code; link; return the ELF."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    cc = _need(target.cc)
    fw = firmware_dir()
    (build_dir / "wl_harness_model.h").write_text(harness_header)
    includes = [f"-I{d}" for d in include_dirs] + [f"-I{build_dir}", f"-I{fw / 'board'}"]
    support_sources = [fw / "harness" / "wl_harness.c", *extra_sources]
    arch = list(target.board.cflags) if not target.is_host else []
    if sanitize:
        if not target.is_host:
            raise ToolchainError(f"sanitizer builds are for the host target, not {target.name}")
        arch = list(SANITIZE_FLAGS)
    if not target.is_host:
        support_sources.append(fw / "board" / "startup_cortexm.c")
        (build_dir / "link.ld").write_text(_render("link.ld.j2", board=target.board, stack_size=STACK_BYTES,
                                                   weights_section=weights_section))

    def compile_one(src: Path) -> Path:
        obj = build_dir / (src.name[:-2] + ".o")
        own = src in model_sources  # the model's sources: its warnings, and its stack use recorded
        extra = [*model_warnings, *STACK_FLAGS, *(f"-D{d}" for d in model_defines)] if own else ["-Wall"]
        _run([cc, *arch, *OPT_FLAGS, *extra, *includes, "-c", str(src), "-o", str(obj)], f"compiling {src.name} for {target.name}")
        return obj

    with ThreadPoolExecutor(max_workers=2) as pool:
        objects = list(pool.map(compile_one, list(model_sources) + support_sources))
    elf = build_dir / "firmware.elf"
    if target.is_host:
        link = [cc, *arch, *[str(o) for o in objects], "-o", str(elf), *extra_ldflags, "-lm"]
    else:
        link = [cc, *arch, "-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs", "-Wl,--gc-sections",
                f"-T{build_dir / 'link.ld'}", *[str(o) for o in objects], "-o", str(elf), *extra_ldflags, "-lm"]
    _run(link, f"linking the firmware for {target.name}")
    return elf


def _size(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
