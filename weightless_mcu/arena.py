"""The activation arena: one static buffer whose regions are reused by tensors
whose lifetimes do not overlap.

Views (Reshape, Flatten, no-op Transpose) and in-place steps share their
source's region, so a region's lifetime spans every tensor that lives in it.
Sizes and offsets are in bytes, so tensors of any element type share the arena.
"""
from __future__ import annotations

from dataclasses import dataclass

ALIGN_BYTES = 16  # every region starts 16-byte aligned


@dataclass(frozen=True)
class Region:
    root: str  # the tensor that owns the region
    size: int  # bytes
    first: int  # index of the step that writes it first
    last: int  # index of the step that reads it last
    offset: int = 0  # bytes from the start of the arena


@dataclass
class ArenaPlan:
    size: int  # bytes
    lower_bound: int  # bytes: the largest sum of live regions at any step
    regions: list[Region]
    offset: dict[str, int]  # tensor name -> offset in bytes (arena tensors only)


def _align(n: int) -> int:
    return (n + ALIGN_BYTES - 1) // ALIGN_BYTES * ALIGN_BYTES


def _place(order: list[Region]) -> tuple[int, list[Region]]:
    """Each region at the lowest offset where it overlaps no region live with it placed before."""
    placed: list[Region] = []
    for reg in order:
        busy = sorted((p.offset, p.offset + _align(p.size)) for p in placed if not (p.last < reg.first or reg.last < p.first))
        offset = 0
        for start, end in busy:
            if offset + reg.size <= start:
                break
            offset = max(offset, end)
        placed.append(Region(reg.root, reg.size, reg.first, reg.last, offset))
    return max((_align(p.offset + p.size) for p in placed), default=0), placed


def plan_arena(lifetimes: dict[str, tuple[int, int]], sizes: dict[str, int], members: dict[str, str]) -> ArenaPlan:
    """lifetimes: root -> (first, last) step; sizes: root -> bytes; members:
    tensor -> root for every tensor held in the arena."""
    regions = [Region(r, sizes[r], *lifetimes[r]) for r in sorted(lifetimes)]
    # Two greedy orders, the smaller arena kept: largest first (then earliest), the usual one,
    # and earliest first (then largest), which reaches the bound where the first does not
    # (the int8 VWW: 64,512 B against 55,296 B).
    plans = [_place(sorted(regions, key=lambda r: (-r.size, r.first, r.root))),
             _place(sorted(regions, key=lambda r: (r.first, -r.size, r.root)))]
    size, placed = min(plans, key=lambda p: p[0])
    steps = max((r.last for r in regions), default=-1) + 1
    bound = max((sum(r.size for r in regions if r.first <= s <= r.last) for s in range(steps)), default=0)
    where = {p.root: p.offset for p in placed}
    return ArenaPlan(size, bound, sorted(placed, key=lambda p: p.offset), {t: where[r] for t, r in members.items()})
