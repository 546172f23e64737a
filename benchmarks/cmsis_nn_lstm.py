"""A keyword-spotting LSTM (49 steps of 10 features, 64 hidden units) side by side with
CMSIS-NN's arm_lstm_unidirectional_f32 on cortex-m4 (mps2-an386 under QEMU, -O2, exact
counts): ours compiled from an ONNX LSTM by weightless-mcu (dense, and with W and R as Weightless
tables), CMSIS-NN's built from its source into the same harness with the same flags, fed the
same weights and inputs. Each kernel call is counted alone (the profiling build's step markers).

    python benchmarks/cmsis_nn_lstm.py --cmsis-nn DIR [--json FILE]

DIR: a CMSIS-NN source tree (Include/ and Source/, github.com/ARM-software/CMSIS-NN).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from weightless_mcu.api import verify
from weightless_mcu.compress.settings import make_settings
from weightless_mcu.qemu import run_firmware
from weightless_mcu.resources import firmware_dir
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_image

from cmsis_nn_layers import TARGET, cmsis_library
SEQ, INPUT, HIDDEN = 49, 10, 64


def lstm_model(path: Path, seed: int = 0):
    """An ONNX LSTM (no initial state: zeros, as CMSIS-NN starts) and its W, R, B."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.3, (1, 4 * HIDDEN, INPUT)).astype(np.float32)
    r = rng.normal(0, 0.15, (1, 4 * HIDDEN, HIDDEN)).astype(np.float32)
    b = rng.normal(0, 0.1, (1, 8 * HIDDEN)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], hidden_size=HIDDEN)], "kws_lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SEQ, 1, INPUT])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [SEQ, 1, 1, HIDDEN])],
        [numpy_helper.from_array(a, n) for n, a in (("W", w), ("R", r), ("B", b))])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    return w[0], r[0], b[0]


def _c_floats(name: str, values: np.ndarray) -> str:
    body = ", ".join(float(v).hex() for v in np.asarray(values, np.float32).reshape(-1))
    return f"static const float {name}[{values.size}] = {{{body}}};\n"


