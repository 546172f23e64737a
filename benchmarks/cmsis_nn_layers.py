"""Four int8 layers side by side with CMSIS-NN's s8 kernels on cortex-m4 (mps2-an386 under
QEMU, -O2, exact counts): ours compiled from a QDQ model by weightless-mcu, CMSIS-NN's built
from its source into the same harness with the same flags, fed the same quantized weights,
requantization constants and inputs. Each kernel call is counted alone (the profiling
build's step markers), so the input's quantization and the output's dequantization are
outside both counts.

    python benchmarks/cmsis_nn_layers.py --cmsis-nn DIR [--json FILE]

DIR: a CMSIS-NN source tree (Include/ and Source/, github.com/ARM-software/CMSIS-NN).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from onnx import helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from weightless_mcu.api import verify
from weightless_mcu.frontend import load_model
from weightless_mcu.lowering.quantized import _requantization
from weightless_mcu.passes import run_passes
from weightless_mcu.qemu import run_firmware
from weightless_mcu.resources import firmware_dir
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import OPT_FLAGS, build_image

TARGET = "cortex-m4"
# name: (input shape, weight shape, Conv attributes or None for Gemm, CMSIS-NN kernel, per channel)
LAYERS = {
    "conv 3x3, 32->32, 16x16": ([1, 32, 16, 16], [32, 32, 3, 3], {"pads": [1, 1, 1, 1]}, "arm_convolve_s8", True),
    "depthwise 3x3, 64 ch, 24x24": ([1, 64, 24, 24], [64, 1, 3, 3], {"pads": [1, 1, 1, 1], "group": 64},
                                    "arm_depthwise_conv_3x3_s8", True),
    "pointwise 1x1, 64->128, 12x12": ([1, 64, 12, 12], [128, 64, 1, 1], {}, "arm_convolve_1x1_s8_fast", True),
    "fully connected 1024->256": ([1, 1024], [256, 1024], None, "arm_fully_connected_s8", False),
}


class _Calibration(CalibrationDataReader):
    def __init__(self, shape: list[int]):
        rng = np.random.default_rng(1)
        self._it = iter([{"x": rng.uniform(-1, 1, shape).astype(np.float32)} for _ in range(8)])

    def get_next(self):
        return next(self._it, None)


def layer_model(work: Path, key: str, spec) -> Path:
    """The layer as a float ONNX model, quantized to QDQ by onnxruntime's quantize_static."""
    x_shape, w_shape, conv, _, per_channel = spec
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, w_shape).astype(np.float32)
    b = rng.normal(0, 0.1, w_shape[0]).astype(np.float32)
    if conv is None:
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
        y_shape = [1, w_shape[0]]
    else:
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **conv)
        y_shape = [1, w_shape[0], *x_shape[2:]]  # every layer here keeps the plane's size
    graph = helper.make_graph([node], key, [helper.make_tensor_value_info("x", 1, x_shape)],
                              [helper.make_tensor_value_info("y", 1, y_shape)],
                              [helper.make_tensor(n, 1, a.shape, a.reshape(-1)) for n, a in (("w", w), ("b", b))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    src, dst = work / f"{key}.fp32.onnx", work / f"{key}.onnx"
    src.write_bytes(model.SerializeToString())
    quantize_static(str(src), str(dst), _Calibration(x_shape), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return dst


def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    body = ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))
    return f"static const {ctype} {name}[{values.size}] = {{{body}}};\n"


def folded_layer(quantized: Path):
    """(graph, the int8 layer node) of a one-layer QDQ model, as the compiler folds it."""
    _, graph = load_model(quantized)
    run_passes(graph)
    (node,) = [n for n in graph.nodes if n.op in ("QLinearConvS8", "QLinearFc")]
    return graph, node


def cmsis_source(quantized: Path, spec) -> str:
    """A harness model that quantizes the float input (NCHW) into NHWC, calls the CMSIS-NN
    kernel between two step markers, and dequantizes its output back to NCHW floats, with the
    weights, bias and requantization of the layer the compiler folded from the QDQ model."""
    x_shape, w_shape, conv, kernel, _ = spec
    graph, node = folded_layer(quantized)
    w = graph.const(node.inputs[1]).astype(np.int64)
    bias = graph.const(node.inputs[2]).astype(np.int64)
    mult, rshift = (c.data for c in _requantization(node))
    (xs, xz), (ys, yz) = node.attrs["x_quant"], node.attrs["y_quant"]
    c_in = x_shape[1]
    h, wd = (x_shape[2], x_shape[3]) if len(x_shape) == 4 else (1, 1)
    c_out = w_shape[0]
    src = ["#include <math.h>\n#include <stdint.h>\n#include \"arm_nnfunctions.h\"\n#include \"wl_kernels.h\"\n",
           "void wl_profile_step(int step);\n",
           f"#define CIN {c_in}\n#define COUT {c_out}\n#define H {h}\n#define W {wd}\n"]
    if kernel == "arm_depthwise_conv_3x3_s8":
        filt = w.reshape(c_out, 3, 3).transpose(1, 2, 0)  # [1][kh][kw][C]
    elif conv is not None:
        filt = w.transpose(0, 2, 3, 1)  # OHWI
    else:
        filt = w  # [out][in]
    src.append(_c_array("int8_t", "filt", filt))
    src.append(_c_array("int32_t", "bias", bias))
    src.append(_c_array("int32_t", "mult", mult).replace("static const", "static"))
    src.append(_c_array("int32_t", "shift", 31 - rshift.astype(np.int64)).replace("static const", "static"))
    if kernel == "arm_fully_connected_s8":
        # TFLM computes the kernel sums once, when the model is set up: outside the count.
        src.append(f"static int32_t kernel_sum[COUT];\nstatic int8_t x8[CIN];\nstatic int8_t y8[COUT];\n")
    else:
        src.append("static int8_t x8[H * W * CIN];\nstatic int8_t y8[H * W * COUT];\n")
    src.append("static int8_t buf[16384] __attribute__((aligned(4)));\n")
    src.append(f"""
int bench_run(const float *x, float *y)
{{
    for (int c = 0; c < CIN; c++)
        for (int i = 0; i < H * W; i++)
            x8[i * CIN + c] = (int8_t)wl_quantize_value(x[c * H * W + i], {float(np.float32(xs))!r}f, {xz}, -128, 127);
    cmsis_nn_context ctx = {{buf, sizeof buf}};
    cmsis_nn_dims in_dims = {{1, H, W, CIN}}, bias_dims = {{1, 1, 1, COUT}}, out_dims = {{1, H, W, COUT}};
    arm_cmsis_nn_status st;
""")
    if kernel == "arm_fully_connected_s8":
        src.append(f"""    cmsis_nn_fc_params fc = {{{-xz}, 0, {yz}, {{-128, 127}}}};
    cmsis_nn_per_tensor_quant_params q = {{mult[0], shift[0]}};
    cmsis_nn_dims f_dims = {{CIN, 1, 1, COUT}};
    in_dims.n = 1; in_dims.h = 1; in_dims.w = 1; in_dims.c = CIN;
    out_dims.n = 1; out_dims.h = 1; out_dims.w = 1; out_dims.c = COUT;
    if (arm_fully_connected_s8_get_buffer_size(&f_dims) > (int32_t)sizeof kernel_sum)
        return 90;
    arm_vector_sum_s8(kernel_sum, CIN, COUT, filt, {-xz}, 0, bias);
    ctx.buf = kernel_sum;
    ctx.size = sizeof kernel_sum;
    wl_profile_step(0);
    st = arm_fully_connected_s8(&ctx, &fc, &q, &in_dims, x8, &f_dims, filt, &bias_dims, bias, &out_dims, y8);
    wl_profile_step(1);
""")
    else:
        src.append("    cmsis_nn_per_channel_quant_params q = {mult, shift};\n")
        if kernel == "arm_depthwise_conv_3x3_s8":
            src.append(f"""    cmsis_nn_dw_conv_params p = {{{-xz}, {yz}, 1, {{1, 1}}, {{1, 1}}, {{1, 1}}, {{-128, 127}}}};
    cmsis_nn_dims f_dims = {{1, 3, 3, COUT}};
    wl_profile_step(0);
    st = arm_depthwise_conv_3x3_s8(&ctx, &p, &q, &in_dims, x8, &f_dims, filt, &bias_dims, bias, &out_dims, y8);
    wl_profile_step(1);
""")
        else:
            k = w_shape[2]
            pad = conv.get("pads", [0])[0]
            call = ("arm_convolve_s8(&ctx, &p, &q, &in_dims, x8, &f_dims, filt, &bias_dims, bias, 0, &out_dims, y8)"
                    if kernel == "arm_convolve_s8" else
                    "arm_convolve_1x1_s8_fast(&ctx, &p, &q, &in_dims, x8, &f_dims, filt, &bias_dims, bias, &out_dims, y8)")
            size = ("arm_convolve_s8_get_buffer_size(&in_dims, &f_dims)" if kernel == "arm_convolve_s8"
                    else "arm_convolve_1x1_s8_fast_get_buffer_size(&in_dims)")
            src.append(f"""    cmsis_nn_conv_params p = {{{-xz}, {yz}, {{1, 1}}, {{{pad}, {pad}}}, {{1, 1}}, {{-128, 127}}}};
    cmsis_nn_dims f_dims = {{COUT, {k}, {k}, CIN}};
    if ({size} > (int32_t)sizeof buf)
        return 90;
    wl_profile_step(0);
    st = {call};
    wl_profile_step(1);
""")
    src.append(f"""    if (st != ARM_CMSIS_NN_SUCCESS)
        return 91;
    for (int c = 0; c < COUT; c++)
        for (int i = 0; i < H * W; i++)
            y[c * H * W + i] = (float)(y8[i * COUT + c] - {yz}) * {float(np.float32(ys))!r}f;
    return 0;
}}
""")
    return "".join(src)


def cmsis_library(cmsis: Path, work: Path, float32: bool = False) -> Path:
    """CMSIS-NN compiled with the target's flags into a static library: its int sources, or with
    float32, those and its f32 ones (ARM_NN_ENABLE_F32); never the f16 ones."""
    tgt = get_target(TARGET)
    skip = ("_f16.c",) if float32 else ("_f16.c", "_f32.c")
    sources = [s for s in sorted((cmsis / "Source").rglob("*.c")) if not s.name.endswith(skip)]
    objdir = work / "cmsis-nn-obj"
    objdir.mkdir(parents=True, exist_ok=True)
    defines = ["-DARM_NN_ENABLE_F32=1"] if float32 else []

    def one(k_src):
        k, src = k_src
        obj = objdir / f"{k}_{src.stem}.o"
        subprocess.run([tgt.cc, *tgt.board.cflags, *OPT_FLAGS, "-w", *defines, f"-I{cmsis / 'Include'}", "-c", str(src),
                        "-o", str(obj)], check=True)
        return obj

    with ThreadPoolExecutor(max_workers=2) as pool:
        objects = list(pool.map(one, enumerate(sources)))
    lib = work / "libcmsis-nn.a"
    subprocess.run(["arm-none-eabi-ar", "rcs", str(lib), *map(str, objects)], check=True)
    return lib


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cmsis-nn", type=Path, required=True, help="CMSIS-NN source tree (Include/, Source/)")
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not (args.cmsis_nn / "Include" / "arm_nnfunctions.h").is_file():
        ap.error(f"{args.cmsis_nn} is not a CMSIS-NN source tree (no Include/arm_nnfunctions.h)")
    tgt = get_target(TARGET)
    results = {"date": datetime.date.today().isoformat(), "machine": platform.platform(), "target": f"{TARGET} (mps2-an386)",
               "layers": {}}
    with tempfile.TemporaryDirectory(prefix="wl-cmsis-") as tmp:
        work = Path(tmp)
        print("building CMSIS-NN", flush=True)
        lib = cmsis_library(args.cmsis_nn, work)
        for k, (key, spec) in enumerate(LAYERS.items()):
            quantized = layer_model(work, f"layer{k}", spec)
            rng = np.random.default_rng(10 + k)
            x = rng.uniform(-1, 1, (args.samples, int(np.prod(spec[0])))).astype(np.float32)
            np.savez(work / f"x{k}.npz", x=x.reshape(args.samples, *spec[0][1:]))
            ours = verify(quantized, target=TARGET, inputs=work / f"x{k}.npz", profile=True, outputs=work / f"y{k}.npz")
            (step,) = [s for s in ours["steps"] if s["kernel"].endswith("_s8")]
            c_file = work / f"cmsis{k}.c"
            c_file.write_text(cmsis_source(quantized, spec))
            out_size = int(np.prod(spec[1][:1])) * (int(np.prod(spec[0][2:])) if len(spec[0]) == 4 else 1)
            header = (f"int bench_run(const float *x, float *y);\n#define WL_HARNESS_INPUT_SIZE {x.shape[1]}\n"
                      f"#define WL_HARNESS_OUTPUT_SIZE {out_size}\n#define WL_HARNESS_RUN(in, out) bench_run(in, out)\n")
            elf = build_image(tgt, work / f"build{k}", [c_file], [args.cmsis_nn / "Include", firmware_dir() / "include"],
                              header, extra_ldflags=(str(lib),), model_warnings=("-w",))
            run = run_firmware(elf, tgt, x, out_size, model=f"cmsis-nn {key}", profile=True)
            cmsis_insns = max(s[1] for s in run.step_instructions)
            # CMSIS-NN's outputs against ours (ours equal onnxruntime's: `match`), in steps of the output scale.
            ours_y = np.load(work / f"y{k}.npz")["y"].reshape(args.samples, -1)
            lsb = int(np.max(np.rint(np.abs(run.outputs - ours_y) / float(np.float32(folded_layer(quantized)[1].attrs["y_quant"][0])))))
            macs = int(np.prod(spec[1])) * (int(np.prod(spec[0][2:])) if len(spec[0]) == 4 else 1)
            row = {"macs": macs, "ours": step["instructions"], "ours_kernel": step["kernel"], "ours_match": ours["match"],
                   "ours_max_lsb_error": ours.get("max_lsb_error"), "cmsis_nn": cmsis_insns, "cmsis_nn_kernel": spec[3],
                   "cmsis_nn_max_lsb_from_ours": lsb}
            results["layers"][key] = row
            print(f"{key}: ours {row['ours']:,} ({row['ours'] / macs:.2f}/MAC, {step['kernel']}), CMSIS-NN {cmsis_insns:,} "
                  f"({cmsis_insns / macs:.2f}/MAC, {spec[3]}), ratio {row['ours'] / cmsis_insns:.2f}x; ours equals "
                  f"onnxruntime: {ours['match']}; CMSIS-NN within {lsb} step(s) of ours", flush=True)
    print()
    print("| layer | MACs | ours: instructions (per MAC) | CMSIS-NN s8: instructions (per MAC) | ours / CMSIS-NN |")
    print("|---|---|---|---|---|")
    for key, r in results["layers"].items():
        m = r["macs"]
        print(f"| {key} | {m:,} | {r['ours']:,} ({r['ours'] / m:.2f}) | {r['cmsis_nn']:,} ({r['cmsis_nn'] / m:.2f}, "
              f"`{r['cmsis_nn_kernel']}`) | {r['ours'] / r['cmsis_nn']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
