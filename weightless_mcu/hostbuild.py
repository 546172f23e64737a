"""Shared libraries built from C sources with the host compiler, once per
source version, into a per-user cache: the QEMU counting plugin and the
Bloomier table solver."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import ToolchainError


def _cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "weightless-mcu"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home: a per-user temporary directory will do
        cache = Path(tempfile.gettempdir()) / f"weightless-mcu-{os.getuid()}"
        cache.mkdir(parents=True, exist_ok=True)
    return cache


def shared_library(src: Path, what: str) -> Path:
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    lib = _cache_dir() / f"{src.stem}-{digest}.so"
    if lib.exists():
        return lib
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ToolchainError(f"no host C compiler (cc) found to build {what}")
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"building {what} failed: {proc.stderr.strip()[:500]}")
    tmp.replace(lib)
    return lib
