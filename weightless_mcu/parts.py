"""Flash and RAM limits: sizes like 256K given by hand, or a part from a small
table of common Cortex-M microcontrollers (their on-chip memories, from the
vendors' datasheets; the application's own use is not subtracted)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import OptionError

KIB = 1024


@dataclass(frozen=True)
class Part:
    name: str
    core: str
    flash: int  # bytes
    ram: int  # bytes
    note: str = ""


PARTS = {p.name.lower(): p for p in (
    Part("STM32F103C8", "Cortex-M3", 64 * KIB, 20 * KIB),
    Part("STM32F411RE", "Cortex-M4F", 512 * KIB, 128 * KIB),
    Part("STM32F446RE", "Cortex-M4F", 512 * KIB, 128 * KIB),
    Part("STM32L432KC", "Cortex-M4F", 256 * KIB, 64 * KIB),
    Part("STM32L476RG", "Cortex-M4F", 1024 * KIB, 128 * KIB),
    Part("STM32F746NG", "Cortex-M7", 1024 * KIB, 320 * KIB),
    Part("STM32H743ZI", "Cortex-M7", 2048 * KIB, 1024 * KIB),
    Part("nRF52832", "Cortex-M4F", 512 * KIB, 64 * KIB),
    Part("nRF52840", "Cortex-M4F", 1024 * KIB, 256 * KIB),
    Part("RP2040", "Cortex-M0+", 2048 * KIB, 264 * KIB, "no on-chip flash: 2 MiB QSPI flash as on the Pico"),
    Part("ATSAMD21G18", "Cortex-M0+", 256 * KIB, 32 * KIB),
    Part("MAX78000", "Cortex-M4F", 512 * KIB, 128 * KIB),
)}
ALIASES = {"stm32f411": "stm32f411re", "stm32f446": "stm32f446re", "stm32f103": "stm32f103c8", "stm32l476": "stm32l476rg",
           "stm32f746": "stm32f746ng", "stm32h743": "stm32h743zi", "samd21": "atsamd21g18", "stm32l432": "stm32l432kc"}


def get_part(name: str) -> Part:
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in PARTS:
        raise OptionError(f"unknown part '{name}'; known parts: {', '.join(p.name for p in PARTS.values())}")
    return PARTS[key]


def parse_size(text: str, what: str) -> int:
    """'256K', '64k', '1M', '1.5M', '20000' -> bytes (K = 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise OptionError(f"{what} '{text}' is not a size (e.g. 256K, 1M or a number of bytes)")
    value = float(m.group(1)) * {"": 1, "k": KIB, "m": KIB * KIB}[m.group(2).lower()]
    if value <= 0:
        raise OptionError(f"{what} must be positive, not '{text}'")
    return int(value)


@dataclass(frozen=True)
class Limits:
    flash: int | None
    ram: int | None
    part: Part | None = None

    @property
    def label(self) -> str:
        return self.part.name if self.part else "the limits given"


def make_limits(flash: str | None, ram: str | None, part: str | None) -> Limits | None:
    """--part sets both limits; --flash-limit / --ram-limit override one of them."""
    p = get_part(part) if part else None
    f = parse_size(flash, "--flash-limit") if flash else (p.flash if p else None)
    r = parse_size(ram, "--ram-limit") if ram else (p.ram if p else None)
    if f is None and r is None:
        return None
    return Limits(f, r, p)


def check_limits(res: dict, limits: Limits) -> list[dict]:
    """One row per limit: what the model uses (its flash: tables, constants and
    code; its RAM: arena, statics and the inference's stack) against it."""
    rows = []
    for what, used, limit in (("flash", res["flash_bytes"], limits.flash), ("RAM", res.get("ram_total_bytes", res["ram_bytes"]), limits.ram)):
        if limit is not None:
            rows.append({"memory": what, "used_bytes": used, "limit_bytes": limit, "fits": used <= limit})
    return rows
