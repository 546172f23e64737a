"""Weightless encoding benchmarks (Bloomier tables and decode-as-you-go kernels).

    python benchmarks/weightless_tables.py [--models DIR] [--json FILE] [--sections cells,big,fc,conv,int8,ad01,conv-code]

1. Cells per key of the table of every layer: the MLPerf Tiny models (density
   0.1, K=16, t=8), LeNet-300-100 and VGG-16 fc6/fc7 shaped layers (random
   weights at the paper's densities), with 4 and with 3 location hashes.
2. Encoding a 4096 x 25088 layer (VGG-16 fc6, 103 M positions) at 4% density,
   t=8, K=16: pruning, clustering, table construction and the full
   false-positive scan, timed in a fresh process with its peak memory.
3. Instructions per weight position of the fully connected kernel on cortex-m4
   under QEMU (exact counts): dense, Bloomier t=4 to 12 (and 2 or 3 hashes at
   t = 8 and 10, and --optimize size at t = 7, 8, 10), codebook, the sparse stream; with the
   code each needs beyond the dense kernel and the layer's bytes.
   Then the code the convolutions' encoded paths need beyond the dense kernels.
4. Convolutions compressed against dense: single layers and whole models. (ad01: the
   autoencoder at density 0.1 in Bloomier tables and in sparse streams, against dense.
   conv-code: the code the three kinds of convolution need together at t = 8 to 12.)
5. The same layers as int8 (--quantize int8, 16 random calibration inputs): the
   encoded int8 kernels against the dense int8 ones, instructions per position.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from weightless_mcu import verify
from weightless_mcu.api import _prepare
from weightless_mcu.compress import make_settings

HERE = Path(__file__).resolve().parent
MLPERF = ["anomaly_detection_ad01_fp32.onnx", "image_classification_resnet8_fp32.onnx",
          "visual_wake_words_mobilenet_v1_025_fp32.onnx"]

BIG_LAYER = r"""
import json, resource, sys, time
import numpy as np
from weightless_mcu.compress import encode_layer
from weightless_mcu.compress.prune import magnitude_masks
from weightless_mcu.compress.settings import LayerSettings
from weightless_mcu.lowering.layout import WeightLayout
w = np.random.default_rng(0).standard_normal((4096, 25088), dtype=np.float32)
t0 = time.perf_counter()
(mask,) = magnitude_masks([w], 0.04)
enc, rep = encode_layer("fc6", "fc6", w, mask, WeightLayout(w.shape, 1, False, False),
                        LayerSettings(density=0.04, clusters=16, bits=8))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "report": rep.as_dict()}))
