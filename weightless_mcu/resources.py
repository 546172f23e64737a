"""Where the package's data lives: templates/, firmware/ and qemu/ beside the
package in a checkout, or inside it (weightless_mcu/_data/) once installed."""
from __future__ import annotations

from pathlib import Path

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
