"""Reports: the terminal table, part limits, the inference's deepest stack path and
the self-contained HTML page, rendered in headless Chromium."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from weightless_mcu.parts import get_part, make_limits, parse_size
from weightless_mcu.errors import OptionError
from weightless_mcu.stack_usage import deepest_path, read_callgraph

from .conftest import REPO

EXAMPLE = REPO / "examples" / "digits_mlp.onnx"


def run(*args):
    return subprocess.run([sys.executable, "-m", "weightless_mcu", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "out"
    proc = run("compile", EXAMPLE, "-o", out, "--density", "0.3", "-q")
    assert proc.returncode == 0, proc.stderr
    return out


def test_terminal_report_table_and_stack_path(compiled, tmp_path):
    js = tmp_path / "r.json"
    proc = run("report", compiled, "--json", js, "-q")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(js.read_text())
    lines = proc.stdout.splitlines()
    # the per-layer flash table: columns aligned, rows summing to the model's flash
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["layer", "kernel"])
    table = lines[head:head + len(res["steps"]) + 3]
    assert len({len(line) for line in table}) == 1, table  # every row ends in the same column
    assert table[-1].split() == ["total", f"{res['flash_bytes']:,}"]
    code = sum(res["code"].values())
    assert sum(s["flash_bytes"] for s in res["steps"]) + code == res["flash_bytes"]
    assert all(sum(s["parts"].values()) == s["flash_bytes"] for s in res["steps"])
    fc1 = res["steps"][0]["parts"]
    assert fc1["table"] > 0 and fc1["codebook"] == 16 * 4 and fc1["bias"] == 32 * 4  # K=16 floats, 32 biases
    # RAM = arena + statics + stack, the stack from the deepest call path of the run function
    stack = res["stack"]
    assert stack["path"][0]["function"] == "wl_digits_mlp_run" and stack["bounded"]
    assert stack["bytes"] == sum(p["frame_bytes"] for p in stack["path"]) > 0
    assert res["ram_total_bytes"] == res["ram_bytes"] + stack["bytes"]
    assert "deepest path: wl_digits_mlp_run" in proc.stdout


def test_static_stack_bound_covers_the_measured_stack(tmp_path):
    js = tmp_path / "v.json"
    proc = run("verify", EXAMPLE, "--samples", "2", "--json", js, "-q")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(js.read_text())
    # static analysis bounds what the painted stack shows under QEMU (here the deepest
    # path is the dense layer's, not softmax -> expf, whose newlib frame is not counted)
    assert res["stack"]["bytes"] >= res["stack_bytes"] > 0
    assert [p["function"] for p in res["stack"]["path"]] == ["wl_digits_mlp_run", "wl_fc_f32"]


def test_limits_pass_fail_and_parts(compiled):
    ok = run("report", compiled, "--part", "stm32f411", "-q")
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"OK   flash [\d,]+ B of 524,288 B .* on STM32F411RE", ok.stdout)
    too_small = run("report", compiled, "--flash-limit", "2K", "--ram-limit", "64K", "-q")
    assert too_small.returncode == 4
    assert re.search(r"FAIL flash [\d,]+ B of 2,048 B \(\d+\.\d%\) on the limits given: [\d,]+ B over", too_small.stdout)
    assert re.search(r"OK   RAM ", too_small.stdout)
    bad = run("report", compiled, "--part", "nosuchpart")
    assert bad.returncode == 2 and "unknown part 'nosuchpart'" in bad.stderr and "nRF52840" in bad.stderr


def test_sizes_and_parts_parse():
    assert parse_size("256K", "x") == 262144 and parse_size("1M", "x") == 1 << 20 and parse_size("1000", "x") == 1000
    assert parse_size("64KiB", "x") == 65536
    for bad in ("", "-1K", "12Q", "0"):
        with pytest.raises(OptionError):
            parse_size(bad, "--flash-limit")
    lim = make_limits("300K", None, "nrf52840")
    assert lim.flash == 300 * 1024 and lim.ram == get_part("nRF52840").ram == 256 * 1024
    assert make_limits(None, None, None) is None


def test_callgraph_recursion_and_library_calls(tmp_path):
    (tmp_path / "a.ci").write_text(
        'graph: { title: "a.c"\n'
        'node: { title: "run" label: "run\\na.c:1:5\\n16 bytes (static)" }\n'
        'node: { title: "f" label: "f\\na.c:2:5\\n100 bytes (static)" }\n'
        'node: { title: "g" label: "g\\na.c:3:5\\n40 bytes (dynamic)" }\n'
        'node: { title: "expf" label: "expf\\n<built-in>" shape : ellipse }\n'
        'edge: { sourcename: "run" targetname: "f" label: "a.c:1:20" }\n'
        'edge: { sourcename: "run" targetname: "g" label: "a.c:1:30" }\n'
        'edge: { sourcename: "f" targetname: "expf" }\n'
        'edge: { sourcename: "g" targetname: "g" }\n}\n')
    p = deepest_path(read_callgraph([tmp_path / "a.ci"]), "run")
    assert p.bytes == 116 and [f for f, _ in p.path] == ["run", "f"]
    assert p.unknown == ("expf",) and not p.bounded  # g is dynamic and recursive


def test_a_static_function_is_named_by_its_file_not_the_build_directory(tmp_path):
    (tmp_path / "a.ci").write_text(
        'graph: { title: "a.c"\n'
        'node: { title: "run" label: "run\\na.c:1:5\\n16 bytes (static)" }\n'
        'node: { title: "/tmp/wl-verify-x1/out/runtime/wl_k.c:helper" label: "helper\\nwl_k.c:2:5\\n24 bytes (static)" }\n'
        'edge: { sourcename: "run" targetname: "/tmp/wl-verify-x1/out/runtime/wl_k.c:helper" label: "a.c:1:20" }\n}\n')
    p = deepest_path(read_callgraph([tmp_path / "a.ci"]), "run")
    assert p.bytes == 40 and [f for f, _ in p.path] == ["run", "wl_k.c:helper"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium_flags(tmp_path):
    """Headless, sandbox off (root in CI), and no background network on a closed machine."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (scripts/install.sh installs it)")
