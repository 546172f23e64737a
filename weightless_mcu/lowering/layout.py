"""Weight layouts the kernels walk."""
from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class WeightLayout:
    """Where each weight of an ONNX weight tensor sits in the order its kernel
    walks the weights: the order of the dense kernel's packed array, and the
    key order of a compressed encoding."""

    shape: tuple[int, ...]  # the ONNX tensor's shape
    groups: int  # independent row sets (Conv groups), packed one after another
    transposed: bool  # rows are the tensor's columns (MatMul's [K, N] weights)
    natural: bool  # walked in the tensor's own order (depthwise)
    row_axes: int = 1  # leading axes that index the rows (2 for a recurrent layer's W: [directions, gates, K])

    @property
    def positions(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_rows(self) -> int:
        return self.shape[1] if self.transposed else int(np.prod(self.shape[:self.row_axes]))

    @property
    def block_positions(self) -> int:
        """Positions of ROW_BLOCK output rows (channels): what the kernels decode at a time."""
        return ROW_BLOCK * (self.positions // max(1, self.n_rows))

    def _rows(self, w: np.ndarray) -> np.ndarray:
        return w.T if self.transposed else w.reshape(self.n_rows, -1)

    def walk(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, np.float32).reshape(self.shape)
        if self.natural:
            return w.reshape(-1).copy()
        rows = self._rows(w)
        per = rows.shape[0] // self.groups
        return np.concatenate([pack_rows(rows[g * per:(g + 1) * per]) for g in range(self.groups)])

    def unwalk(self, flat: np.ndarray) -> np.ndarray:
        flat = np.asarray(flat, np.float32)
        if self.natural:
            return flat.reshape(self.shape)
        n_rows = self.n_rows
        k = self.positions // n_rows
        per = n_rows // self.groups
        rows = np.concatenate([unpack_rows(flat[g * per * k:(g + 1) * per * k], per, k) for g in range(self.groups)])
        return rows.T.copy() if self.transposed else rows.reshape(self.shape)
