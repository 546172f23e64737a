"""Training and evaluation data: .npz files (x, y, optional x_val, y_val) or
MNIST-style IDX files (a directory, or the images file itself)."""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError


@dataclass
class Dataset:
    x: np.ndarray  # float32 [N, ...]
    y: np.ndarray | None  # int64 labels [N], or None (distillation)
    x_val: np.ndarray
    y_val: np.ndarray | None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise OptionError(f"{path}: cannot read it ({exc})") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise OptionError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise OptionError(f"{path}: truncated IDX file")
    return data.reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_idx_pair(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images, labels = _find(directory, f"{prefix}-images-idx3-ubyte"), _find(directory, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        raise OptionError(f"{directory}: no {prefix}-images-idx3-ubyte(.gz) and {prefix}-labels-idx1-ubyte(.gz) IDX files")
    x = _read_idx(images).astype(np.float32) / 255.0
    y = _read_idx(labels).astype(np.int64)
    if len(x) != len(y):
        raise OptionError(f"{directory}: {len(x)} images but {len(y)} labels")
    return x, y


def _npz(path: Path) -> dict:
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:
        raise OptionError(f"{path}: cannot read it as .npz ({type(exc).__name__})") from None


def load_training_data(path: str | Path, validation_fraction: float = 0.1, seed: int = 0) -> Dataset:
    path = Path(path)
    if path.is_dir():
        x, y = load_idx_pair(path, "train")
        x_val = y_val = None
    elif path.suffix == ".npz":
        arrays = _npz(path)
        if "x" not in arrays:
            raise OptionError(f"{path} has no array 'x' (it has: {', '.join(arrays) or 'none'})")
        x, y = arrays["x"].astype(np.float32), arrays.get("y")
        x_val, y_val = arrays.get("x_val"), arrays.get("y_val")
        if x_val is not None:
            x_val = x_val.astype(np.float32)
    else:
        raise OptionError(f"--train-data {path}: give an .npz file (x, y[, x_val, y_val]) or a directory of IDX files")
    if y is not None:
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise OptionError(f"{path}: {len(x)} samples in x but {len(y)} labels in y")
    if x_val is None:
        order = np.random.default_rng(seed).permutation(len(x))
        n_val = max(1, int(round(validation_fraction * len(x))))
        val, tr = order[:n_val], order[n_val:]
        x_val, y_val = x[val], (y[val] if y is not None else None)
        x, y = x[tr], (y[tr] if y is not None else None)
    elif y_val is not None:
        y_val = np.asarray(y_val).astype(np.int64).reshape(-1)
    if len(x) == 0:
        raise OptionError(f"{path}: no training samples")
    return Dataset(x, y, x_val, y_val)


def load_labelled(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation data: an .npz with x and y, or a directory with the t10k IDX files."""
    path = Path(path)
    if path.is_dir():
        return load_idx_pair(path, "test")
    arrays = _npz(path)
    if "x" not in arrays or "y" not in arrays:
        raise OptionError(f"--data {path} needs arrays 'x' and 'y' (it has: {', '.join(arrays) or 'none'})")
    return arrays["x"].astype(np.float32), np.asarray(arrays["y"]).astype(np.int64).reshape(-1)


def fit_to_input(x: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Samples reshaped to the model input (batch axis first), e.g. MNIST 28x28 -> [784] or [1, 28, 28]."""
    sample = tuple(shape[1:])
    if int(np.prod(x.shape[1:])) != int(np.prod(sample)):
        raise OptionError(f"{what}: samples of shape {x.shape[1:]} do not fit the model input {list(shape)}")
    return np.ascontiguousarray(x.reshape(len(x), *sample), np.float32)


def image_geometry(shape: tuple[int, ...], what: str) -> tuple[int, int, int]:
    """(channels, height, width) of an image input: [N, C, H, W], or [N, H*W] of a square
    single-channel image (MNIST flattened). Anything else is not an image to translate."""
    sample = tuple(int(d) for d in shape[1:])
    if len(sample) == 3:
        return sample
    if len(sample) == 1 and int(round(np.sqrt(sample[0]))) ** 2 == sample[0] and sample[0] > 1:
        side = int(round(np.sqrt(sample[0])))
        return 1, side, side
    raise OptionError(f"{what}: the model input {list(shape)} is not an image ([N, C, H, W], or [N, H*W] of a square "
                      f"image): it cannot be translated")


def translate(x: np.ndarray, geometry: tuple[int, int, int], max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each sample moved by its own random whole-pixel offset (dy, dx), each in
    [-max_shift, max_shift]; the pixels brought in repeat the border (a constant
    background stays constant)."""
    c, h, w = geometry
    n = len(x)
    img = x.reshape(n, c, h, w)
    s = max_shift
    padded = np.pad(img, ((0, 0), (0, 0), (s, s), (s, s)), mode="edge")
    dy, dx = rng.integers(-s, s + 1, size=(2, n))
    rows = (s - dy)[:, None] + np.arange(h)  # out[i, :, r, q] = img[i, :, r - dy_i, q - dx_i]
    cols = (s - dx)[:, None] + np.arange(w)
    out = padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows[:, None, :, None],
                 cols[:, None, None, :]]
    return np.ascontiguousarray(out.reshape(x.shape), x.dtype)