"""


def _fc_model(path: Path, n_out: int, n_in: int, seed: int = 0) -> Path:
    w = np.random.default_rng(seed).standard_normal((n_out, n_in)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "fc",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def _conv_model(path: Path, cin: int, cout: int, k: int, hw: int, group: int = 1) -> Path:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[k // 2] * 4, group=group)], "conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, hw, hw])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def cells_per_key(models: Path, tmp: Path) -> list[dict]:
    rows = []
    layers = [(models / f, 0.1) for f in MLPERF]
    layers += [(_fc_model(tmp / f"fc_{o}x{i}.onnx", o, i), d) for o, i, d in
               [(300, 784, 0.08), (100, 300, 0.09), (10, 100, 0.26), (4096, 4096, 0.04)]]
    for path, density in layers:
        for hashes in (4, 3):
            _, _, reports = _prepare(path, None, None, make_settings(dict(density=density, clusters=16, bits=8, hashes=hashes,
                                                                          encoding="bloomier")), lambda _: None)
            for r in (r for r in reports if r.encoding == "bloomier"):
                rows.append({"model": path.stem, "layer": r.name[-48:], "hashes": hashes, "keys": r.kept,
                             "cells": r.cells, "cells_per_key": r.cells / max(1, r.kept)})
    return rows


def big_layer() -> dict:
    proc = subprocess.run([sys.executable, "-c", BIG_LAYER], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fc_kernel(tmp: Path, only: list[str] | None = None) -> list[dict]:
    path = _fc_model(tmp / "fc256x1024.onnx", 256, 1024)
    positions = 256 * 1024
    rows = []
    # every t from 4 to 12 with 4 hashes (K = 16, or 2^t - 1 where that is fewer: t=4 holds 15
    # values), then 3 and 2 hashes at t = 8 and 10
    runs = [("dense float32", None)] + [(f"bloomier t={t} K={min(16, (1 << t) - 1)}",
                                        dict(density=0.1, clusters=min(16, (1 << t) - 1), bits=t, encoding="bloomier"))
                                       for t in range(4, 13)]
    runs += [(f"bloomier t={t} K=16, {h} hashes", dict(density=0.1, clusters=16, bits=t, encoding="bloomier", hashes=h))
             for t in (8, 10) for h in (3, 2)]
    runs.append(("codebook K=16 (5-bit indices)", dict(density=0.1, clusters=16, bits=8, encoding="codebook")))
    runs += [(f"sparse K={k} (Rice-coded gaps)", dict(density=0.1, clusters=k, encoding="sparse")) for k in (16, 4)]
    runs = [(label, opts, "speed") for label, opts in runs]
    # --optimize size: no loops, each weight read on its own
    runs += [(f"bloomier t={t} K=16, --optimize size", dict(density=0.1, clusters=16, bits=t, encoding="bloomier"), "size")
             for t in (7, 8, 10)]
    if only:  # the dense row always: the code beyond it is measured against it
        runs = [r for r in runs if r[1] is None or any(o in r[0] for o in only)]
    dense_code = None
    for label, opts, optimize in runs:
        res = verify(path, target="cortex-m4", samples=1, compression=make_settings(opts) if opts else None,
                     optimize=optimize)
        assert res["match"]
        if dense_code is None:
            dense_code = set(res["code"])
        # the code this layer needs beyond the dense kernel: the encoded kernel, its loop, the decoder
        extra = _code_beyond(res["code"], dense_code)
        rows.append({"kernel": label, "instructions": res["instructions"], "per_position": res["instructions"] / positions,
                     "extra_code_bytes": sum(extra.values()), "extra_code": extra,
                     "weights_bytes": res["layers"][0]["bytes"] if opts else 4 * positions})
    return rows


def ad01(models: Path) -> list[dict]:
    """The MLPerf Tiny autoencoder at density 0.1, K=16, its layers in Bloomier tables (t=8) or
    sparse streams, against dense: instructions per inference and weights."""
    path = models / MLPERF[0]
    dense = verify(path, target="cortex-m4", samples=1)
    rows = [{"weights": "dense float32", "instructions": dense["instructions"], "ratio": 1.0,
             "weights_bytes": dense["weights_stored_bytes"]}]
    for label, opts in (("bloomier t=8", dict(encoding="bloomier", bits=8)), ("sparse", dict(encoding="sparse"))):
        res = verify(path, target="cortex-m4", samples=1, compression=make_settings(dict(density=0.1, clusters=16, **opts)))
        assert res["match"], res
        rows.append({"weights": label, "instructions": res["instructions"], "ratio": res["instructions"] / dense["instructions"],
                     "weights_bytes": res["weights_stored_bytes"]})
    return rows


def _conv_layers(tmp: Path) -> list[tuple[str, Path]]:
    """The three single convolutions of the conv sections: general, depthwise, pointwise."""
    return [("conv 3x3 32->32, 16x16", _conv_model(tmp / "c3.onnx", 32, 32, 3, 16)),
            ("depthwise 3x3 64ch, 24x24", _conv_model(tmp / "dw.onnx", 64, 64, 3, 24, group=64)),
            ("pointwise 64->128, 12x12", _conv_model(tmp / "pw.onnx", 64, 128, 1, 12))]


def _code_beyond(code: dict[str, int], dense: set[str] | dict[str, int]) -> dict[str, int]:
    """The functions a compressed build links that the dense build does not, with their sizes."""
    return {name: size for name, size in code.items() if name not in dense}


def convolutions(models: Path, tmp: Path) -> list[dict]:
    cases = [*_conv_layers(tmp), ("ResNet-8", models / MLPERF[1]), ("VWW MobileNetV1 0.25", models / MLPERF[2])]
    rows = []
    for label, path in cases:
        dense = verify(path, target="cortex-m4", samples=1)
        comp = verify(path, target="cortex-m4", samples=1, compression=make_settings(dict(density=0.3, clusters=16, bits=8)))
        assert dense["match"] and comp["match"]
        extra = _code_beyond(comp["code"], dense["code"])
        rows.append({"layer": label, "dense": dense["instructions"], "compressed": comp["instructions"],
                     "ratio": comp["instructions"] / dense["instructions"], "extra_code_bytes": sum(extra.values()),
                     "extra_code": extra, "model_flash_ratio": comp["model_flash_ratio"]})
    return rows


def conv_code_by_t(tmp: Path, bits=(8, 9, 10, 11, 12)) -> list[dict]:
    """The code the three kinds of convolution need beyond the dense kernels, together (the union
    of what each of the three single layers links), for Bloomier tables of each t."""
    cases = [path for _, path in _conv_layers(tmp)]
    dense = [verify(path, target="cortex-m4", samples=1)["code"] for path in cases]
    rows = []
    for t in bits:
        union: dict[str, int] = {}
        for path, base in zip(cases, dense):
            comp = verify(path, target="cortex-m4", samples=1,
                          compression=make_settings(dict(density=0.3, clusters=16, bits=t, encoding="bloomier")))
            assert comp["match"]
            for name, size in _code_beyond(comp["code"], base).items():
                union[name] = max(union.get(name, 0), size)
        rows.append({"t": t, "extra_code_bytes": sum(union.values()), "extra_code": union})
    return rows


def int8_kernels(tmp: Path) -> list[dict]:
    """Dense int8 against int8 layers on tables (the float model compressed, then quantized)."""
    cases = [("fully connected 1024 -> 256", _fc_model(tmp / "fc8.onnx", 256, 1024), 256 * 1024),
             ("conv 3x3 32->32, 16x16", _conv_model(tmp / "c3_8.onnx", 32, 32, 3, 16), 32 * 32 * 9),
             ("depthwise 3x3 64ch, 24x24", _conv_model(tmp / "dw8.onnx", 64, 64, 3, 24, group=64), 64 * 9),
             ("pointwise 64->128, 12x12", _conv_model(tmp / "pw8.onnx", 64, 128, 1, 12), 64 * 128)]
    settings = [("dense int8", None)] + [(f"bloomier t={t} K={k}", dict(density=d, clusters=k, bits=t, encoding="bloomier"))
                                         for t, k, d in ((8, 16, 0.1), (6, 8, 0.1), (8, 16, 0.3))]
    settings.append(("codebook K=16", dict(density=0.1, clusters=16, bits=8, encoding="codebook")))
    settings.append(("sparse K=16", dict(density=0.1, clusters=16, encoding="sparse")))
    rows = []
    for label, path, positions in cases:
        for name, opts in settings:
            if "depthwise" in label and opts and opts["density"] < 0.3:
                continue  # 576 weights: K=16 at density 0.1 keeps too few per value to matter
            res = verify(path, target="cortex-m4", samples=1, quantize="int8",
                         compression=make_settings(opts) if opts else None)
            assert res["match"], res
            rows.append({"layer": label, "weights": name + (f", density {opts['density']}" if opts else ""),
                         "instructions": res["instructions"], "positions": positions,
                         "weights_bytes": res["weights_stored_bytes"]})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=Path, default=HERE.parent / "models" / "mlperf-tiny")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--sections", default="cells,big,fc,conv,int8", help="which sections to run")
    ap.add_argument("--fc-only", help="fc section: only the rows whose label contains one of these (comma-separated)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    out = {"date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}"}
    with tempfile.TemporaryDirectory(prefix="wl-bench-") as tmp:
        tmp = Path(tmp)
        if "cells" in sections:
            out["cells_per_key"] = cpk = cells_per_key(args.models, tmp)
            print("| model | layer | hashes | keys | cells | cells per key |\n|---|---|---|---|---|---|")
            for r in cpk:
                print(f"| {r['model']} | {r['layer']} | {r['hashes']} | {r['keys']:,} | {r['cells']:,} | {r['cells_per_key']:.4f} |")
            for h in (4, 3):
                big = [r["cells_per_key"] for r in cpk if r["hashes"] == h and r["keys"] >= 1000]
                print(f"\nhashes={h}: layers with >= 1,000 keys: {len(big)}, cells per key max {max(big):.4f}, mean {np.mean(big):.4f}")
        if "big" in sections:
            out["big_layer"] = big = big_layer()
            print(f"\n4096x25088 at 4%: {big['seconds']:.1f} s, peak {big['peak_rss_bytes'] / 2**30:.2f} GiB, "
                  f"{big['report']['kept']:,} keys, {big['report']['cells_per_key']} cells/key, "
                  f"{big['report']['false_positives']:,} false positives")
        if "fc" in sections:
            out["fc_kernel"] = fc = fc_kernel(tmp, args.fc_only.split(",") if args.fc_only else None)
            print("\n| fully connected 1024 -> 256, density 0.1 | instructions | per weight position "
                  "| code beyond the dense kernel, bytes | weights, bytes |\n|---|---|---|---|---|")
            for r in fc:
                print(f"| {r['kernel']} | {r['instructions']:,} | {r['per_position']:.2f} | {r['extra_code_bytes']:,} "
                      f"| {r['weights_bytes']:,} |")
        if "ad01" in sections:
            out["ad01"] = rows = ad01(args.models)
            print("\n| ad01, density 0.1, K=16 | instructions | / dense | weights and biases, bytes |\n|---|---|---|---|")
            for r in rows:
                print(f"| {r['weights']} | {r['instructions']:,} | {r['ratio']:.2f}x | {r['weights_bytes']:,} |")
        if "conv" in sections:
            out["convolutions"] = conv = convolutions(args.models, tmp)
            print("\n| convolution (density 0.3, K=16, t=8) | dense | compressed | compressed / dense "
                  "| code beyond the dense kernels, bytes | whole-model ratio |\n|---|---|---|---|---|---|")
            for r in conv:
                print(f"| {r['layer']} | {r['dense']:,} | {r['compressed']:,} | {r['ratio']:.2f}x | "
                      f"{r['extra_code_bytes']:,} | {r['model_flash_ratio']:.2f}x |")
        if "conv-code" in sections:
            out["conv_code"] = rows = conv_code_by_t(tmp)
            print("\n| t (K=16, 4 hashes) | code beyond the dense kernels, the three kinds together, bytes | of which the "
                  "group decode |\n|---|---|---|")
            for r in rows:
                group = sum(v for k, v in r["extra_code"].items() if k.startswith("wl_decode_group_t"))
                print(f"| {r['t']} | {r['extra_code_bytes']:,} | {group:,} |")
        if "int8" in sections:
            out["int8"] = rows8 = int8_kernels(tmp)
            print("\n| int8 layer (cortex-m4) | weights | instructions | / dense int8 | weights and constants, bytes |"
                  "\n|---|---|---|---|---|")
            dense = {r["layer"]: r["instructions"] for r in rows8 if r["weights"] == "dense int8"}
            for r in rows8:
                print(f"| {r['layer']} | {r['weights']} | {r['instructions']:,} | "
                      f"{r['instructions'] / dense[r['layer']]:.2f}x | {r['weights_bytes']:,} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
