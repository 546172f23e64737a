"""The ONNX backend node tests (and the Conv/ConvTranspose/pooling cases of its
pytorch-converted data) as conformance cases, run through the generated C.

    python -m weightless_mcu.conformance [--ops Conv,Relu] [--target host] [--json FILE]

Each case of `onnx.backend.test.case.node.collect_testcases()` whose ops are
all supported is compiled, built for the target (the host by default, or a
board under QEMU) and run on the case's inputs; its outputs are compared with
the expected outputs stored in the case (rtol 1e-3, atol 1e-5). Every float32,
int8 and uint8 input is fed at run time first; where the compiler needs an
operand constant (a Conv's weights, a Reshape's shape, a scale), the inputs after
the first become initializers holding the case's data and the case runs again.
A case in an opset newer than onnxruntime runs is converted to its opset for the
reference run.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import FitError, ModelLoadError, OptionError, ShapeError, UnsupportedOpError, WeightlessError
from .lowering import supported_ops
from .targets import get_target
from .passes import REMOVED_OPS
from .qoperator import STANDARD_QOPS

RTOL, ATOL = 1e-3, 1e-5
# The errors that refuse a model cleanly: the case is skipped with their sentence as the reason.
REFUSALS = (UnsupportedOpError, ShapeError, ModelLoadError, OptionError, FitError)
# The float32 ops the firmware is meant to cover (the default selection, with every supported op).
SCOPE = ("Gemm", "MatMul", "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
         "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softmax", "LogSoftmax",
         "Add", "Sub", "Mul", "Div", "BatchNormalization", "Flatten", "Reshape", "Transpose", "Concat", "Squeeze",
         "Unsqueeze", "Pad", "ReduceMean", "Gather", "Identity", "Dropout", "Abs", "Neg", "Sqrt", "Exp", "Log",
         "Reciprocal", "Erf", "Gelu", "Pow", "Min", "Max", "Resize", "DepthToSpace", "SpaceToDepth", "LSTM", "GRU")

# The int8 ops of the standard: QuantizeLinear and DequantizeLinear are lowered, QLinearConv and
# QLinearMatMul read in their QDQ form (qoperator.py).
INT8_OPS = ("QuantizeLinear", "DequantizeLinear", *sorted(STANDARD_QOPS))
# The element types a case's inputs and outputs may have (models take and give these).
IO_DTYPES = (np.float32, np.int8, np.uint8)


def default_ops() -> set[str]:
    return set(SCOPE) | set(supported_ops()) | set(INT8_OPS)


@dataclass
class Outcome:
    case: str
    op: str
    status: str  # passed | failed | skipped
    reason: str = ""
    runtime_inputs: int = 1  # float inputs fed at run time (the others were made constants)


def node_cases(ops: set[str] | None = None) -> list:
    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):  # the generators' own overflow warnings
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        collected = collect_testcases()
    cases = []
    for tc in collected:
        if tc.kind != "node" or tc.model is None or not tc.model.graph.node:
            continue
        if ops is None or tc.model.graph.node[0].op_type in ops:
            cases.append(tc)
    return sorted(cases, key=lambda tc: tc.name)


@dataclass
class DirCase:
    """A case stored as a directory: model.onnx and test_data_set_0/{input,output}_*.pb."""

    name: str
    model: onnx.ModelProto
    data_sets: list
    kind: str = "pytorch-converted"


def _read_pbs(folder: Path, prefix: str) -> list[np.ndarray]:
    arrays = []
    for f in sorted(folder.glob(f"{prefix}_*.pb"), key=lambda f: int(f.stem.split("_")[-1])):
        t = onnx.TensorProto()
        t.ParseFromString(f.read_bytes())
        arrays.append(numpy_helper.to_array(t))
    return arrays


def pytorch_cases(ops: set[str] | None = None) -> list[DirCase]:
    """The Conv, ConvTranspose and pooling cases of onnx's pytorch-converted data (old
    opsets: the front end upgrades them)."""
    root = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted"
    cases = []
    for d in sorted(root.glob("test_*")) if root.is_dir() else []:
        if not any(k in d.name for k in ("Conv", "Pool")) or not (d / "model.onnx").exists():
            continue
        model = onnx.load(str(d / "model.onnx"))
        if not model.graph.node or (ops is not None and model.graph.node[0].op_type not in ops):
            continue
        data = d / "test_data_set_0"
        cases.append(DirCase(f"pytorch_{d.name[5:]}", model, [(_read_pbs(data, "input"), _read_pbs(data, "output"))]))
    return cases


def _constant_inputs(model: onnx.ModelProto, inputs: list[np.ndarray], runtime: int) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    """Keep the first `runtime` float inputs as the model's inputs; the others become initializers."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    keep, kept_arrays = [], []
    stored = {t.name for t in g.initializer}
    for vi, arr in zip([vi for vi in g.input if vi.name not in stored], inputs):
        if len(keep) < runtime and arr.dtype in IO_DTYPES:
            keep.append(vi)
            kept_arrays.append(arr)
        else:
            g.initializer.append(numpy_helper.from_array(arr, vi.name))
    del g.input[:]
    g.input.extend(keep)
    m.ir_version = max(m.ir_version, 4)  # from IR 4 on, initializers need not be graph inputs
    return m, kept_arrays