def cmsis_source(w: np.ndarray, r: np.ndarray, b: np.ndarray) -> str:
    """A harness model that calls arm_lstm_unidirectional_f32 between two step markers, with the
    ONNX gates (i, o, f, c rows of W and R; bias W's plus R's) as CMSIS-NN's four gates."""
    h = HIDDEN
    bias = b[:4 * h] + b[4 * h:]
    src = ['#define ARM_NN_ENABLE_F32 1\n#include "arm_nnfunctions.h"\n', "void wl_profile_step(int step);\n"]
    for k, gate in enumerate("iofc"):
        src.append(_c_floats(f"w_{gate}", w[k * h:(k + 1) * h]))
        src.append(_c_floats(f"r_{gate}", r[k * h:(k + 1) * h]))
        src.append(_c_floats(f"b_{gate}", bias[k * h:(k + 1) * h]))
    src.append(f"""static float temp1[{h}], temp2[{h}], cell[{h}];

int bench_run(const float *x, float *y)
{{
    cmsis_nn_lstm_params_f32 p = {{1, 1, {SEQ}, {INPUT}, {h}, 0.0f,
        {{w_f, r_f, b_f, ARM_NN_FLT_ACT_SIGMOID}}, {{w_i, r_i, b_i, ARM_NN_FLT_ACT_SIGMOID}},
        {{w_c, r_c, b_c, ARM_NN_FLT_ACT_TANH}}, {{w_o, r_o, b_o, ARM_NN_FLT_ACT_SIGMOID}}}};
    cmsis_nn_lstm_context_f32 ctx = {{temp1, temp2, cell}};
    wl_profile_step(0);
    arm_cmsis_nn_status st = arm_lstm_unidirectional_f32(x, y, &p, &ctx);
    wl_profile_step(1);
    return st == ARM_CMSIS_NN_SUCCESS ? 0 : 91;
}}
""")
    return "".join(src)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cmsis-nn", type=Path, required=True, help="CMSIS-NN source tree (Include/, Source/)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not (args.cmsis_nn / "Include" / "arm_nnfunctions.h").is_file():
        ap.error(f"{args.cmsis_nn} is not a CMSIS-NN source tree (no Include/arm_nnfunctions.h)")
    tgt = get_target(TARGET)
    macs = SEQ * 4 * HIDDEN * (INPUT + HIDDEN)
    results = {"date": datetime.date.today().isoformat(), "machine": platform.platform(), "target": f"{TARGET} (mps2-an386)",
               "layer": f"LSTM, {SEQ} steps, {INPUT} inputs, {HIDDEN} hidden", "macs": macs, "rows": {}}
    with tempfile.TemporaryDirectory(prefix="wl-cmsis-lstm-") as tmp:
        work = Path(tmp)
        model = work / "lstm.onnx"
        w, r, b = lstm_model(model)
        x = np.random.default_rng(1).uniform(-1, 1, (1, SEQ * INPUT)).astype(np.float32)
        np.savez(work / "x.npz", x=x.reshape(1, SEQ, 1, INPUT))
        variants = {"ours, dense": None,
                    "ours, W and R as Bloomier tables (density 0.1, K=16, t=8)": make_settings(
                        dict(density=0.1, clusters=16, bits=8, encoding="bloomier")),
                    "ours, W and R as sparse streams (density 0.1, K=16)": make_settings(
                        dict(density=0.1, clusters=16, encoding="sparse"))}
        dense_y = None
        for name, settings in variants.items():
            res = verify(model, target=TARGET, inputs=work / "x.npz", profile=True, compression=settings,
                         outputs=work / "y.npz")
            (step,) = [s for s in res["steps"] if s["kernel"].startswith("lstm")]
            if settings is None:
                dense_y = np.load(work / "y.npz")["y"].reshape(-1)
            results["rows"][name] = {"instructions": step["instructions"], "kernel": step["kernel"], "match": res["match"],
                                     "weights_stored_bytes": res["weights_stored_bytes"]}
            print(f"{name}: {step['instructions']:,} instructions ({step['instructions'] / macs:.2f}/MAC), "
                  f"equals onnxruntime: {res['match']}", flush=True)
        print("building CMSIS-NN", flush=True)
        lib = cmsis_library(args.cmsis_nn, work, float32=True)
        c_file = work / "cmsis_lstm.c"
        c_file.write_text(cmsis_source(w, r, b))
        out_size = SEQ * HIDDEN
        header = (f"int bench_run(const float *x, float *y);\n#define WL_HARNESS_INPUT_SIZE {x.shape[1]}\n"
                  f"#define WL_HARNESS_OUTPUT_SIZE {out_size}\n#define WL_HARNESS_RUN(in, out) bench_run(in, out)\n")
        elf = build_image(tgt, work / "build", [c_file], [args.cmsis_nn / "Include", firmware_dir() / "include"], header,
                          extra_ldflags=(str(lib),), model_warnings=("-w",))
        run = run_firmware(elf, tgt, x, out_size, model="cmsis-nn lstm", profile=True)
        insns = max(s[1] for s in run.step_instructions)
        diff = float(np.max(np.abs(run.outputs.reshape(-1) - dense_y)))
        results["rows"]["CMSIS-NN arm_lstm_unidirectional_f32"] = {"instructions": insns, "max_abs_from_ours": diff}
        print(f"CMSIS-NN: {insns:,} instructions ({insns / macs:.2f}/MAC); outputs within {diff:.2g} of ours", flush=True)
    print()
    print(f"| {results['layer']} ({macs:,} MACs) | instructions | per MAC | per step |")
    print("|---|---|---|---|")
    for name, row in results["rows"].items():
        n = row["instructions"]
        print(f"| {name} | {n:,} | {n / macs:.2f} | {n // SEQ:,} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
