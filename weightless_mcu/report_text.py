"""The terminal report of `verify` and `report`: sizes, the flash of each layer
split by what it holds, RAM as arena + statics + stack, and a line per limit."""
from __future__ import annotations

from .report import FLASH_PARTS


def kib(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns aligned: the first `left` to the left, numbers to the right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        return "  " + "  ".join(cells).rstrip()

    return [line(header), *(line(r) for r in rows)]


def short_name(name: str, width: int = 40) -> str:
    """A long ONNX name cut from the left (its end names the layer)."""
    return name if len(name) <= width else "..." + name[-(width - 3):]


def encoding_lines(res: dict) -> list[str]:
    """The compressed layers: encoding, kept weights, K, t, false positives, ratio."""
    layers = [r for r in res.get("layers") or [] if r["encoding"] != "dense"]
    if not layers:
        return []
    rows = [[short_name(r["name"]), r["encoding"], f"{r['positions']:,}", f"{r['kept']:,}", str(r["clusters"] or "-"),
             str(r["bits"] or "-"), f"{r['cells_per_key']:.3f}" if r["cells_per_key"] else "-",
             f"{r['false_positives']:,}", f"{r['bytes']:,}", f"{r.get('dense_bytes', r['float32_bytes']) / r['bytes']:.1f}x"] for r in layers]
    out = _table(["weights", "encoding", "positions", "kept", "K", "t", "cells/key", "false +", "bytes", "ratio"], rows, left=2)
    plain = "as float32" if all(r.get("dense_bytes", r["float32_bytes"]) == r["float32_bytes"] for r in layers) \
        else "uncompressed (int8 weights)"
    out.append(f"  weights and biases: {res['weights_float32_bytes']:,} B {plain}, {res['weights_stored_bytes']:,} B "
               f"stored ({res['compression_ratio']:.1f}x)")
    if "model_flash_ratio" in res:
        out.append(f"  whole model: {res['flash_bytes']:,} B of model flash (tables, constants, code) against "
                   f"{res['dense_flash_bytes']:,} B dense ({res['model_flash_ratio']:.1f}x)")
    return out


def retraining_lines(summary: dict) -> list[str]:
    """Validation accuracy (or loss) of the original and the compressed model, and the budget."""
    out = []
    if "validation_accuracy_original" in summary:
        out.append(f"  validation      accuracy {100 * summary['validation_accuracy_original']:.2f}% original, "
                   f"{100 * summary['validation_accuracy_compressed']:.2f}% compressed")
    elif "validation_loss_original" in summary:
        out.append(f"  validation      loss {summary['validation_loss_original']:.5f} original, "
                   f"{summary['validation_loss_compressed']:.5f} compressed (distillation)")
    budget = summary.get("budget")
    if budget:
        out.append(f"  budget          {budget['drop_points']:.2f} of {budget['target_drop_points']:g} points used"
                   + ("" if budget["met"] else " (NOT MET)")
                   + (f"; float32: {', '.join(budget['float32_layers'])}" if budget["float32_layers"] else ""))
    return out


def size_lines(res: dict) -> list[str]:
    out = [f"  model flash     {kib(res['flash_bytes'])}  (tables, constants and code)"]
    stack = res.get("stack")
    ram = f"  model RAM       {kib(res.get('ram_total_bytes', res['ram_bytes']))}"
    if "arena_bytes" in res:
        statics = res["ram_bytes"] - res["arena_bytes"]
        ram += (f"  = arena {res['arena_bytes']:,} B (lower bound {res['arena_lower_bound_bytes']:,} B)"
                f" + statics {statics:,} B" + (f" + stack {stack['bytes']:,} B" if stack else ""))
    out.append(ram)
    if stack:
        path = " > ".join(f"{p['function']} ({p['frame_bytes']})" for p in stack["path"])
        note = f"; not counted: {', '.join(stack['unknown_callees'])} (C library)" if stack["unknown_callees"] else ""
        out.append(f"  stack           {stack['bytes']:,} B deepest path: {path}{note}"
                   + ("" if stack["bounded"] else " (UNBOUNDED: dynamic frame or recursion)"))
    if res.get("stack_bytes") is not None:
        out.append(f"  stack measured  {res['stack_bytes']:,} B  (deepest use by one inference under QEMU)")
    out.append(f"  image flash     {kib(res['image_flash_bytes'])}  (with harness and C library)")
    out.append(f"  image RAM       {kib(res['image_ram_bytes'])}")
    out += encoding_lines(res)
    steps = res.get("steps") or []
    if steps:
        profiled = all("instructions" in s for s in steps)  # verify --profile
        counted = sum(s["instructions"] for s in steps) if profiled else 0
        rows = []
        for s in steps:
            parts = s.get("parts") or {}
            macs = s.get("macs") or 0
            rows.append([short_name(s["layer"], 48), s["kernel"], *(f"{parts.get(p, 0):,}" if parts.get(p) else "-" for p in FLASH_PARTS),
                         f"{s['flash_bytes']:,}"]
                        + ([f"{s['instructions']:,} ({100 * s['instructions'] / max(counted, 1):.1f}%)",
                            f"{macs:,}" if macs else "-", f"{s['instructions'] / macs:.2f}" if macs else "-"]
                           if profiled else []))
        code = sum((res.get("code") or {}).values())
        consts = sum(s["flash_bytes"] for s in steps)
        extra = ["", "", ""] if profiled else []
        total_macs = sum(s.get("macs") or 0 for s in steps)
        rows.append(["code (runtime kernels and run function)", "", *([""] * len(FLASH_PARTS)), f"{code:,}", *extra])
        rows.append(["total", "", *([""] * len(FLASH_PARTS)), f"{consts + code:,}",
                     *([f"{counted:,}", f"{total_macs:,}", f"{counted / total_macs:.2f}" if total_macs else "-"]
                       if profiled else [])])
        out += _table(["layer", "kernel", *FLASH_PARTS, "flash", *(["instructions", "MACs", "per MAC"] if profiled else [])],
                      rows, left=2)
    return out


def limit_lines(rows: list[dict], label: str) -> list[str]:
    out = []
    for r in rows:
        pct = 100.0 * r["used_bytes"] / r["limit_bytes"]
        verdict = "OK" if r["fits"] else "FAIL"
        out.append(f"  {verdict:<4} {r['memory']:<5} {r['used_bytes']:,} B of {r['limit_bytes']:,} B ({pct:.1f}%) on {label}"
                   + ("" if r["fits"] else f": {r['used_bytes'] - r['limit_bytes']:,} B over"))
    return out