def run_case(tc, target: str, work: Path) -> Outcome:
    op = tc.model.graph.node[0].op_type
    name = tc.name
    if name.endswith("_expanded") or "_expanded_" in name:
        return Outcome(name, op, "skipped", "function expansion")
    unsupported = sorted({n.op_type for n in tc.model.graph.node} - set(supported_ops()) - set(REMOVED_OPS)
                         - set(STANDARD_QOPS))
    if unsupported:
        return Outcome(name, op, "skipped", f"unsupported op {', '.join(unsupported)}")
    if not tc.data_sets:
        return Outcome(name, op, "skipped", "no data")
    inputs, expected = tc.data_sets[0]
    inputs = [np.asarray(a) for a in inputs]
    expected = [np.asarray(a) for a in expected]
    if any(a.dtype == object for a in [*inputs, *expected]):
        return Outcome(name, op, "skipped", "a tensor of a type numpy does not hold (float8, int4, ...)")
    if any(a.dtype not in IO_DTYPES for a in expected):
        return Outcome(name, op, "skipped", f"an output of type {next(a.dtype for a in expected if a.dtype not in IO_DTYPES)}")
    if any(a.dtype == np.float16 for a in inputs):
        return Outcome(name, op, "skipped", "a float16 input")
    floats = sum(a.dtype in IO_DTYPES for a in inputs)
    if not floats:
        return Outcome(name, op, "skipped", "no float32, int8 or uint8 input")
    # Every float32 / int8 / uint8 input at run time first (Add of two activations); where the
    # compiler needs an operand constant (a Conv's weights, a Reshape's shape, a scale), that
    # operand and the rest become initializers, as in the models users bring.
    for runtime in sorted({floats, 1}, reverse=True):
        outcome = _run_with_inputs(tc, target, work, op, *_constant_inputs(tc.model, inputs, runtime), expected)
        outcome.runtime_inputs = runtime
        if outcome.status != "skipped":
            return outcome
    return outcome


# The newest default-domain opset the onnxruntime of the tests runs.
ORT_OPSET = 21


