"""How large a tensor or a compile-time constant may be, and how many elements the
ops that make arrays from constant operands (ConstantOfShape, Range, Expand, Tile)
would produce, so that absurd sizes are refused before anything is allocated."""
from __future__ import annotations

import numpy as np

# Kernels index tensors with int32; no microcontroller holds a tensor near that size anyway.
MAX_TENSOR_ELEMENTS = (1 << 31) - 1
# A constant folded at compile time lands in flash: far beyond any part's flash is an error, not a wait.
MAX_FOLDED_ELEMENTS = 1 << 24


def made_elements(op: str, operands: list, data_shape: tuple[int, ...] | None = None) -> int | None:
    """Elements op would make from its constant operands (None where unknown);
    data_shape is the shape of the first input of Expand and Tile."""
    try:
        if op == "ConstantOfShape" and operands and operands[0] is not None:
            return int(np.prod([int(v) for v in np.asarray(operands[0]).reshape(-1)], dtype=object))
        if op == "Range" and len(operands) == 3 and all(v is not None for v in operands):
            start, limit, delta = (float(np.asarray(v).reshape(-1)[0]) for v in operands)
            return max(0, int(np.ceil((limit - start) / delta))) if delta else None
        if op in ("Expand", "Tile") and len(operands) == 2 and operands[1] is not None and data_shape is not None:
            a, b = [int(v) for v in np.asarray(operands[1]).reshape(-1)], list(data_shape)
            if op == "Tile":
                return int(np.prod([x * y for x, y in zip(b, a)], dtype=object))
            width = max(len(a), len(b))
            a, b = [1] * (width - len(a)) + a, [1] * (width - len(b)) + b
            return int(np.prod([max(x, y) for x, y in zip(a, b)], dtype=object))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return None
