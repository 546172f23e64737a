"""Where the package's data lives: templates/, firmware/ and qemu/ beside the
package in a checkout, or inside it (weightless_mcu/_data/) once installed."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for base in (_PKG / "_data", _PKG.parent):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"the package's {name}/ directory is missing; reinstall weightless-mcu")


def templates_dir() -> Path:
    return data_dir("templates")


def firmware_dir() -> Path:
    return data_dir("firmware")


def qemu_dir() -> Path:
    return data_dir("qemu")


@lru_cache(maxsize=1)
def template_environment() -> jinja2.Environment:
    """The one Jinja2 environment every generated C file is rendered with."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
