"""Typed errors. Each carries one sentence that names what is wrong; the command
line prints it alone (no traceback) and exits with the error's status."""


class WeightlessError(Exception):
    """Base of every error this package raises on purpose."""

    exit_status = 1


class ModelLoadError(WeightlessError):
    """The file is not a readable, valid ONNX model."""

    exit_status = 2


class UnsupportedOpError(WeightlessError):
    """A node uses an op, or an attribute value, that the compiler does not support."""

    exit_status = 3


class FoldError(WeightlessError):
    """A node whose inputs are all constant could not be evaluated at compile time.
    For the command line it is one more model we cannot compile (status 3); the
    conformance run counts it as a failure, not a refusal, since the ops it folds
    are meant to work."""

    exit_status = 3


class ShapeError(WeightlessError):
    """A shape is symbolic, missing or inconsistent."""

    exit_status = 3


class TargetError(WeightlessError):
    """An unknown target, or a model that does not fit the target's memory."""

    exit_status = 4


class FitError(TargetError):
    """The model's code, tables or RAM do not fit the target's memory."""


class ToolchainError(WeightlessError):
    """The C compiler, linker or emulator is missing or failed."""

    exit_status = 5


class RunError(WeightlessError):
    """The firmware faulted, hung or returned an error status."""

    exit_status = 6


class OptionError(WeightlessError):
    """A command-line or API option is out of range or inconsistent."""

    exit_status = 2
