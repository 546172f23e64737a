"""Targets as data: each a row naming its board (from qemu/boards.toml) or the
host compiler."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache

from .errors import TargetError
from .resources import qemu_dir


@dataclass(frozen=True)
class Board:
    machine: str
    core: str
    cflags: tuple[str, ...]
    flash_origin: int
    flash_size: int
    ram_origin: int
    ram_size: int


@dataclass(frozen=True)
class Target:
    name: str
    board: Board | None  # None: the host machine's own compiler

    @property
    def is_host(self) -> bool:
        return self.board is None

    @property
    def cc(self) -> str:
        return "cc" if self.is_host else "arm-none-eabi-gcc"


@lru_cache(maxsize=1)
def boards() -> dict[str, Board]:
    with open(qemu_dir() / "boards.toml", "rb") as f:
        table = tomllib.load(f)
    return {m: Board(m, row["core"], tuple(row["cflags"]), row["flash_origin"], row["flash_size"],
                     row["ram_origin"], row["ram_size"]) for m, row in table.items()}


_TARGET_BOARDS = {
    "cortex-m3": "mps2-an385",
    "cortex-m4": "mps2-an386",
    "cortex-m7": "mps2-an500",
    "cortex-m33": "mps2-an505",
}
DEFAULT_TARGET = "cortex-m4"


def target_names() -> list[str]:
    return [*_TARGET_BOARDS, "host"]


def get_target(name: str) -> Target:
    if name == "host":
        return Target("host", None)
    if name not in _TARGET_BOARDS:
        raise TargetError(f"unknown target '{name}'; known targets: {', '.join(target_names())}")
    return Target(name, boards()[_TARGET_BOARDS[name]])
