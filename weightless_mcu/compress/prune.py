"""Magnitude pruning and 1-D k-means weight sharing ("binning": the weights
stay weights, only their values change; encoding comes after)."""
from __future__ import annotations

import numpy as np

from ..errors import OptionError


def magnitude_masks(layers: list[np.ndarray], density: float | list[float], scope: str = "layer") -> list[np.ndarray]:
    """Keep masks: the largest |w| of each layer (scope 'layer', density per
    layer) or of all layers together (scope 'global', one density). Ties go
    to the earlier position, so masks are deterministic."""
    if scope not in ("layer", "global"):
        raise OptionError(f"pruning scope must be 'layer' or 'global', not '{scope}'")
    densities = density if isinstance(density, list) else [density] * len(layers)
    for d in densities:
        if not 0.0 < d <= 1.0:
            raise OptionError(f"density must be in (0, 1], not {d}")
    if scope == "global":
        if len(set(densities)) != 1:
            raise OptionError("global pruning takes one density for all layers")
        flat = np.concatenate([np.abs(w).reshape(-1) for w in layers]) if layers else np.zeros(0)
        keep = _top_mask(flat, densities[0])
        out, start = [], 0
        for w in layers:
            out.append(keep[start:start + w.size].reshape(w.shape))
            start += w.size
        return out
    return [_top_mask(np.abs(w).reshape(-1), d).reshape(w.shape) for w, d in zip(layers, densities)]


def _top_mask(mag: np.ndarray, density: float) -> np.ndarray:
    """The n_keep largest magnitudes; among equal ones at the threshold, the earliest positions."""
    n_keep = int(np.ceil(density * mag.size - 1e-9))
    if n_keep <= 0:
        return np.zeros(mag.size, bool)
    if n_keep >= mag.size:
        return np.ones(mag.size, bool)
    threshold = np.partition(mag, mag.size - n_keep)[mag.size - n_keep]  # linear time
    keep = mag > threshold
    ties = np.flatnonzero(mag == threshold)
    keep[ties[: n_keep - int(keep.sum())]] = True
    return keep


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Cluster values into k shared values. Returns (codebook float32 [k'] in
    ascending order, index of each value in 0..k'-1); k' = min(k, distinct
    values). Deterministic: quantile initialisation, Lloyd iterations on the
    sorted values with the boundaries found by binary search."""
    values = np.asarray(values, np.float64).reshape(-1)
    if k < 1:
        raise OptionError(f"the number of clusters must be at least 1, not {k}")
    if values.size < k:
        raise OptionError(f"{k} clusters are more than the {values.size} kept weights")
    srt = np.sort(values)
    distinct = np.unique(srt)
    if distinct.size <= k:
        centers = distinct
    else:
        centers = np.unique(np.quantile(srt, (np.arange(k) + 0.5) / k))
        if centers.size < k:  # heavy ties: spread the rest over the distinct values
            extra = np.setdiff1d(distinct, centers)
            centers = np.sort(np.concatenate([centers, extra[np.linspace(0, extra.size - 1, k - centers.size).astype(int)]]))
        # Lloyd iterations on the sorted values: each cluster is a run, found by
        # binary search of the midpoints, its sum a difference of prefix sums.
        prefix = np.concatenate([[0.0], np.cumsum(srt)])
        for _ in range(iterations):
            cuts = np.concatenate([[0], np.searchsorted(srt, (centers[:-1] + centers[1:]) / 2), [srt.size]])
            counts = np.diff(cuts)
            sums = prefix[cuts[1:]] - prefix[cuts[:-1]]
            new = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centers))
            if np.array_equal(new, centers):
                break
            centers = new
    codebook = centers.astype(np.float32)
    # Assign in float32, as the weights will be used: the nearest centre.
    idx = np.searchsorted((codebook[:-1].astype(np.float64) + codebook[1:]) / 2, values)
    return codebook, idx.astype(np.int64)
