"""The report as one self-contained HTML page (inline CSS and SVG, no script, no
network): flash per layer as stacked bars, RAM as arena + statics + stack, the
compression of each layer with its false positives, limits, and for verify runs
the match, accuracy and instruction count."""
from __future__ import annotations

import html
from pathlib import Path

from . import __version__
from .outdir import write_file
from .report import FLASH_PARTS
from .report_text import short_name

COLORS = {"table": "#2f6fb0", "codebook": "#7fb3e0", "bias": "#e0a030", "weights": "#b0413e", "params": "#8a8a8a",
          "code": "#5a9a5a", "arena": "#2f6fb0", "statics": "#8a8a8a", "stack": "#e0a030"}
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.card b { display: block; font-size: 20px; } .card span { color: #666; font-size: 12px; }
.fail { color: #b0413e; font-weight: bold; } .ok { color: #3a7a3a; font-weight: bold; }
table { border-collapse: collapse; margin-top: 8px; } td, th { padding: 3px 10px; text-align: right; }
th { border-bottom: 1px solid #ccc; } td:first-child, th:first-child, td:nth-child(2), th:nth-child(2) { text-align: left; }
.legend span { display: inline-block; margin-right: 14px; } .legend i { display: inline-block; width: 12px; height: 12px;
  margin-right: 4px; vertical-align: -1px; }
svg text { font: 12px system-ui, sans-serif; }
"""


def _e(text) -> str:
    return html.escape(str(text))


def _name(name: str, width: int = 40) -> str:
    """A long ONNX name cut from the left, whole in its tooltip."""
    return f'<span title="{_e(name)}">{_e(short_name(name, width))}</span>'


def _b(n: int) -> str:
    return f"{n:,} B" if n < 10 * 1024 else f"{n / 1024:,.1f} KiB"


def _legend(keys) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{COLORS[k]}"></i>{k}</span>' for k in keys) + "</div>"


def _stacked_bars(rows: list[tuple[str, dict[str, int]]], keys, width: int = 960, label_w: int = 240) -> str:
    """One horizontal bar per row, its segments in the order of keys, all on one scale."""
    bar_h, gap = 18, 6
    total = max((sum(v.values()) for _, v in rows), default=0) or 1
    scale = (width - label_w - 90) / total
    h = len(rows) * (bar_h + gap) + gap
    out = [f'<svg role="img" width="{width}" height="{h}" viewBox="0 0 {width} {h}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, values) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{_e(short_name(name, 34))}</text>')
        x = float(label_w)
        for k in keys:
            v = values.get(k, 0)
            if v:
                w = max(v * scale, 1.0)
                out.append(f'<rect class="seg-{k}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{COLORS[k]}">'
                           f'<title>{_e(name)}: {k} {v:,} B</title></rect>')
                x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 13}">{_e(_b(sum(values.values())))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _cards(res: dict) -> str:
    cards = [("model flash", _b(res["flash_bytes"]), "tables, constants and code")]
    cards.append(("model RAM", _b(res.get("ram_total_bytes", res["ram_bytes"])), "arena + statics + stack"))
    if "compression_ratio" in res:
        cards.append(("compression", f"{res['compression_ratio']:.1f}x",
                      f"{_b(res['weights_float32_bytes'])} float32 to {_b(res['weights_stored_bytes'])}"))
    if "model_flash_ratio" in res:
        cards.append(("whole model", f"{res['model_flash_ratio']:.1f}x",
                      f"model flash: {_b(res['dense_flash_bytes'])} dense to {_b(res['flash_bytes'])}"))
    if "match" in res:
        verdict = '<span class="ok">matches</span>' if res["match"] else '<span class="fail">DOES NOT MATCH</span>'
        cards.append(("onnxruntime", verdict, f"max relative error {res['max_rel_error']:.2g}"))
    if res.get("instructions") is not None:
        cards.append(("instructions", f"{res['instructions']:,}", "per inference, exact (QEMU)"))
    if "accuracy" in res:
        cards.append(("accuracy", f"{100 * res['accuracy']:.2f}%",
                      f"{res['samples']} samples; original model {100 * res['accuracy_original']:.2f}%"))
    return '<div class="cards">' + "".join(f'<div class="card">{_e(t)}<b>{v}</b><span>{_e(s)}</span></div>'
                                             for t, v, s in cards) + "</div>"


def _flash(res: dict) -> str:
    steps = res.get("steps") or []
    if not steps:
        return ""
    code = sum((res.get("code") or {}).values())
    rows = [(s["layer"], s.get("parts") or {"weights": s["flash_bytes"]}) for s in steps if s["flash_bytes"]]
    rows.append(("code (kernels and run function)", {"code": code}))
    table = ["<table><tr><th>layer</th><th>kernel</th>" + "".join(f"<th>{k}</th>" for k in FLASH_PARTS) + "<th>flash</th></tr>"]
    for s in steps:
        parts = s.get("parts") or {}
        table.append(f"<tr><td>{_name(s['layer'])}</td><td>{_e(s['kernel'])}</td>"
                     + "".join(f"<td>{parts.get(k, 0):,}</td>" for k in FLASH_PARTS) + f"<td>{s['flash_bytes']:,}</td></tr>")
    for fn, size in (res.get("code") or {}).items():
        table.append(f"<tr><td>{_e(fn)}</td><td>code</td>" + "<td></td>" * len(FLASH_PARTS) + f"<td>{size:,}</td></tr>")
    table.append("<tr><th>total</th><th></th>" + "<th></th>" * len(FLASH_PARTS) + f"<th>{res['flash_bytes']:,}</th></tr></table>")
    return ("<h2>Flash per layer</h2>" + _legend([*FLASH_PARTS, "code"])
            + _stacked_bars(rows, [*FLASH_PARTS, "code"]) + "\n".join(table))


def _profile(res: dict) -> str:
    """verify --profile: the instructions of every step, their share, MACs and instructions per MAC."""
    steps = res.get("steps") or []
    if not steps or not all("instructions" in s for s in steps):
        return ""
    total = sum(s["instructions"] for s in steps)
    table = ["<table><tr><th>layer</th><th>kernel</th><th>instructions</th><th>share</th><th>MACs</th>"
             "<th>per MAC</th></tr>"]
    for s in steps:
        macs = s.get("macs") or 0
        count, per_mac = f"{macs:,}" if macs else "-", f"{s['instructions'] / macs:.2f}" if macs else "-"
        table.append(f"<tr><td>{_name(s['layer'])}</td><td>{_e(s['kernel'])}</td><td>{s['instructions']:,}</td>"
                     f"<td>{100 * s['instructions'] / max(total, 1):.1f}%</td><td>{count}</td><td>{per_mac}</td></tr>")
    table.append(f"<tr><th>steps</th><th></th><th>{total:,}</th><th></th><th></th><th></th></tr></table>")
    return ("<h2>Instructions per layer</h2><p>Exact counts under QEMU, one marker call per step included; "
            f"the inference as a whole: {res['instructions']:,}.</p>" + "\n".join(table))


def _ram(res: dict) -> str:
    if "arena_bytes" not in res:
        return ""
    stack = res.get("stack") or {}
    parts = {"arena": res["arena_bytes"], "statics": res["ram_bytes"] - res["arena_bytes"], "stack": stack.get("bytes", 0)}
    out = ["<h2>RAM</h2>", _legend(["arena", "statics", "stack"]), _stacked_bars([("model RAM", parts)], ["arena", "statics", "stack"])]
    out.append(f"<p>Arena {res['arena_bytes']:,} B; lower bound {res['arena_lower_bound_bytes']:,} B (the largest sum of "
               f"tensors live at once).")
    if stack:
        path = " &rarr; ".join(f"{_e(p['function'])} ({p['frame_bytes']} B)" for p in stack["path"])
        out.append(f" Stack {stack['bytes']:,} B on the deepest call path: {path}.")
        if stack.get("unknown_callees"):
            out.append(f" Not counted: {_e(', '.join(stack['unknown_callees']))} (C library).")
    if res.get("stack_bytes") is not None:
        out.append(f" Measured under QEMU: {res['stack_bytes']:,} B.")
    out.append(f" Whole test image: flash {res['image_flash_bytes']:,} B, RAM {res['image_ram_bytes']:,} B.</p>")
    return "".join(out)


def _compression(res: dict) -> str:
    layers = [r for r in res.get("layers") or [] if r["encoding"] != "dense"]
    if not layers:
        return ""
    top = max(r.get("dense_bytes", r["float32_bytes"]) / r["bytes"] for r in layers)
    width, label_w, bar_h = 960, 240, 18
    h = len(layers) * (bar_h + 6) + 6
    svg = [f'<svg role="img" width="{width}" height="{h}" viewBox="0 0 {width} {h}" xmlns="http://www.w3.org/2000/svg">']
    for i, r in enumerate(layers):
        y, ratio = 6 + i * (bar_h + 6), r.get("dense_bytes", r["float32_bytes"]) / r["bytes"]
        w = max((width - label_w - 90) * ratio / top, 1.0)
        svg.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{_e(short_name(r["name"], 34))}</text>'
                   f'<rect class="ratio" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{COLORS["table"]}"/>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + 13}">{ratio:.1f}x</text>')
    svg.append("</svg>")
    rows = "".join(f"<tr><td>{_name(r['name'])}</td><td>{_e(r['encoding'])}</td><td>{r['positions']:,}</td><td>{r['kept']:,}</td>"
                   f"<td>{r['clusters'] or '-'}</td><td>{r['bits'] or '-'}</td><td>{r['false_positives']:,}</td>"
                   f"<td>{r['bytes']:,}</td><td>{r.get('dense_bytes', r['float32_bytes']) / r['bytes']:.1f}x</td></tr>" for r in layers)
    return ("<h2>Compression per layer</h2>" + "\n".join(svg)
            + "<table><tr><th>weights</th><th>encoding</th><th>positions</th><th>kept</th><th>K</th><th>t</th>"
              "<th>false positives</th><th>bytes</th><th>ratio</th></tr>" + rows + "</table>")


def _limits(res: dict) -> str:
    lim = res.get("limits")
    if not lim:
        return ""
    rows = "".join(f"<tr><td>{r['memory']}</td><td>{r['used_bytes']:,}</td><td>{r['limit_bytes']:,}</td>"
                   f"<td>{100 * r['used_bytes'] / r['limit_bytes']:.1f}%</td>"
                   f"<td class=\"{'ok' if r['fits'] else 'fail'}\">{'OK' if r['fits'] else 'FAIL'}</td></tr>" for r in lim["rows"])
    return (f"<h2>Limits{': ' + _e(lim['part']) if lim['part'] else ''}</h2><table><tr><th>memory</th><th>used (B)</th>"
            f"<th>limit (B)</th><th>share</th><th></th></tr>{rows}</table>")


def render_html(res: dict) -> str:
    name = res.get("name") or res.get("elf", "model")
    where = res.get("target", "")
    if res.get("board"):
        where += f" on {res['board']}"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(name)}: weightless-mcu report</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(name)}</h1>", f'<p class="sub">{_e(where)} &middot; weightless-mcu {_e(__version__)}</p>',
        _cards(res), _limits(res), _profile(res), _flash(res), _ram(res), _compression(res), "</body></html>", ""])


def write_html(path: Path, res: dict) -> None:
    write_file(path, render_html(res))
