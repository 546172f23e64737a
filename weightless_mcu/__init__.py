"""weightless-mcu: ONNX models compiled to C for Cortex-M microcontrollers,
verified under QEMU against onnxruntime."""

__version__ = "0.1.0"

from .api import compile_model, report, verify  # noqa: E402

__all__ = ["__version__", "compile_model", "report", "verify"]
