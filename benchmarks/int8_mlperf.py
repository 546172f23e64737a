"""The MLPerf Tiny models quantized to int8 (QDQ, onnxruntime's quantize_static with random
calibration data, enough for speed and size) and run as firmware on cortex-m4 (mps2-an386
under QEMU): RAM, flash, instructions per MAC, and the firmware's outputs against
onnxruntime's on the same quantized model.

    python benchmarks/int8_mlperf.py [--models resnet8,vww] [--per-tensor] [--samples N] [--profile] [--json FILE]

--profile adds the instructions of every step (kernel call) and, for the layers, per MAC.

Models below opset 13 are upgraded first: per-channel DequantizeLinear needs opset 13.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from mlperf_compare import MODELS, layer_macs, macs
from weightless_mcu.api import verify

HERE = Path(__file__).resolve().parent


class RandomCalibration(CalibrationDataReader):
    def __init__(self, name: str, shape: list[int], count: int):
        rng = np.random.default_rng(0)
        self._it = iter([{name: rng.uniform(0, 1, shape).astype(np.float32)} for _ in range(count)])

    def get_next(self):
        return next(self._it, None)


def quantize(src: Path, dst: Path, per_channel: bool, count: int) -> None:
    model = onnx.load(src)
    if next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) < 13:
        model = version_converter.convert_version(model, 13)
    up = dst.with_suffix(".fp32.onnx")
    onnx.save(model, up)
    inp = model.graph.input[0]
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    quantize_static(str(up), str(dst), RandomCalibration(inp.name, shape, count), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="resnet8,vww")
    ap.add_argument("--dir", type=Path, default=HERE.parent / "models" / "mlperf-tiny")
    ap.add_argument("--per-tensor", action="store_true", help="one scale per weight tensor (default: per channel)")
    ap.add_argument("--calibration", type=int, default=16, help="random calibration inputs")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="instructions of every step")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="wl-int8-") as tmp:
        for key in args.models.split(","):
            src = args.dir / MODELS[key]
            dst = Path(tmp) / f"{key}_int8.onnx"
            print(f"{key}: quantizing {src.name}", flush=True)
            quantize(src, dst, not args.per_tensor, args.calibration)
            res = verify(dst, target="cortex-m4", samples=args.samples, profile=args.profile)
            n = macs(src)
            rows[key] = {"macs": n, "instructions": res["instructions"], "per_mac": round(res["instructions"] / n, 2),
                         "ram_total_bytes": res["ram_total_bytes"], "arena_bytes": res["arena_bytes"],
                         "arena_lower_bound_bytes": res["arena_lower_bound_bytes"], "flash_bytes": res["flash_bytes"],
                         "match": res["match"], "max_lsb_error": res.get("max_lsb_error"),
                         "lsb_differing_share": res.get("lsb_differing_share"),
                         "kernels": sorted({s["kernel"] for s in res["steps"]})}
            r = rows[key]
            print(f"{key}: {r['instructions']:,} instructions ({r['per_mac']} per MAC), RAM {r['ram_total_bytes']:,} B "
                  f"(arena {r['arena_bytes']:,} B, bound {r['arena_lower_bound_bytes']:,} B), flash {r['flash_bytes']:,} B, "
                  f"match {r['match']} (max {r['max_lsb_error']} step(s), {100 * (r['lsb_differing_share'] or 0):.1f}% differ); "
                  f"kernels {', '.join(r['kernels'])}", flush=True)
            if args.profile:
                per_layer = layer_macs(dst)
                r["steps"] = [{"layer": s["layer"], "kernel": s["kernel"], "instructions": s["instructions"],
                               "macs": per_layer.get(s["layer"])} for s in res["steps"]]
                print("| step | kernel | instructions | MACs | per MAC |\n|---|---|---|---|---|")
                for s in r["steps"]:
                    m, n_ins = s["macs"], s["instructions"]
                    print(f"| {s['layer']} | {s['kernel']} | {n_ins:,} | {m:,} | {n_ins / m:.2f} |" if m else
                          f"| {s['layer']} | {s['kernel']} | {n_ins:,} | - | - |")
    if args.json:
        args.json.write_text(json.dumps({"date": datetime.date.today().isoformat(), "machine": platform.platform(),
                                         "per_channel": not args.per_tensor, "models": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
