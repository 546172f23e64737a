"""The `weightless-mcu` command: compile, verify, report.

Exit statuses: 0 success; 1 verify ran but the firmware does not match
onnxruntime; 2 bad model file or option; 3 unsupported op or shape; 4 unknown
target or model too large for it; 5 toolchain missing or failing; 6 firmware
fault, hang or error; 70 internal error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .api import compile_model, log_progress, report, verify
from .errors import OptionError, WeightlessError
from .frontend import parse_input_shapes
from .targets import DEFAULT_TARGET, target_names

EXIT_MISMATCH = 1
EXIT_INTERNAL = 70


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="weightless-mcu", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"weightless-mcu {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--target", default=DEFAULT_TARGET, help=f"one of: {', '.join(target_names())} (default {DEFAULT_TARGET})")
        sp.add_argument("--input-shape", action="append", metavar="NAME=D0,D1,...",
                        help="fix the shape of an input with symbolic dimensions (the batch dimension defaults to 1)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress messages")

    c = sub.add_parser("compile", help="compile an ONNX model into a C library")
    c.add_argument("model", type=Path)
    c.add_argument("-o", "--output", type=Path, required=True, help="output directory (replaced atomically)")
    c.add_argument("--name", help="C name of the model (default: from the file name)")
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
    common(v)

    r = sub.add_parser("report", help="flash and RAM of a compiled output directory or a firmware ELF")
    r.add_argument("path", type=Path)
    r.add_argument("--target", help="build for this target instead of the one the output was compiled for")
    r.add_argument("--json", type=Path, help="write the report as JSON to this file")
    r.add_argument("-q", "--quiet", action="store_true")
    return p


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B ({n / 1024:.1f} KiB)"


def _print_sizes(res: dict) -> None:
    print(f"  model flash     {_kb(res['flash_bytes'])}")
    print(f"  model RAM       {_kb(res['ram_bytes'])}" + (f"  (arena {res['arena_bytes']:,} B, lower bound {res['arena_lower_bound_bytes']:,} B)" if "arena_bytes" in res else ""))
    if res.get("stack_bytes") is not None:
        print(f"  stack           {_kb(res['stack_bytes'])}  (deepest use by one inference)")
    print(f"  image flash     {_kb(res['image_flash_bytes'])}  (with harness and C library)")
    print(f"  image RAM       {_kb(res['image_ram_bytes'])}")
    layers = res.get("layers") or []
    if layers:
        width = min(48, max(len(layer["layer"]) for layer in layers))
        print(f"  {'layer':<{width}}  {'kernel':<17} {'flash':>10}")
        for layer in layers:
            name = layer["layer"] if len(layer["layer"]) <= width else "..." + layer["layer"][-(width - 3):]
            print(f"  {name:<{width}}  {layer['kernel']:<17} {layer['flash_bytes']:>10,}")


def _write_json(path: Path | None, data: dict) -> None:
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise OptionError(f"cannot write {path}: {exc.strerror}") from None


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    progress = (lambda _: None) if args.quiet else log_progress
    if args.command == "compile":
        m = compile_model(args.model, args.output, target=args.target, input_shapes=parse_input_shapes(args.input_shape),
                          name=args.name, progress=progress)
        if not args.quiet:
            print(f"wrote {args.output}/: model.h, model.c, runtime/ ({len(m['layers'])} kernel calls, "
                  f"entry point {m['run_function']}, arena {m['arena_bytes']:,} B)")
        return 0
    if args.command == "verify":
        res = verify(args.model, target=args.target, inputs=args.inputs, samples=args.samples, seed=args.seed,
                     tolerance=args.tolerance, input_shapes=parse_input_shapes(args.input_shape), outputs=args.outputs,
                     timeout=args.timeout, progress=progress)
        _write_json(args.json, res)
        where = "host" if res["board"] is None else f"{res['target']} on {res['board']} (QEMU)"
        print(f"{res['name']}: {where}, {res['samples']} sample(s)")
        print(f"  match           {'yes' if res['match'] else 'NO'}  (max |error| {res['max_abs_error']:.3g}, "
              f"relative {res['max_rel_error']:.3g}, tolerance {res['tolerance']:g})")
        if res["instructions"] is not None:
            print(f"  instructions    {res['instructions']:,} per inference (exact, QEMU)")
        _print_sizes(res)
        return 0 if res["match"] else EXIT_MISMATCH
    res = report(args.path, target=args.target, progress=progress)
    _write_json(args.json, res)
    print(f"{res.get('name', res.get('elf'))}" + (f": {res['target']}" if "target" in res else ""))
    _print_sizes(res)
    return 0


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
