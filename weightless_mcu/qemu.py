"""Run a firmware image: under qemu-system-arm on the target's board, or
natively for the host target. Inputs go in and outputs come out through files
(semihosting); instruction counts come from the counting plugin in qemu/."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile

from .errors import RunError, ToolchainError
from .hostbuild import shared_library
from .resources import qemu_dir
from .targets import Target

EXIT_IO, EXIT_MODEL, EXIT_FAULT = 2, 3, 127  # firmware/board/wl_board.h


@dataclass
class RunResult:
    outputs: np.ndarray  # (samples, output floats)
    instructions: list[int] | None  # per inference, exact (None on the host)
    stack_bytes: int | None  # deepest stack use of one inference (None on the host)
    stdout: str = ""  # what the firmware printed
    # A profiling build's instructions per step, per inference (None otherwise): each step's
    # count includes the marker call after it, a few instructions.
    step_instructions: list[list[int]] | None = None


def _plugin() -> Path:
    """The instruction-counting plugin, built once per source version."""
    return shared_library(qemu_dir() / "wl_insn_count.c", "the QEMU instruction-counting plugin")


def _symbol_addresses(elf: Path, names: list[str]) -> dict[str, int]:
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        found = {}
        for name in names:
            syms = symtab.get_symbol_by_name(name) if symtab else None
            if not syms:
                raise RunError(f"{elf}: symbol {name} is missing; is it a weightless-mcu test firmware?")
            found[name] = syms[0]["st_value"] & ~1  # Thumb bit
        return found


PROGRESS_EVERY = 5.0  # seconds between progress messages of a long run


def _run_with_progress(cmd: list[str], cwd: Path, timeout: float, samples: int,
                       progress: Callable[[str], None] | None) -> subprocess.CompletedProcess | None:
    """Run cmd, telling progress how many samples are done every few seconds
    (the harness prints a line per sample); None when it passes the timeout."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda f=f, sink=sink: sink.extend(iter(f.readline, "")), daemon=True)
               for f, sink in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    start = time.monotonic()
    while True:
        try:
            proc.wait(timeout=min(PROGRESS_EVERY, max(0.01, start + timeout - time.monotonic())))
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() - start >= timeout:
                proc.kill()
                proc.wait()
                return None
            if progress is not None:
                done = sum(line.startswith("wlh_sample_done") for line in list(out))
                progress(f"{done}/{samples} samples done ({time.monotonic() - start:.0f} s)")
    for r in readers:
        r.join()
    stdout = "".join(line for line in out if not line.startswith("wlh_sample_done"))
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, "".join(err))


def run_firmware(elf: Path, target: Target, inputs: np.ndarray, output_floats: int, *,
                 model: str = "model", timeout: float = 300.0, progress: Callable[[str], None] | None = None,
                 profile: bool = False) -> RunResult:
    """Run the harness firmware on inputs (samples, input floats). profile: the firmware was
    built with profile=True; the step marker's counts come back per inference."""
    inputs = np.ascontiguousarray(inputs, np.float32)
    samples = inputs.shape[0]
    with tempfile.TemporaryDirectory(prefix="wl-run-") as tmp:
        work = Path(tmp)
        inputs.tofile(work / "input.bin")
        log = work / "plugin.log"
        if target.is_host:
            cmd = [str(Path(elf).resolve())]
        else:
            qemu = shutil.which("qemu-system-arm")
            if qemu is None:
                raise ToolchainError("'qemu-system-arm' was not found on PATH (apt-get install qemu-system-arm)")
            marks = _symbol_addresses(elf, ["wlh_count_begin", "wlh_count_end", *(["wl_profile_step"] if profile else [])])
            plugin = f"{_plugin()},begin={marks['wlh_count_begin']:x},end={marks['wlh_count_end']:x}"
            if profile:
                plugin += f",step={marks['wl_profile_step']:x}"
            cmd = [qemu, "-machine", target.board.machine, "-display", "none", "-serial", "none", "-monitor", "none",
                   "-semihosting-config", "enable=on,target=native", "-kernel", str(Path(elf).resolve()),
                   "-plugin", plugin, "-d", "plugin", "-D", str(log)]
        where = "on the host" if target.is_host else f"under QEMU ({target.board.machine})"
        proc = _run_with_progress(cmd, work, timeout, samples, progress)
        if proc is None:
            raise RunError(f"the firmware of model '{model}' for {target.name} did not finish within {timeout:.0f} s {where} (hung?)")
        if proc.returncode == EXIT_FAULT:
            raise RunError(f"the firmware of model '{model}' for {target.name} faulted {where} (HardFault or another fault exception)")
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}").splitlines()[-1]
            raise RunError(f"the firmware of model '{model}' for {target.name} failed {where}: {detail}")
        raw = np.fromfile(work / "output.bin", dtype=np.float32)
        if raw.size != samples * output_floats:
            raise RunError(f"the firmware of model '{model}' wrote {raw.size} output floats, expected {samples * output_floats}")
        instructions = stack = steps = None
        if not target.is_host:
            lines = log.read_text().splitlines()
            counts = [int(line.split()[1]) for line in lines if line.startswith("wl_insns ")]
            if len(counts) != samples + 1:
                raise RunError(f"the counting plugin reported {len(counts)} regions, expected {samples + 1}")
            instructions = [c - counts[0] for c in counts[1:]]
            if profile:
                steps = _step_counts(lines)[1:]  # the first region is the markers' empty pair
                if len(steps) != samples:
                    raise RunError(f"the counting plugin reported steps of {len(steps)} inferences, expected {samples}")
            for line in proc.stdout.splitlines():
                if line.startswith("wlh_stack_bytes "):
                    stack = int(line.split()[1])
        return RunResult(raw.reshape(samples, output_floats), instructions, stack, proc.stdout, steps)


def _step_counts(lines: list[str]) -> list[list[int]]:
    """Per counted region, the instructions of each step: from the previous step's mark (the
    region's start for the first step) to its own."""
    regions: list[list[int]] = []
    marks: list[int] = []
    for line in lines:
        if line.startswith("wl_step "):
            marks.append(int(line.split()[1]))
        elif line.startswith("wl_insns "):
            ends = [0, *marks]
            regions.append([b - a for a, b in zip(ends, ends[1:])])
            marks = []
    return regions
