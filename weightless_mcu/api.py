"""The Python API, with the same verbs as the command line: compile, verify, report."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from .codegen import build_program, check_fits, render
from .compress import CompressionSettings, LayerReport, candidates, compress_graph, graph_reports
from .compress.int8_tables import int8_tables, per_tensor_overrides
from .compress.settings import LayerSettings, config_text
from .errors import OptionError, RunError
from .static_quantize import quantized_model
from .export import graph_to_onnx
from .frontend import InputOptions, load_model
from .ir import Graph
from .outdir import write_file, write_tree
from .passes import run_passes
from .quantized import QCONV, QFC
from .qemu import run_firmware
from .report import model_sizes, read_elf, size_report
from .stack_usage import inference_stack
from .targets import DEFAULT_TARGET, get_target
from .toolchain import build_firmware
from .train.data import fit_to_input, load_labelled, load_training_data
from .train.trainer import TrainConfig
from .train.weightless import RetrainOptions, retrain_compress

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Retraining:
    """Compress with retraining on data (the Weightless pipeline) instead of in one shot."""

    train_data: str | Path  # .npz (x, y[, x_val, y_val]; y optional) or a directory of IDX files
    config: TrainConfig = TrainConfig()
    seeds: int = 4
    accuracy_budget: float | None = None  # --target-accuracy-drop, percentage points
    teacher_weight: float = 0.0  # with labels: weight of distillation from the original model
    final_epochs: float = 0.0  # a last retraining at lr / 10 with every table fixed
    jobs: int | None = None  # parallel trial processes of the budget search (None: the cores)
    warn_drop: float = 5.0  # points of validation accuracy one step may cost before a warning
    search: str = "layers"  # the budget search: layers (one layer at a time) | plan (whole plans checked)


def _prepare(model: Path, inputs: InputOptions | None, name: str | None, compression: CompressionSettings | None,
             progress: Progress, retraining: Retraining | None = None, shown: str | None = None):
    """Load, run the passes and compress: (prepared ONNX model, graph, per-layer reports).
    shown: how the progress line names the model (the user's file, not a temporary one)."""
    progress(f"loading {shown or model}")
    inputs = inputs or InputOptions()
    onnx_model, graph = load_model(model, inputs.shapes, inputs.constants)
    if name is not None:
        if not name.isidentifier() or not name.isascii():
            raise OptionError(f"--name '{name}' is not a C identifier")
        graph.name = name
    run_passes(graph)
    if retraining is not None:
        if compression is None:
            if retraining.accuracy_budget is None:
                raise OptionError("retraining needs compression settings (--density ...) or --target-accuracy-drop")
            compression = CompressionSettings(LayerSettings(), {})
        data = load_training_data(retraining.train_data, seed=retraining.config.seed)
        if not 0.0 <= retraining.teacher_weight <= 1.0:
            raise OptionError(f"--teacher-weight must be in [0, 1], not {retraining.teacher_weight}")
        if retraining.final_epochs < 0:
            raise OptionError(f"--final-epochs must be >= 0, not {retraining.final_epochs}")
        jobs = retraining.jobs if retraining.jobs is not None else (os.cpu_count() or 1)
        if jobs < 1:
            raise OptionError(f"--jobs must be at least 1, not {jobs}")
        if retraining.warn_drop < 0:
            raise OptionError(f"--warn-drop must be >= 0, not {retraining.warn_drop}")
        if retraining.search not in ("layers", "plan"):
            raise OptionError(f"--budget-search must be layers or plan, not {retraining.search!r}")
        opts = RetrainOptions(retraining.config.validate(), retraining.seeds, accuracy_budget=retraining.accuracy_budget,
                              teacher_weight=retraining.teacher_weight, final_epochs=retraining.final_epochs, jobs=jobs,
                              warn_drop=retraining.warn_drop, search=retraining.search)
        return onnx_model, graph, retrain_compress(graph, compression, data, opts, progress)
    int8_layers = [n.name for n in graph.nodes if n.op in (QFC, QCONV)]
    if compression is not None and int8_layers:
        progress(f"warning: {len(int8_layers)} int8 layer(s) stay uncompressed ({', '.join(int8_layers[:3])}"
                 f"{', ...' if len(int8_layers) > 3 else ''}): the model is int8 already; compress its float32 "
                 f"version with --quantize int8 to have int8 layers on Weightless tables")
    # Without compression every layer is reported as it stays: dense float32.
    settings = compression or CompressionSettings(LayerSettings(encoding="dense"), {})
    return onnx_model, graph, compress_graph(graph, settings, progress)


@dataclass
class _Prepared:
    graph: Graph
    reports: list[LayerReport]
    reference: object  # the ONNX model onnxruntime runs to check the firmware (decoded, int8, ...)
    original: object | None  # the user's model, where the reference is another one
    float_model: object | None  # the float model an int8 one was quantized from
    quantization: dict | None


@contextlib.contextmanager
def _prepared(model: Path, inputs: InputOptions | None, name: str | None, compression: CompressionSettings | None,
              retraining: Retraining | None, quantize: str | None, calibration: Path | None, method: str,
              progress: Progress) -> Iterator[_Prepared]:
    """The model loaded, compressed and (with quantize) quantized, with the ONNX models verify
    compares against. Compressed and quantized: the float model is compressed (and retrained)
    first, its decoded model quantized with one scale per compressed weight tensor, and each
    table kept for its int8 layer with an int8 codebook (compress/int8_tables.py)."""
    if quantize is not None and (compression is not None or retraining is not None):
        original, fgraph, freports = _prepare(model, inputs, None, compression, progress, retraining)
        forced = frozenset(r.name for r in freports if compression is not None
                           and "encoding" in compression.given_for(r.name, r.tensor))
        with quantized_compressed(fgraph, freports, model, name, quantize, calibration, method, progress,
                                  forced) as prep:
            prep.original = original
            prep.graph.constant_inputs = fgraph.constant_inputs
            yield prep
        return
    inputs = inputs or InputOptions()
    with quantized_model(model, quantize, calibration, method, inputs, progress) as (src, q, float_model):
        # the quantized model has the constant inputs as initializers already
        onnx_model, graph, reports = _prepare(src, replace(inputs, constants={}) if q else inputs,
                                              name or (model.stem if q else None), compression,
                                              progress, retraining, shown=f"{model}, quantized to int8" if q else None)
        if q:
            graph.constant_inputs = {k: list(v) for k, v in inputs.constants.items()}
        reference = graph_to_onnx(graph) if graph.encodings else onnx_model
        yield _Prepared(graph, reports, reference, onnx_model if graph.encodings or graph.removed_parameters else None,
                        float_model, q)


@contextlib.contextmanager
def quantized_compressed(fgraph: Graph, freports: list[LayerReport] | None, model: Path, name: str | None,
                         quantize: str, calibration: Path | None, method: str, progress: Progress = _quiet,
                         forced: frozenset[str] = frozenset()) -> Iterator[_Prepared]:
    """A compressed float graph (its tables in fgraph.encodings) as an int8 model: its decoded
    model quantized by quantize_static with one scale per compressed weight tensor, each table
    kept for its int8 layer with an int8 codebook (compress/int8_tables.py). freports: the
    layers' reports (None: read off the encodings). model: the user's model, for names."""
    with tempfile.TemporaryDirectory(prefix="wl-decoded-") as tmp:
        decoded = Path(tmp) / f"{model.stem}_decoded.onnx"
        onnx.save(graph_to_onnx(fgraph), decoded)
        with quantized_model(decoded, quantize, calibration, method, None, progress,
                             overrides=per_tensor_overrides(fgraph), shown=model) as (src, q, float_model):
            reference, graph, _ = _prepare(src, None, name or model.stem, None, progress,
                                           shown=f"the compressed {model}, quantized to int8")
            reports = int8_tables(fgraph, graph_reports(fgraph) if freports is None else freports, graph, forced)
            graph.compression_summary = fgraph.compression_summary
            yield _Prepared(graph, reports, reference, None, float_model, q)


def _generate(graph: Graph, reports: list[LayerReport], out_dir: Path, tgt, progress: Progress,
              weights_section: str | None = None, quantization: dict | None = None, optimize: str = "speed") -> dict:
    program = build_program(graph, graph.name)
    check_fits(program, tgt)
    progress(f"generating C for {len(program.steps)} steps (arena {program.arena.size} bytes)")
    files = render(program, tgt, weights_section, optimize)
    manifest = json.loads(files["manifest.json"])
    manifest["layers"] = [r.as_dict() for r in reports]
    if graph.compression_summary:
        manifest["retraining"] = graph.compression_summary
    if quantization:
        manifest["quantization"] = quantization
    files["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    write_tree(Path(out_dir), files)
    return manifest


def compile_model(model: str | Path, out_dir: str | Path, *, target: str = DEFAULT_TARGET,
                  input_shapes: dict[str, tuple[int, ...]] | None = None, name: str | None = None,
                  compression: CompressionSettings | None = None, retraining: Retraining | None = None,
                  weights_section: str | None = None, quantize: str | None = None,
                  calibration_data: str | Path | None = None, calibration_method: str = "minmax",
                  optimize: str = "speed", constant_inputs: dict[str, tuple[float, ...]] | None = None,
                  progress: Progress = _quiet) -> dict:
    """Compile an ONNX model into a C library in out_dir. Returns the manifest.
    weights_section: the linker section for the constant arrays (default .rodata).
    optimize: "speed" or "size", for the compressed fully connected layers (codegen.OPTIMIZE_CHOICES).
    quantize="int8": quantize the float model first (static_quantize.py), calibrated on
    calibration_data (an .npz laid out as --inputs) or, without it, on random inputs.
    constant_inputs: inputs fixed at compile time, name -> values (--constant-input), of any
    numeric type; the library then takes only the others."""
    tgt = get_target(target)
    calibration = Path(calibration_data) if calibration_data is not None else None
    with _prepared(Path(model), InputOptions.of(input_shapes, constant_inputs), name, compression, retraining, quantize, calibration,
                   calibration_method, progress) as prep:
        return _generate(prep.graph, prep.reports, Path(out_dir), tgt, progress, weights_section, prep.quantization,
                         optimize)


def load_inputs(path: str | Path, inputs: list[dict], flag: str = "--inputs") -> list[np.ndarray]:
    """Arrays from an .npz, one per model input, each (samples, *shape without batch).
    flag: the option the file came from, for the errors."""
    try:
        npz = np.load(path)
    except Exception as exc:
        raise OptionError(f"{flag} {path}: cannot read it as .npz ({type(exc).__name__})") from None
    keys = list(npz.keys())
    arrays = []
    for inp in inputs:
        if inp["name"] in keys:
            arr = npz[inp["name"]]
        elif len(inputs) == 1 and len(keys) == 1:
            arr = npz[keys[0]]
        else:
            raise OptionError(f"{flag} {path} has no array named '{inp['name']}' (it has: {', '.join(keys)})")
        shape = tuple(inp["shape"])
        sample = shape[1:] if shape and shape[0] == 1 else shape
        if tuple(arr.shape[1:]) == shape and shape != sample:
            arr = arr.reshape(arr.shape[0], *sample)
        if arr.ndim == 0 or tuple(arr.shape[1:]) != tuple(sample):
            raise OptionError(
                f"{flag} {path}: array for '{inp['name']}' has shape {arr.shape}; expected (samples, {', '.join(map(str, sample))})"
            )
        kind = inp.get("dtype", "float32")
        if kind != "float32":
            lo, hi = _INT_RANGES[kind]
            if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr != np.rint(arr)) or arr.min() < lo or arr.max() > hi):
                raise OptionError(f"{flag} {path}: '{inp['name']}' is a {kind} input; its array holds values that are "
                                  f"not integers in [{lo}, {hi}]")
        arrays.append(np.ascontiguousarray(arr, np.float32))
    if len({a.shape[0] for a in arrays}) != 1 or arrays[0].shape[0] == 0:
        raise OptionError(f"{flag} {path}: the arrays must have the same, non-zero number of samples")
    return arrays