def test_html_report_renders_in_headless_chromium(compiled, tmp_path):
    page, js = tmp_path / "report.html", tmp_path / "report.json"
    proc = run("report", compiled, "--html", page, "--json", js, "--part", "STM32F411", "-q")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(js.read_text())
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "<script" not in text  # self-contained
    flags = _chromium_flags(tmp_path)
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # the browser parsed the page: the bars, the tables and the verdicts are in its DOM
    assert html.count('class="seg-table"') == 2 and html.count('class="seg-code"') == 1 and html.count('class="ratio"') == 2
    assert "Flash per layer" in html and "Compression per layer" in html and "STM32F411RE" in html and ">OK<" in html
    # the numbers on the page are the report's: totals, each step's flash, each layer's bytes and ratio, the limits
    assert f"<th>{res['flash_bytes']:,}</th>" in html and f"<b>{res['compression_ratio']:.1f}x</b>" in html
    for step in res["steps"]:
        assert re.search(rf"<td>{re.escape(step['kernel'])}</td>(<td>[0-9,]*</td>)*<td>{step['flash_bytes']:,}</td></tr>", html), step
    for layer in res["layers"]:
        assert f"<td>{layer['bytes']:,}</td><td>{layer['float32_bytes'] / layer['bytes']:.1f}x</td>" in html, layer
    for row in res["limits"]["rows"]:
        assert f"<td>{row['used_bytes']:,}</td><td>{row['limit_bytes']:,}</td>" in html, row
    assert f"Arena {res['arena_bytes']:,} B" in html
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1000,1400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000  # a blank page compresses to a few KB


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (scripts/install.sh installs it)")
def test_verify_html_shows_accuracy_and_instructions(tmp_path):
    import numpy as np

    d = np.load(REPO / "examples" / "digits_test.npz")
    np.savez(tmp_path / "d.npz", x=d["pixels"], y=d["labels"])
    page = tmp_path / "v.html"
    proc = run("verify", EXAMPLE, "--data", tmp_path / "d.npz", "--html", page, "--json", tmp_path / "v.json", "-q")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "v.json").read_text())
    flags = _chromium_flags(tmp_path)
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert f"<b>{100 * res['accuracy']:.2f}%</b>" in dom and f"<b>{res['instructions']:,}</b>" in dom
    assert '<span class="ok">matches</span>' in dom
