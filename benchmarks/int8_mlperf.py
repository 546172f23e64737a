"""The MLPerf Tiny models quantized to int8 by the compiler itself (`--quantize int8`: onnxruntime's
quantize_static, QDQ, per-channel int8 weights, with random calibration data, enough for speed and
size) and run as firmware on cortex-m4 (mps2-an386 under QEMU): RAM, flash, instructions per MAC,
the firmware's outputs against onnxruntime on the same int8 model, and the fit on real parts
(what `report --part` says).

    python benchmarks/int8_mlperf.py [--models ad01,resnet8,vww] [--samples N] [--profile] [--format qdq|qoperator] [--json FILE]

--profile adds the instructions of every step (kernel call) and, for the layers, per MAC.
--format qoperator quantizes in the QOperator format instead (QLinearConv, com.microsoft QGemm,
QLinearAdd, ...: the same quantize_static, settings and calibration inputs) and compiles that model.
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

from mlperf_compare import MODELS, layer_macs, macs
from weightless_mcu.api import verify
from weightless_mcu.parts import check_limits, make_limits

HERE = Path(__file__).resolve().parent


PARTS = ("STM32F446RE", "STM32F411RE", "STM32L432KC")


def random_calibration(path: Path, dst: Path, count: int) -> Path:
    """count uniform [0, 1) inputs of the model's input shape, as --calibration-data takes them."""
    model = onnx.load(path)
    inp = model.graph.input[0]
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    np.savez(dst, **{inp.name: rng.uniform(0, 1, (count, *shape[1:])).astype(np.float32)})
    return dst


def qoperator_model(src: Path, cal: Path, dst: Path) -> Path:
    """src quantized by quantize_static in the QOperator format, with what --quantize int8 uses
    otherwise (opset 13, int8 activations, per-channel int8 weights, the samples of cal in order)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from weightless_mcu.frontend import load_model

    upgraded = dst.with_name(dst.stem + "_float.onnx")
    onnx.save(load_model(src)[0], upgraded)
    data = dict(np.load(cal))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{k: v[i:i + 1] for k, v in data.items()} for i in range(len(next(iter(data.values()))))])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(upgraded), str(dst), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return dst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="ad01,resnet8,vww")
    ap.add_argument("--dir", type=Path, default=HERE.parent / "models" / "mlperf-tiny")
    ap.add_argument("--calibration", type=int, default=16, help="random calibration inputs")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="instructions of every step")
    ap.add_argument("--format", choices=("qdq", "qoperator"), default="qdq")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="wl-int8-") as tmp:
        for key in args.models.split(","):
            src = args.dir / MODELS[key]
            cal = random_calibration(src, Path(tmp) / f"{key}_cal.npz", args.calibration)
            if args.format == "qdq":
                print(f"{key}: quantizing {src.name} (--quantize int8, {args.calibration} random calibration inputs)",
                      flush=True)
                res = verify(src, target="cortex-m4", samples=args.samples, profile=args.profile, quantize="int8",
                             calibration_data=cal)
            else:
                print(f"{key}: quantizing {src.name} (QOperator, {args.calibration} random calibration inputs)", flush=True)
                res = verify(qoperator_model(src, cal, Path(tmp) / f"{key}_qop.onnx"), target="cortex-m4",
                             samples=args.samples, profile=args.profile)
            n = macs(src)
            fits = {part: all(r["fits"] for r in check_limits(res, make_limits(None, None, part))) for part in PARTS}
            rows[key] = {"macs": n, "instructions": res["instructions"], "per_mac": round(res["instructions"] / n, 2),
                         "ram_total_bytes": res["ram_total_bytes"], "arena_bytes": res["arena_bytes"],
                         "arena_lower_bound_bytes": res["arena_lower_bound_bytes"],
                         "statics_bytes": res["ram_bytes"] - res["arena_bytes"],
                         "stack_bytes": res["ram_total_bytes"] - res["ram_bytes"], "flash_bytes": res["flash_bytes"],
                         "match": res["match"], "max_lsb_error": res.get("max_lsb_error"),
                         "lsb_differing_share": res.get("lsb_differing_share"), "parts_ok": fits,
                         "kernels": sorted({s["kernel"] for s in res["steps"]})}
            r = rows[key]
            print(f"{key}: {r['instructions']:,} instructions ({r['per_mac']} per MAC), RAM {r['ram_total_bytes']:,} B "
                  f"(arena {r['arena_bytes']:,} B, bound {r['arena_lower_bound_bytes']:,} B), flash {r['flash_bytes']:,} B, "
                  f"match {r['match']} (max {r['max_lsb_error']} step(s), {100 * (r['lsb_differing_share'] or 0):.1f}% differ); "
                  f"kernels {', '.join(r['kernels'])}; fits: "
                  + ", ".join(f"{part} {'OK' if ok else 'FAIL'}" for part, ok in fits.items()), flush=True)
            if args.profile:
                per_layer = layer_macs(src)
                r["steps"] = [{"layer": s["layer"], "kernel": s["kernel"], "instructions": s["instructions"],
                               "macs": per_layer.get(s["layer"])} for s in res["steps"]]
                print("| step | kernel | instructions | MACs | per MAC |\n|---|---|---|---|---|")
                for s in r["steps"]:
                    m, n_ins = s["macs"], s["instructions"]
                    print(f"| {s['layer']} | {s['kernel']} | {n_ins:,} | {m:,} | {n_ins / m:.2f} |" if m else
                          f"| {s['layer']} | {s['kernel']} | {n_ins:,} | - | - |")
    if args.json:
        args.json.write_text(json.dumps({"date": datetime.date.today().isoformat(), "machine": platform.platform(),
                                         "per_channel": True, "format": args.format, "models": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