# The values of int8 and uint8 model inputs.
_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def random_inputs(inputs: list[dict], samples: int, seed: int = 0) -> list[np.ndarray]:
    """Standard normal samples for float32 inputs, uniform over the type's range for int8 and
    uint8 ones (held as float32, as the harness reads them)."""
    rng = np.random.default_rng(seed)
    out = []
    for inp in inputs:
        shape = tuple(inp["shape"])
        sample = shape[1:] if shape and shape[0] == 1 else shape
        kind = inp.get("dtype", "float32")
        if kind == "float32":
            out.append(rng.standard_normal((samples, *sample)).astype(np.float32))
        else:
            lo, hi = _INT_RANGES[kind]
            out.append(rng.integers(lo, hi + 1, (samples, *sample)).astype(np.float32))
    return out


def _compare(got: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float, float]:
    """(max |error|, max over outputs of max |error| / max |finite reference|). A NaN
    or infinity counts as no error where the reference has the same, and as an
    infinite one anywhere else."""
    max_abs = max_rel = 0.0
    for g, r in zip(got, ref):
        g64, r64 = g.astype(np.float64), np.asarray(r, np.float64)
        same = (g64 == r64) | (np.isnan(g64) & np.isnan(r64))
        with np.errstate(invalid="ignore"):
            diff = np.where(same, 0.0, np.abs(g64 - r64))
        diff[np.isnan(diff)] = np.inf
        err = float(diff.max()) if diff.size else 0.0
        finite = np.abs(r64[np.isfinite(r64)])
        scale = float(finite.max()) if finite.size else 0.0
        max_abs = max(max_abs, err)
        max_rel = max(max_rel, err / scale if scale > 0 else (0.0 if err == 0 else float("inf")))
    return max_abs, max_rel


