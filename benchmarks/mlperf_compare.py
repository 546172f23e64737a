"""The three MLPerf Tiny models on cortex-m4 (mps2-an386 under QEMU, -O2): our
compiler next to emx-onnx-cgen, both built into the same harness with the same
flags and counted by the same QEMU plugin.

    python benchmarks/mlperf_compare.py [--models DIR] [--emx PATH] [--json FILE]

--emx names the emx-onnx-cgen executable (default: found on PATH; the peer is
skipped when absent). Its weights stay in flash (--large-weight-threshold 0);
it mallocs large temporaries, whose peak is measured by wrapping malloc.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from weightless_mcu.api import _onnxruntime_outputs, random_inputs, verify
from weightless_mcu.frontend import load_model
from weightless_mcu.qemu import run_firmware
from weightless_mcu.report import read_elf
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_image

HERE = Path(__file__).resolve().parent
MODELS = {
    "ad01": "anomaly_detection_ad01_fp32.onnx",
    "resnet8": "image_classification_resnet8_fp32.onnx",
    "vww": "visual_wake_words_mobilenet_v1_025_fp32.onnx",
}


def layer_macs(path: Path) -> dict[str, int]:
    """Multiply-accumulates of one inference per Conv, Gemm and MatMul node, by node name."""
    _, graph = load_model(path)
    found = {}
    for node in graph.nodes:
        if node.op in ("Conv", "Gemm", "MatMul"):
            w = graph.tensors[node.inputs[1]].shape
            out = graph.tensors[node.outputs[0]].shape
            per_out = int(np.prod(w[1:])) if node.op == "Conv" else w[0] if not node.attrs.get("transB") else w[1]
            found[node.name] = int(np.prod(out)) * per_out
    return found


def macs(path: Path) -> int:
    """Multiply-accumulates of one inference (Conv, Gemm, MatMul), for per-MAC figures."""
    return sum(layer_macs(path).values())


def run_emx(emx: str, path: Path, name: str, samples: int, work: Path) -> dict:
    target = get_target("cortex-m4")
    c_file = work / f"{name}.c"
    subprocess.run([emx, "compile", str(path), str(c_file), "--model-name", name, "--large-weight-threshold", "0"],
                   check=True, capture_output=True)
    onnx_model, _ = load_model(path)
    inputs = [{"name": i.name, "shape": [d.dim_value for d in i.type.tensor_type.shape.dim]} for i in onnx_model.graph.input]
    outputs = [{"name": o.name, "shape": [d.dim_value for d in o.type.tensor_type.shape.dim]} for o in onnx_model.graph.output]
    in_size = int(np.prod(inputs[0]["shape"]))
    out_size = int(np.prod(outputs[0]["shape"]))
    header = (f"void {name}();\n#define WL_HARNESS_INPUT_SIZE {in_size}\n#define WL_HARNESS_OUTPUT_SIZE {out_size}\n"
              f"#define WL_HARNESS_RUN(in, out) ({name}((const void *)(in), (void *)(out)), 0)\n")
    elf = build_image(target, work / f"build-{name}", [c_file], [work], header, extra_sources=(HERE / "heap_peak.c",),
                      extra_ldflags=("-Wl,--wrap=malloc,--wrap=free",), model_warnings=("-w",))
    arrays = random_inputs(inputs, samples)
    run = run_firmware(elf, target, arrays[0].reshape(samples, -1), out_size, model=name)
    ref = _onnxruntime_outputs(onnx_model, arrays, {"inputs": inputs, "outputs": outputs})[0]
    rel = float(np.max(np.abs(run.outputs - ref)) / np.max(np.abs(ref)))
    image = read_elf(elf)
    heap = [int(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("wlh_heap_peak ")]
    return {"instructions": max(run.instructions), "max_rel_error": rel, "stack_bytes": run.stack_bytes,
            "heap_peak_bytes": heap[0], "image_flash_bytes": image.flash}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=HERE.parent / "models" / "mlperf-tiny")
    ap.add_argument("--emx", default=shutil.which("emx-onnx-cgen"))
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()} {platform.node()}",
               "target": "cortex-m4 (mps2-an386)", "models": {}}
    with tempfile.TemporaryDirectory(prefix="wl-bench-") as tmp:
        for name, file in MODELS.items():
            path = args.models / file
            ours = verify(path, target="cortex-m4", samples=args.samples)
            row = {"macs": macs(path), "ours": {
                "instructions": ours["instructions"], "max_rel_error": ours["max_rel_error"],
                "flash_bytes": ours["flash_bytes"], "arena_bytes": ours["arena_bytes"], "stack_bytes": ours["stack_bytes"],
                "ram_bytes": ours["ram_bytes"] + ours["stack_bytes"], "image_flash_bytes": ours["image_flash_bytes"]}}
            if args.emx:
                emx = run_emx(args.emx, path, name, args.samples, Path(tmp))
                emx["ram_bytes"] = emx["heap_peak_bytes"] + emx["stack_bytes"]
                row["emx-onnx-cgen"] = emx
            results["models"][name] = row
            print(f"{name}: {json.dumps(row)}", flush=True)
    print()
    print("| model | MACs | ours: instructions (per MAC) | emx-onnx-cgen: instructions (per MAC) | ratio | ours: RAM (arena + stack) | emx-onnx-cgen: RAM (heap peak + stack) |")
    print("|---|---|---|---|---|---|---|")
    for name, row in results["models"].items():
        o, e, m = row["ours"], row.get("emx-onnx-cgen"), row["macs"]
        peer = f"{e['instructions']:,} ({e['instructions'] / m:.2f})" if e else "-"
        ratio = f"{o['instructions'] / e['instructions']:.2f}x" if e else "-"
        peer_ram = f"{e['ram_bytes']:,}" if e else "-"
        print(f"| {name} | {m:,} | {o['instructions']:,} ({o['instructions'] / m:.2f}) | {peer} | {ratio} | "
              f"{o['ram_bytes']:,} ({o['arena_bytes']:,} + {o['stack_bytes']:,}) | {peer_ram} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
