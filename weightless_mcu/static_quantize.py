"""--quantize int8: a float32 model quantized before it is compiled, by onnxruntime's
quantize_static (the library made for this): QDQ format, int8 activations, int8 weights per
output channel, int32 biases, as the int8 pass (quantized.py) takes them.

Calibration data has the layout of --inputs (an .npz, one array per model input, first axis =
samples). Without it the model is calibrated on RANDOM_SAMPLES standard normal inputs: enough
for speed and size, and a warning says the accuracy is unknown. Models below opset 13 arrive
upgraded (frontend.load_model): per-channel DequantizeLinear needs it.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx

from .errors import OptionError, UnsupportedOpError

QUANTIZE_CHOICES = ("int8",)
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
RANDOM_SAMPLES = 16


def _calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if name not in methods:
        raise OptionError(f"--calibration-method must be one of {', '.join(CALIBRATION_METHODS)}, not '{name}'")
    return methods[name]


@contextlib.contextmanager
def quantized_model(model: Path, quantize: str | None, calibration_data: Path | None, method: str,
                    inputs: InputOptions | None,
                    progress: Callable[[str], None], overrides: dict | None = None,
                    shown: Path | None = None) -> Iterator[tuple[Path, dict | None, onnx.ModelProto | None]]:
    """Yields (the model to compile, what was done, the float model as loaded): the model itself
    when quantize is None (and None, None), else its int8 QDQ version in a temporary directory
    that lives as long as the context. overrides: quantize_static's TensorQuantOverrides (one
    scale per tensor for the compressed weights, say). shown: the user's model, when model is
    one made from it (the decoded model of a compressed one)."""
    if quantize is None:
        if calibration_data is not None:
            raise OptionError("--calibration-data needs --quantize int8")
        yield model, None, None
        return
    if quantize not in QUANTIZE_CHOICES:
        raise OptionError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, not '{quantize}'")
    calibrate_method = _calibration_method(method)
    from .api import load_inputs, random_inputs
    from .frontend import InputOptions, load_model

    given = inputs or InputOptions()
    onnx_model, graph = load_model(model, given.shapes, given.constants)  # upgraded to opset 13, as per-channel int8 needs
    if any(n.op in ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul") for n in graph.nodes):
        raise OptionError(f"{model} is quantized already; compile it without --quantize")
    inputs = [{"name": t, "shape": list(graph.tensors[t].shape)} for t in graph.inputs]
    if calibration_data is not None:
        arrays = load_inputs(calibration_data, inputs, flag="--calibration-data")
        how = f"{arrays[0].shape[0]} sample(s) of {calibration_data}"
    else:
        arrays = random_inputs(inputs, RANDOM_SAMPLES)
        how = f"{RANDOM_SAMPLES} random standard normal inputs"
        progress(f"warning: no --calibration-data: calibrating on {how}; the int8 model's accuracy is unknown")
    with tempfile.TemporaryDirectory(prefix="wl-quantize-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / f"{model.stem}_int8.onnx"
        onnx.save(onnx_model, src)
        progress(f"quantizing to int8 (onnxruntime quantize_static, {method} calibration on {how})")
        _quantize(src, dst, inputs, arrays, calibrate_method, overrides or {})
        yield dst, {"to": quantize, "calibration": str(calibration_data) if calibration_data else "random",
                    "calibration_samples": int(arrays[0].shape[0]), "calibration_method": method,
                    "float_model": str(shown or model)}, onnx_model


def _quantize(src: Path, dst: Path, inputs: list[dict], arrays: list[np.ndarray], calibrate_method,
              overrides: dict) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(range(arrays[0].shape[0]))

        def get_next(self):
            s = next(self._it, None)
            if s is None:
                return None
            return {inp["name"]: arrays[k][s].reshape(inp["shape"]) for k, inp in enumerate(inputs)}

    import logging
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the model, printed on every run
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the entropy and percentile calibrators print
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=calibrate_method,
                            extra_options={"TensorQuantOverrides": overrides} if overrides else None)
    except Exception as exc:  # onnxruntime's own errors: name them, no traceback
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedOpError(f"onnxruntime could not quantize the model: {first}") from None
    finally:
        root.setLevel(level)
