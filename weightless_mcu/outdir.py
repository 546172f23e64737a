"""Writing outputs atomically: all files of a directory appear at once, or OUT is
left as it was; a single file is written whole or not at all."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import OptionError


def write_tree(out_dir: Path, files: dict[str, bytes]) -> None:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OptionError(f"output path {out_dir} exists and is not a directory")
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=parent))
    try:
        for rel, content in sorted(files.items()):
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
            os.rename(out_dir, old / "tree")
        os.rename(staging, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_file(path: str | os.PathLike, text: str) -> None:
    """Write text to path through a temporary file renamed into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OptionError(f"cannot write {path}: {exc.strerror}") from None