def _older_opset(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """The case converted to ORT_OPSET when it is newer and converts (same node, same data), else None."""
    from onnx import version_converter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset <= ORT_OPSET:
        return None
    try:
        return version_converter.convert_version(model, ORT_OPSET)
    except Exception:
        return None


def _run_with_inputs(tc, target: str, work: Path, op: str, model: onnx.ModelProto, feed: list[np.ndarray],
                     expected: list[np.ndarray]) -> Outcome:
    from .api import verify

    name = tc.name
    arrays = {vi.name: a[None] for vi, a in zip(model.graph.input, feed)}
    if tc.kind == "pytorch-converted" and len(feed) == 1 and feed[0].ndim >= 3 and feed[0].shape[0] > 1:
        # Conv and pooling treat batch items independently: the firmware (batch 1)
        # runs them as separate samples.
        for vi in [*model.graph.input[:1], *model.graph.output]:
            vi.type.tensor_type.shape.dim[0].dim_value = 1
        del model.graph.value_info[:]
        arrays = {model.graph.input[0].name: feed[0][:, None]}
    path = work / f"{name}.onnx"
    onnx.save(model, path)
    np.savez(work / f"{name}_in.npz", **arrays)
    out = work / f"{name}_out.npz"
    try:
        verify(path, target=target, inputs=work / f"{name}_in.npz", outputs=out, tolerance=1.0)
    except WeightlessError as exc:
        # A clean refusal (unsupported by design, or too big for the board) is a skip;
        # anything else (a constant that could not be folded, a build or run failure) failed.
        status = "skipped" if isinstance(exc, REFUSALS) else "failed"
        return Outcome(name, op, status, str(exc).splitlines()[0][:160])
    except Exception as exc:
        what = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
        if type(exc).__module__.startswith("onnxruntime"):  # the reference itself cannot run the case
            older = _older_opset(model)
            if older is not None:  # e.g. QuantizeLinear-28: the same case in the newest opset it runs
                return _run_with_inputs(tc, target, work, op, older, feed, expected)
            return Outcome(name, op, "skipped", f"onnxruntime: {what}")
        return Outcome(name, op, "failed", f"internal error: {what}")
    got = np.load(out)
    for o, want in zip(model.graph.output, expected):
        have = got[o.name].reshape(want.shape)
        if not np.allclose(have, want, rtol=RTOL, atol=ATOL, equal_nan=True):
            err = float(np.nanmax(np.abs(have - want)))
            return Outcome(name, op, "failed", f"output '{o.name}' differs by up to {err:.3g}")
    return Outcome(name, op, "passed")


def summarize(outcomes: list[Outcome]) -> dict:
    ops: dict[str, dict] = {}
    for o in outcomes:
        row = ops.setdefault(o.op, {"cases": 0, "passed": 0, "failed": 0, "skipped": 0})
        row["cases"] += 1
        row[o.status] += 1
    return {"ops": dict(sorted(ops.items()))}


def _reason_kind(reason: str) -> str:
    """A skip reason without the node, file and shape that vary from case to case."""
    r = re.sub(r"^\S+ node '[^']*': ", "", reason)
    r = re.sub(r"^\S*/wl-conformance-[^:]*: ", "", r)
    r = re.sub(r" \((?:[^()]|\([^()]*\))*\)$", "", r)  # trailing details, one level of nesting
    return re.sub(r"'[^']*'", "X", r)


def table_lines(summary: dict) -> list[str]:
    """The per-op Markdown table of summarize()['ops']."""
    return ["| op | cases | passed | failed | skipped |", "|---|---|---|---|---|",
            *(f"| {op} | {r['cases']} | {r['passed']} | {r['failed']} | {r['skipped']} |" for op, r in summary.items())]


def markdown(outcomes: list[Outcome]) -> str:
    """The per-op table and the skip reasons grouped, as docs/CONFORMANCE.md shows them."""
    summary = summarize(outcomes)["ops"]
    lines = table_lines(summary)
    total = {k: sum(r[k] for r in summary.values()) for k in ("cases", "passed", "failed", "skipped")}
    lines.append(f"| **total** | {total['cases']} | {total['passed']} | {total['failed']} | {total['skipped']} |")
    multi = [o for o in outcomes if o.status == "passed" and o.runtime_inputs > 1]
    lines += ["", f"{len(multi)} of the passing cases ran with two or more float inputs fed at run time "
                  f"(e.g. {', '.join(o.case for o in multi[:3])})."]
    for status in ("failed", "skipped"):
        groups: dict[str, list[str]] = {}
        for o in outcomes:
            if o.status == status:
                groups.setdefault(_reason_kind(o.reason), []).append(o.case)
        if groups:
            lines += ["", f"Why cases {status} (count, examples):"]
            for kind, cases in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                lines.append(f"- {kind} ({len(cases)}): {', '.join(cases[:3])}{', ...' if len(cases) > 3 else ''}")
    return "\n".join(lines) + "\n"


def run(ops: set[str] | None, target: str, progress: Callable[[str], None]) -> list[Outcome]:
    outcomes = []
    cases = node_cases(ops) + pytorch_cases(ops)
    with tempfile.TemporaryDirectory(prefix="wl-conformance-") as tmp:
        for i, tc in enumerate(cases):
            o = run_case(tc, target, Path(tmp))
            outcomes.append(o)
            progress(f"[{i + 1}/{len(cases)}] {o.case}: {o.status}{' (' + o.reason + ')' if o.reason else ''}")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", help="comma-separated op types (default: the supported ops and the planned float32 set)")
    ap.add_argument("--all", action="store_true", help="every node test case, whatever its op")
    ap.add_argument("--target", default="host")
    ap.add_argument("--json", type=Path, help="write the per-op counts and each case's status")
    ap.add_argument("--markdown", type=Path, help="write the table and the grouped skip reasons as Markdown")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    try:
        get_target(args.target)
    except WeightlessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    ops = None if args.all else set(args.ops.split(",")) if args.ops else default_ops()
    outcomes = run(ops, args.target, (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    summary = summarize(outcomes)
    print("\n".join(table_lines(summary["ops"])))
    for o in outcomes:
        if o.status != "passed":
            print(f"{o.status}: {o.case}: {o.reason}")
    if args.json:
        summary["cases"] = {o.case: o.status for o in sorted(outcomes, key=lambda o: o.case)}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(outcomes))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
