"""The `weightless-mcu` command: compile, verify, report.

Exit statuses: 0 success; 1 verify ran but the firmware does not match
onnxruntime; 2 bad model file or option; 3 unsupported op or shape; 4 unknown
target or model too large for it (or over --flash-limit/--ram-limit/--part);
5 toolchain missing or failing; 6 firmware fault, hang or error; 70 internal error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .api import Retraining, compile_model, init_config, log_progress, report, verify
from .codegen import OPTIMIZE_CHOICES
from .train.trainer import TrainConfig
from .compress import make_settings
from .errors import FitError, OptionError, WeightlessError
from .frontend import parse_constant_inputs, parse_input_shapes
from .outdir import write_file
from .parts import PARTS, check_limits, make_limits
from .report_html import write_html
from .report_text import encoding_lines, limit_lines, retraining_lines, size_lines
from .static_quantize import CALIBRATION_METHODS, QUANTIZE_CHOICES, RANDOM_SAMPLES
from .targets import DEFAULT_TARGET, target_names

EXIT_MISMATCH = 1
EXIT_TOO_BIG = FitError.exit_status  # --flash-limit / --ram-limit / --part not met
EXIT_INTERNAL = 70


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="weightless-mcu", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"weightless-mcu {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--target", default=DEFAULT_TARGET, help=f"one of: {', '.join(target_names())} (default {DEFAULT_TARGET})")
        sp.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                        help="fix the shape of an input with symbolic dimensions (the batch dimension defaults to 1)")
        sp.add_argument("--constant-input", action="append", metavar="NAME=V[,V...]",
                        help="make an input (of any numeric type: a sample rate, a flag) a compile-time constant of its "
                             "declared shape, so that what it feeds folds away; one value fills the shape")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
        sp.add_argument("--optimize", choices=list(OPTIMIZE_CHOICES), default="speed",
                        help="compressed fully connected layers: 'speed' (default) compiles a loop of its own for each "
                             "(t, hashes) the tables use; 'size' reads every weight on its own, with less code and "
                             "more instructions")
        qz = sp.add_argument_group("int8 (a float32 model quantized first, by onnxruntime's quantize_static: QDQ, "
                                   "int8 activations, per-channel int8 weights)")
        qz.add_argument("--quantize", choices=list(QUANTIZE_CHOICES),
                        help="quantize the float32 model to int8 first (with compression options: after compressing "
                             "it, each table kept for its int8 layer)")
        qz.add_argument("--calibration-data", type=Path, metavar="FILE.npz",
                        help="calibration inputs, laid out as --inputs (default: %d random inputs, and a warning that the "
                             "int8 model's accuracy is unknown)" % RANDOM_SAMPLES)
        qz.add_argument("--calibration-method", choices=list(CALIBRATION_METHODS), default="minmax",
                        help="onnxruntime's calibration method (default minmax)")
        c = sp.add_argument_group("compression (Weightless); any of these turns it on")
        c.add_argument("--density", type=float, help="kept fraction of each layer's weights, in (0, 1]")
        c.add_argument("--channels", type=float,
                       help="kept fraction of each layer's output channels (filters, neurons), in (0, 1]; the rest are "
                            "cut out of the model (structured pruning; default 1)")
        c.add_argument("--clusters", type=int, help="K shared weight values per layer (default 16)")
        c.add_argument("--bits", type=int, help="t, bits per Bloomier cell, 1..16, K <= 2^t - 1 (default 8)")
        c.add_argument("--hashes", type=int, help="location hashes (cell reads) per weight, 2..4 (default 4)")
        c.add_argument("--cells-per-key", type=float, help="Bloomier cells per stored weight to start from (default 1.03)")
        c.add_argument("--encoding", choices=["auto", "bloomier", "codebook", "dense"],
                       help="force an encoding for every layer (default auto: the smallest)")
        c.add_argument("--prune", choices=["layer", "global"], help="magnitude threshold per layer (default) or global")
        c.add_argument("--protect", choices=["auto", "none"],
                       help="auto (default): the output layer, when under a quarter of the model's weights, and layers under "
                            "2%% of them keep every weight as a dense cluster index (no pruning, no false positives); "
                            "none: compress them like the others")
        c.add_argument("--min-positions", type=int, help="layers with fewer weights stay dense (default 256)")
        c.add_argument("--bias-clusters", type=int,
                       help="with --train-data: each compressed layer's bias as K shared values (1, 2, 4 or 8-bit "
                            "indices) where that stores fewer bytes than float32, tuned by the retraining (default 4); "
                            "0: float32 biases")
        c.add_argument("--config", type=Path, help="TOML file with [defaults] and [layers.NAME] settings")
        r = sp.add_argument_group("retraining (the Weightless pipeline: prune, share, encode, freeze, retrain, layer by layer)")
        r.add_argument("--train-data", type=Path,
                       help=".npz with x, y (and optionally x_val, y_val; without y the model is distilled) or a directory of MNIST IDX files")
        r.add_argument("--epochs", type=float, default=1.0, help="epochs of retraining per step (default 1; fractions allowed)")
        r.add_argument("--batch-size", type=int, default=64)
        r.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
        r.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
        r.add_argument("--weight-decay", type=float, default=0.0,
                       help="decoupled weight decay while retraining (e.g. 0.5 with --lr 1e-3); helps the model generalise")
        r.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                       help="learning rate over each retraining step: cosine from --lr down to lr/20 (default) or constant")
        r.add_argument("--teacher-weight", type=float, default=0.0,
                       help="with labels, also learn from the original model's outputs (distillation at temperature 4) "
                            "with this weight in [0, 1] (default 0: labels only)")
        r.add_argument("--shift", type=int, default=0, metavar="PIXELS",
                       help="image models: move each training image by a random offset of up to this many pixels "
                            "each way, the teacher's targets taken on the moved image (default 0: as given)")
        r.add_argument("--final-epochs", type=float, default=0.0,
                       help="epochs of a last retraining at a tenth of --lr once every table is fixed (default 0)")
        r.add_argument("--seeds", type=int, default=4, help="hash seeds tried per layer (default 4)")
        r.add_argument("--target-accuracy-drop", type=float, metavar="P",
                       help="accuracy budget in percentage points of validation accuracy: each layer's channels, density, "
                            "K, t and encoding are searched, from the input side, for the fewest bytes within its share")
        r.add_argument("--budget-search", choices=["layers", "plan"], default="layers",
                       help="how the budget is searched: layers, one at a time from the input side, each within its share "
                            "(default), or plan: every layer measured alone, whole-model plans checked on validation")
        r.add_argument("--jobs", type=int, help="trials of the budget search run in this many processes (default: the cores)")
        r.add_argument("--warn-drop", type=float, default=5.0, metavar="POINTS",
                       help="warn when one compression step costs more than this many points of validation accuracy "
                            "(default 5), or the whole model more than 2 (or this, if lower)")

    def limits(sp):
        g = sp.add_argument_group("limits (exit status 4 when the model does not fit)")
        g.add_argument("--flash-limit", metavar="SIZE", help="flash for the model, e.g. 256K or 1M")
        g.add_argument("--ram-limit", metavar="SIZE", help="RAM for the model (arena + statics + stack), e.g. 64K")
        g.add_argument("--part", metavar="NAME", help=f"both limits from a part: {', '.join(p.name for p in PARTS.values())}")
        g.add_argument("--html", type=Path, metavar="FILE", help="also write the report as one self-contained HTML page")

    c = sub.add_parser("compile", help="compile an ONNX model into a C library")
    c.add_argument("model", type=Path)
    c.add_argument("-o", "--output", type=Path, required=True, help="output directory (replaced atomically)")
    c.add_argument("--name", help="C name of the model (default: from the file name)")
    c.add_argument("--json", type=Path, help="also write the manifest (shapes, arena, layers) as JSON to this file")
    c.add_argument("--weights-section", metavar="SECTION",
                   help="linker section for the weight tables and other constant arrays, e.g. .ext_flash "
                        "(default: .rodata; also -DWL_WEIGHTS_ATTR=... when building)")
    common(c)

    v = sub.add_parser("verify", help="compile, run the firmware (QEMU or host) and compare with onnxruntime")
    v.add_argument("model", type=Path)
    v.add_argument("--inputs", type=Path, help=".npz of input arrays keyed by input name, first axis = samples")
    v.add_argument("--samples", type=int, default=8, help="random samples when --inputs is not given (default 8)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--tolerance", type=float, default=1e-4, help="max |error| / max |output| allowed (default 1e-4)")
    v.add_argument("--outputs", type=Path, help="save the firmware's outputs to this .npz")
    v.add_argument("--json", type=Path, help="write the result as JSON to this file")
    v.add_argument("--timeout", type=float, default=600.0, help="seconds before a run counts as hung (default 600)")
    v.add_argument("--data", type=Path, help="labelled samples (.npz with x and y, or a directory with the t10k IDX files): "
                                              "reports the firmware's accuracy")
    v.add_argument("--profile", action="store_true",
                   help="count the instructions of every step (kernel) of an inference, on a board, with its MACs "
                        "and instructions per MAC")
    common(v)
    limits(v)

    ic = sub.add_parser("init-config", help="write a TOML compression config with the defaults and a table per layer")
    ic.add_argument("model", type=Path)
    ic.add_argument("-o", "--output", type=Path, default=Path("weightless.toml"), help="default weightless.toml")
    ic.add_argument("--force", action="store_true", help="replace the file if it exists")
    ic.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...")
    ic.add_argument("--constant-input", action="append", metavar="NAME=V[,V...]")

    r = sub.add_parser("report", help="flash and RAM of a compiled output directory or a firmware ELF")
    r.add_argument("path", type=Path)
    r.add_argument("--target", help="build for this target instead of the one the output was compiled for")
    r.add_argument("--json", type=Path, help="write the report as JSON to this file")
    r.add_argument("-q", "--quiet", action="store_true")
    limits(r)
    return p


def _compression(args) -> object:
    opts = {k: getattr(args, k) for k in ("density", "channels", "clusters", "bits", "hashes", "cells_per_key", "encoding",
                                             "prune", "protect", "min_positions", "bias_clusters")}
    return make_settings(opts, args.config)


def _retraining(args):
    if args.train_data is None:
        if args.target_accuracy_drop is not None:
            raise OptionError("--target-accuracy-drop needs --train-data")
        return None
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                      weight_decay=args.weight_decay, schedule=args.schedule, shift=args.shift)
    return Retraining(args.train_data, cfg, args.seeds, args.target_accuracy_drop, args.teacher_weight, args.final_epochs,
                      args.jobs, args.warn_drop, args.budget_search)


def _limits(args):
    return make_limits(args.flash_limit, args.ram_limit, args.part)


def _print_report(res: dict, limits, html: Path | None) -> int:
    """Sizes, the limit lines and the HTML page; EXIT_TOO_BIG when a limit fails."""
    print("\n".join(size_lines(res)))
    rows = check_limits(res, limits) if limits else []
    if rows:
        res["limits"] = {"part": limits.part.name if limits.part else None, "rows": rows}
        print("\n".join(limit_lines(rows, limits.label)))
    if html is not None:
        write_html(html, res)
    return 0 if all(r["fits"] for r in rows) else EXIT_TOO_BIG


def _print_retraining(res: dict, quiet: bool) -> None:
    """Validation metric before and after compression, the budget; the warnings last, on stderr even with -q."""
    summary = res.get("retraining")
    if not summary:
        return
    if not quiet:
        print("\n".join(retraining_lines(summary)))
    for w in summary.get("warnings", []):
        print(f"weightless-mcu: warning: {w}", file=sys.stderr)


def _write_json(path: Path | None, data: dict) -> None:
    if path is not None:
        write_file(path, json.dumps(data, indent=2) + "\n")


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    progress = (lambda _: None) if getattr(args, "quiet", False) else log_progress
    if args.command == "compile":
        m = compile_model(args.model, args.output, target=args.target, input_shapes=parse_input_shapes(args.input_shape),
                          name=args.name, compression=_compression(args), retraining=_retraining(args),
                          weights_section=args.weights_section, quantize=args.quantize,
                          calibration_data=args.calibration_data, calibration_method=args.calibration_method,
                          optimize=args.optimize, constant_inputs=parse_constant_inputs(args.constant_input),
                          progress=progress)
        _write_json(args.json, m)
        if not args.quiet:
            print(f"wrote {args.output}/: model.h, model.c, runtime/, model.mk, CMakeLists.txt ({len(m['steps'])} kernel calls, "
                  f"entry point {m['run_function']}, arena {m['arena_bytes']:,} B)")
            print("\n".join(encoding_lines(m)))
        _print_retraining(m, args.quiet)
        return 0
    if args.command == "init-config":
        text = init_config(args.model, args.output, input_shapes=parse_input_shapes(args.input_shape), overwrite=args.force,
                           constant_inputs=parse_constant_inputs(args.constant_input))
        print(f"wrote {args.output} ({text.count('[layers.')} layers with weights); use it with --config {args.output}")
        return 0
    limits = _limits(args) if args.command in ("verify", "report") else None  # bad limits fail before any work
    if args.command == "verify":
        res = verify(args.model, target=args.target, inputs=args.inputs, samples=args.samples, seed=args.seed,
                     tolerance=args.tolerance, input_shapes=parse_input_shapes(args.input_shape), outputs=args.outputs,
                     timeout=args.timeout, compression=_compression(args), retraining=_retraining(args), data=args.data,
                     profile=args.profile, quantize=args.quantize, calibration_data=args.calibration_data,
                     calibration_method=args.calibration_method, optimize=args.optimize,
                     constant_inputs=parse_constant_inputs(args.constant_input), progress=progress)
        where = "host" if res["board"] is None else f"{res['target']} on {res['board']} (QEMU)"
        print(f"{res['name']}: {where}, {res['samples']} sample(s)")
        print(f"  match           {'yes' if res['match'] else 'NO'}  (against onnxruntime on the {res['reference']}: "
              f"max |error| {res['max_abs_error']:.3g}, relative {res['max_rel_error']:.3g}, tolerance {res['tolerance']:g})")
        if "max_lsb_error" in res:
            print(f"  int8 outputs    at most {res['max_lsb_error']} step(s) apart, {100 * res['lsb_differing_share']:.2f}% of "
                  f"elements differ (allowed: 1 step on at most 1%)")
        if "decoded_max_rel_deviation" in res:
            print(f"  decoded model   deviates from the original by max |d| {res['decoded_max_abs_deviation']:.3g}, "
                  f"relative {res['decoded_max_rel_deviation']:.3g}")
        if "accuracy" in res:
            print(f"  accuracy        {100 * res['accuracy']:.2f}% firmware, {100 * res['accuracy_onnxruntime_decoded']:.2f}% "
                  f"onnxruntime (same model), {100 * res['accuracy_original']:.2f}% original"
                  + (f", {100 * res['accuracy_float']:.2f}% float32 before quantizing" if "accuracy_float" in res else "")
                  + f"; {res['predictions_match']}/{res['samples']} predictions equal onnxruntime's")
        if res["instructions"] is not None:
            print(f"  instructions    {res['instructions']:,} per inference (exact, QEMU)")
        _print_retraining(res, args.quiet)
        fits = _print_report(res, limits, args.html)
        _write_json(args.json, res)
        return EXIT_MISMATCH if not res["match"] else fits
    res = report(args.path, target=args.target, progress=progress)
    print(f"{res.get('name', res.get('elf'))}" + (f": {res['target']}" if "target" in res else ""))
    fits = _print_report(res, limits, args.html)
    _write_json(args.json, res)
    return fits


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except WeightlessError as exc:
        print(f"weightless-mcu: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("weightless-mcu: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("WL_DEBUG"):
            raise
        print(f"weightless-mcu: internal error: {type(exc).__name__}: {exc} (set WL_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
