"""Weight layouts the kernels walk."""
from __future__ import annotations

import numpy as np

# Output rows computed together by the fc, pointwise and conv kernels. Must
# match WL_ROW_BLOCK in firmware/include/wl_kernels.h.
ROW_BLOCK = 4


def pack_rows(w: np.ndarray, block: int = ROW_BLOCK) -> np.ndarray:
    """[rows, K] -> flat float32: full blocks of `block` rows interleaved as
    [K][block] (one load walks `block` outputs at once), then the remaining
    rows one after another as [K]."""
    w = np.asarray(w, np.float32)
    rows, k = w.shape
    full = rows - rows % block
    head = w[:full].reshape(full // block, block, k).transpose(0, 2, 1).reshape(-1)
    return np.ascontiguousarray(np.concatenate([head, w[full:].reshape(-1)]))


def unpack_rows(flat: np.ndarray, rows: int, k: int, block: int = ROW_BLOCK) -> np.ndarray:
    """Inverse of `pack_rows`."""
    full = rows - rows % block
    head = flat[: full * k].reshape(full // block, k, block).transpose(0, 2, 1).reshape(full, k)
    return np.concatenate([head, flat[full * k :].reshape(rows - full, k)])