def _compare_lsb(got: list[np.ndarray], ref: list[np.ndarray], outputs: list[dict]) -> dict | None:
    """For outputs dequantized from int8: the largest difference in steps of the output's
    scale, and the share of elements that differ at all. None when there are none."""
    diffs = [np.rint(np.abs(g.astype(np.float64) - np.asarray(r, np.float64)) / o["lsb"])
             for g, r, o in zip(got, ref, outputs) if "lsb" in o]
    if not diffs:
        return None
    flat = np.concatenate([d.reshape(-1) for d in diffs])
    return {"max_lsb_error": int(flat.max()) if flat.size else 0, "lsb_differing_share": float((flat > 0).mean()) if flat.size else 0.0}


def _onnxruntime_outputs(onnx_model, arrays: list[np.ndarray], manifest: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # The model as ONNX defines it: the basic level only folds constants and drops
    # redundant nodes, while the extended ones also fuse for speed in ways that change
    # the numbers (DequantizeLinear + MatMul becomes a kernel that quantizes the
    # activations on the fly: 0.09 off on a small model with int8 weights).
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if manifest.get("constant_inputs"):
        # An input fixed by --constant-input is an initializer here; onnxruntime's constant folding
        # of an If that tests it crashes (Silero VAD's sample rate): the graph as it stands.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(onnx_model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    samples = arrays[0].shape[0]
    results = [[] for _ in manifest["outputs"]]
    for s in range(samples):
        feed = {inp["name"]: np.asarray(arrays[k][s]).reshape(inp["shape"]).astype(inp.get("dtype", "float32"))
                for k, inp in enumerate(manifest["inputs"])}
        outs = sess.run([o["name"] for o in manifest["outputs"]], feed)
        for k, o in enumerate(outs):
            results[k].append(np.asarray(o, np.float32).reshape(-1))
    return [np.stack(r) for r in results]


def verify(model: str | Path, *, target: str = DEFAULT_TARGET, inputs: str | Path | None = None, samples: int = 8,
           seed: int = 0, tolerance: float = 1e-4, input_shapes: dict[str, tuple[int, ...]] | None = None,
           outputs: str | Path | None = None, timeout: float = 600.0, compression: CompressionSettings | None = None,
           retraining: Retraining | None = None, data: str | Path | None = None, profile: bool = False,
           quantize: str | None = None, calibration_data: str | Path | None = None, calibration_method: str = "minmax",
           optimize: str = "speed", constant_inputs: dict[str, tuple[float, ...]] | None = None,
           progress: Progress = _quiet) -> dict:
    """Compile, build the test firmware, run it (QEMU or host) and compare with
    onnxruntime on the decoded model (the original one when not compressed).
    With labelled data, the samples are those and accuracies are reported. profile (on a
    board): the instructions of every step, in result["steps"][i]["instructions"] (the
    most of any sample; each includes a marker call of a few instructions). quantize,
    calibration_data, calibration_method: as for compile_model; the reference is then
    onnxruntime on the int8 model, and with data the float model's accuracy is reported too."""
    calibration = Path(calibration_data) if calibration_data is not None else None
    if samples < 1:
        raise OptionError(f"--samples must be at least 1, not {samples}")
    if data is not None and inputs is not None:
        raise OptionError("give --inputs or --data, not both")
    tgt = get_target(target)
    labels = None
    if data is not None:
        x_data, labels = load_labelled(data)
    given = InputOptions.of(input_shapes, constant_inputs)
    with _prepared(Path(model), given, None, compression, retraining, quantize, calibration, calibration_method,
                   progress) as prep:
        result = verify_prepared(prep, tgt, model=Path(model), inputs=inputs, samples=samples, seed=seed,
                                 tolerance=tolerance, outputs=outputs, timeout=timeout, data=data,
                                 labelled=None if labels is None else (x_data, labels), profile=profile,
                                 optimize=optimize, progress=progress)
        compressed = bool(prep.graph.encodings)
    if compressed:
        # The whole-model ratio: what the dense model needs in flash (its weights, constants and
        # code: the same model, quantized alike, nothing compressed) over what this one needs.
        with _prepared(Path(model), given, None, None, None, quantize, calibration, calibration_method,
                       _quiet) as dense:
            dense_flash = model_flash(dense, tgt)
        result["dense_flash_bytes"] = dense_flash
        result["model_flash_ratio"] = round(dense_flash / result["flash_bytes"], 4)
    return result


def model_flash(prep: _Prepared, tgt) -> int:
    """The model flash (weights, constants, code) of a prepared model's library, built for tgt."""
    with tempfile.TemporaryDirectory(prefix="wl-flash-") as tmp:
        _generate(prep.graph, prep.reports, Path(tmp) / "out", tgt, _quiet, quantization=prep.quantization)
        return model_sizes(read_elf(build_firmware(Path(tmp) / "out", tgt, Path(tmp) / "build")))[0]


def verify_prepared(prep: _Prepared, tgt, *, model: Path, inputs=None, samples: int = 8, seed: int = 0,
                    tolerance: float = 1e-4, outputs=None, timeout: float = 600.0, data=None,
                    labelled: tuple[np.ndarray, np.ndarray] | None = None, profile: bool = False,
                    optimize: str = "speed", progress: Progress = _quiet) -> dict:
    """verify's work on a prepared model: build, run, compare. labelled: (x, y) of data."""
    graph, reports, quantization, float_model = prep.graph, prep.reports, prep.quantization, prep.float_model
    decoded_model = prep.reference
    x_data, labels = labelled if labelled is not None else (None, None)
    with tempfile.TemporaryDirectory(prefix="wl-verify-") as tmp:
        out_dir = Path(tmp) / "out"
        manifest = _generate(graph, reports, out_dir, tgt, progress, quantization=quantization, optimize=optimize)
        if labels is not None:
            if len(manifest["inputs"]) != 1:
                raise OptionError("--data works with single-input models; use --inputs")
            shape = tuple(manifest["inputs"][0]["shape"])
            arrays = [fit_to_input(x_data, shape, f"--data {data}").reshape(len(x_data), *_sample_shape(list(shape)))]
        elif inputs:
            arrays = load_inputs(inputs, manifest["inputs"])
        else:
            arrays = random_inputs(manifest["inputs"], samples, seed)
        n = arrays[0].shape[0]
        progress(f"building the firmware for {tgt.name}")
        elf = build_firmware(out_dir, tgt, Path(tmp) / "build", profile=profile and not tgt.is_host)
        flat_in = np.concatenate([a.reshape(n, -1) for a in arrays], axis=1)
        out_sizes = [int(np.prod(o["shape"])) for o in manifest["outputs"]]
        where = "on the host" if tgt.is_host else f"under QEMU ({tgt.board.machine})"
        progress(f"running {n} sample(s) {where}")
        run = run_firmware(elf, tgt, flat_in, sum(out_sizes), model=manifest["name"], timeout=timeout, progress=progress,
                           profile=profile and not tgt.is_host)
        progress("running onnxruntime")
        ref = _onnxruntime_outputs(decoded_model, arrays, manifest)
        got = np.split(run.outputs, np.cumsum(out_sizes)[:-1], axis=1)
        sizes = size_report(read_elf(elf), manifest, inference_stack(elf.parent, manifest["run_function"]))
    max_abs, max_rel = _compare(got, ref)
    result = {
        "model": str(model),
        "name": manifest["name"],
        "target": tgt.name,
        "board": None if tgt.is_host else tgt.board.machine,
        "match": bool(max_rel <= tolerance),
        "tolerance": tolerance,
        "max_abs_error": max_abs,
        "max_rel_error": max_rel,
        "samples": n,
    }
    lsb = _compare_lsb(got, ref, manifest["outputs"])
    if lsb is not None:
        # int8 outputs: equal, or one step apart on at most 1% of the elements (rounding ties
        # can fall either way when the requantization's arithmetic differs from onnxruntime's).
        result.update(lsb)
        floats = [k for k, o in enumerate(manifest["outputs"]) if "lsb" not in o]
        float_ok = _compare([got[k] for k in floats], [ref[k] for k in floats])[1] <= tolerance
        result["match"] = bool(float_ok and lsb["max_lsb_error"] <= 1 and lsb["lsb_differing_share"] <= 0.01)
    if "retraining" in manifest:
        result["retraining"] = manifest["retraining"]
    original = ref
    if prep.original is not None:
        original = _onnxruntime_outputs(prep.original, arrays, manifest)
        dev_abs, dev_rel = _compare(ref, original)
        result.update({"reference": "decoded model", "decoded_max_abs_deviation": dev_abs, "decoded_max_rel_deviation": dev_rel})
    else:
        result["reference"] = "original model"
    if quantization is not None:
        result["quantization"] = quantization
        result["reference"] = ("int8 model the decoded model was quantized to" if graph.encodings
                               else "int8 model it was quantized to")
    if labels is not None:
        def acc(outs):
            return float((outs[0].reshape(n, -1).argmax(axis=1) == labels).mean())

        result.update({"accuracy": acc(got), "accuracy_onnxruntime_decoded": acc(ref), "accuracy_original": acc(original),
                       "predictions_match": int((got[0].reshape(n, -1).argmax(1) == ref[0].reshape(n, -1).argmax(1)).sum())})
        if float_model is not None:  # the float model the int8 one was made from
            result["accuracy_float"] = acc(_onnxruntime_outputs(float_model, arrays, manifest))
    if outputs:
        np.savez(outputs, **{o["name"]: g.reshape(n, *_sample_shape(o["shape"])) for o, g in zip(manifest["outputs"], got)})
    if run.step_instructions is not None:
        per_step = np.max(np.asarray(run.step_instructions), axis=0)
        if len(per_step) != len(sizes["steps"]):
            raise RunError(f"the profile has {len(per_step)} steps, the model {len(sizes['steps'])}")
        for row, count in zip(sizes["steps"], per_step):
            row["instructions"] = int(count)
            row["instructions_per_mac"] = round(int(count) / row["macs"], 4) if row["macs"] else None
        for layer in sizes["layers"] or []:  # the weight layers: their steps' instructions and MACs
            mine = [row for row in sizes["steps"] if row["layer"] == layer["name"]]
            layer["instructions"] = sum(row["instructions"] for row in mine)
            layer["macs"] = sum(row["macs"] for row in mine)
    insns = run.instructions
    result.update({"instructions": int(max(insns)) if insns else None, "instructions_per_sample": insns,
                   "stack_bytes": run.stack_bytes, **sizes})
    return result


def _sample_shape(shape: list[int]) -> tuple[int, ...]:
    return tuple(shape[1:]) if shape and shape[0] == 1 else tuple(shape)


def report(path: str | Path, *, target: str | None = None, progress: Progress = _quiet) -> dict:
    """Sizes of a compiled output directory (built here with the test harness) or of an ELF file."""
    path = Path(path)
    if path.is_file():
        image = read_elf(path)
        flash, ram = model_sizes(image)
        return {"elf": str(path), "image_flash_bytes": image.flash, "image_ram_bytes": image.ram,
                "flash_bytes": flash, "ram_bytes": ram}
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise OptionError(f"{path} is neither an ELF file nor an output directory of 'weightless-mcu compile' (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    tgt = get_target(target or manifest["target"])
    with tempfile.TemporaryDirectory(prefix="wl-report-") as tmp:
        progress(f"building the firmware for {tgt.name}")
        elf = build_firmware(path, tgt, Path(tmp))
        sizes = size_report(read_elf(elf), manifest, inference_stack(elf.parent, manifest["run_function"]))
    return {"name": manifest["name"], "target": tgt.name, "board": None if tgt.is_host else tgt.board.machine, **sizes}


def init_config(model: str | Path, config: str | Path, *, input_shapes: dict[str, tuple[int, ...]] | None = None,
                overwrite: bool = False, constant_inputs: dict[str, tuple[float, ...]] | None = None) -> str:
    """Write a TOML compression config for the model with every default filled in and
    a table per layer with weights. Returns its text."""
    config = Path(config)
    if config.exists() and not overwrite:
        raise OptionError(f"{config} exists; remove it or pass --force to replace it")
    _, graph = load_model(Path(model), input_shapes, constant_inputs)
    run_passes(graph)
    layers = [(node.name, node.op, layout.positions) for node, _, layout in candidates(graph)]
    text = config_text(Path(model).name, layers)
    write_file(config, text)
    return text


def log_progress(msg: str) -> None:
    print(f"weightless-mcu: {msg}", file=sys.stderr, flush=True)


__all__ = ["Retraining", "compile_model", "verify", "report", "init_config", "load_inputs", "random_inputs"]
