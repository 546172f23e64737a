"""Forward and backward of the supported ops in numpy, batched on axis 0.

Each op is `forward(node, inputs) -> (output, cache)` and
`backward(node, cache, dout) -> [d input for each input]` (None where no
gradient is needed). Convolution and pooling use strided window views
(im2col) and scatter the gradient back one kernel tap at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..op_semantics import ACT, spatial_pads


@dataclass(frozen=True)
class Window:
    """A 2-D sliding window over [N, C, H, W] (1-D ops use H = 1)."""

    k_h: int
    k_w: int
    stride_h: int
    stride_w: int
    dil_h: int
    dil_w: int
    pad: tuple[int, int, int, int]  # top, left, bottom, right
    out_h: int
    out_w: int


def _window(node: Node, graph: Graph, kernel: tuple[int, ...]) -> Window:
    xs, ys = graph.tensors[node.inputs[0]].shape, graph.tensors[node.outputs[0]].shape
    nd = len(xs) - 2
    strides = list(node.attrs.get("strides", [1] * nd))
    dils = list(node.attrs.get("dilations", [1] * nd))
    begins = spatial_pads(node, xs[2:], ys[2:], list(kernel), strides, dils)
    ends = [(o - 1) * s + (k - 1) * d + 1 - i - b for i, o, k, s, d, b in zip(xs[2:], ys[2:], kernel, strides, dils, begins)]
    if nd == 1:
        kernel, strides, dils, begins, ends = (1, *kernel), [1] + strides, [1] + dils, [0] + begins, [0] + ends
        ys = (*ys[:2], 1, ys[2])
    return Window(kernel[0], kernel[1], strides[0], strides[1], dils[0], dils[1],
                  (begins[0], begins[1], max(0, ends[0]), max(0, ends[1])), ys[2], ys[3])


def _as4d(x: np.ndarray) -> np.ndarray:
    return x[:, :, None, :] if x.ndim == 3 else x


def _windows(xp: np.ndarray, w: Window) -> np.ndarray:
    """[N, C, kh, kw, OH, OW] view of a padded input."""
    n, c, _, _ = xp.shape
    s = xp.strides
    return as_strided(xp, (n, c, w.k_h, w.k_w, w.out_h, w.out_w),
                      (s[0], s[1], s[2] * w.dil_h, s[3] * w.dil_w, s[2] * w.stride_h, s[3] * w.stride_w), writeable=False)


def _pad(x: np.ndarray, w: Window, value: float = 0.0) -> np.ndarray:
    t, l, b, r = w.pad
    if not any(w.pad):
        return x
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _scatter_windows(dwin: np.ndarray, shape: tuple[int, ...], w: Window) -> np.ndarray:
    """Sum [N, C, kh, kw, OH, OW] window gradients back into the input [N, C, H, W]."""
    n, c, h, wd = shape
    t, l, b, r = w.pad
    dxp = np.zeros((n, c, h + t + b, wd + l + r), dwin.dtype)
    for ky in range(w.k_h):
        y0 = ky * w.dil_h
        for kx in range(w.k_w):
            x0 = kx * w.dil_w
            dxp[:, :, y0:y0 + w.stride_h * (w.out_h - 1) + 1:w.stride_h,
                x0:x0 + w.stride_w * (w.out_w - 1) + 1:w.stride_w] += dwin[:, :, ky, kx]
    return dxp[:, :, t:t + h, l:l + wd]


# --- activations (also fused into producers through ACT) -----------------------

def apply_act(node: Node, y: np.ndarray):
    act = node.attrs.get(ACT)
    if act is None:
        return y, None
    lo, hi = act
    out = np.clip(y, lo, hi)
    return out, (out > lo) & (out < hi)


def act_backward(mask, dy: np.ndarray) -> np.ndarray:
    return dy if mask is None else dy * mask


# --- ops -------------------------------------------------------------------------

def conv_forward(node: Node, graph: Graph, x: np.ndarray, w: np.ndarray, b: np.ndarray | None):
    one_d = x.ndim == 3
    x4 = _as4d(x)
    w4 = w[:, :, None, :] if one_d else w
    win = _window(node, graph, tuple(w.shape[2:]))
    group = int(node.attrs.get("group", 1))
    n, c = x4.shape[:2]
    m, cg = w4.shape[:2]
    cols = _windows(_pad(x4, win), win)  # N, C, kh, kw, OH, OW
    p = win.out_h * win.out_w
    cols_g = cols.reshape(n, group, cg, win.k_h, win.k_w, p).transpose(1, 2, 3, 4, 0, 5).reshape(group, cg * win.k_h * win.k_w, n * p)
    w_g = w4.reshape(group, m // group, cg * win.k_h * win.k_w)
    y = np.matmul(w_g, cols_g).reshape(m, n, win.out_h, win.out_w).transpose(1, 0, 2, 3)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    y = np.ascontiguousarray(y, x.dtype)
    if one_d:
        y = y[:, :, 0, :]
    return y, (cols_g, w_g, x4.shape, win, group, one_d, w.shape)


def conv_backward(cache, dy: np.ndarray, need_dx: bool = True):
    cols_g, w_g, xshape, win, group, one_d, wshape = cache
    dy4 = dy[:, :, None, :] if one_d else dy
    n, m = dy4.shape[:2]
    p = win.out_h * win.out_w
    dy_g = dy4.transpose(1, 0, 2, 3).reshape(group, m // group, n * p)
    dw = np.matmul(dy_g, cols_g.transpose(0, 2, 1)).reshape(wshape)
    db = dy4.sum(axis=(0, 2, 3))
    if not need_dx:  # e.g. the model's input
        return None, dw.astype(dy.dtype), db.astype(dy.dtype)
    dcols = np.matmul(w_g.transpose(0, 2, 1), dy_g)  # G, cg*kh*kw, N*P
    cg = xshape[1] // group
    dwin = dcols.reshape(group, cg, win.k_h, win.k_w, n, win.out_h, win.out_w).transpose(4, 0, 1, 2, 3, 5, 6)
    dwin = dwin.reshape(n, group * cg, win.k_h, win.k_w, win.out_h, win.out_w)
    dx = _scatter_windows(dwin, xshape, win)
    if one_d:
        dx = dx[:, :, 0, :]
    return dx, dw.astype(dy.dtype), db.astype(dy.dtype)


def pool_forward(node: Node, graph: Graph, x: np.ndarray):
    one_d = x.ndim == 3
    x4 = _as4d(x)
    if node.op.startswith("Global"):
        kernel = tuple(x.shape[2:])
        win = _window(Node(node.op, node.name, node.inputs, node.outputs, {}), graph, kernel)
    else:
        win = _window(node, graph, tuple(node.attrs["kernel_shape"]))
    is_max = "Max" in node.op
    n, c, h, w = x4.shape
    if (is_max and win.k_h == win.stride_h and win.k_w == win.stride_w and win.dil_h == win.dil_w == 1
            and not any(win.pad) and h == win.k_h * win.out_h and w == win.k_w * win.out_w):
        # Non-overlapping tiles: a reshape instead of a window view.
        taps = [x4[:, :, ky::win.k_h, kx::win.k_w] for ky in range(win.k_h) for kx in range(win.k_w)]
        y = taps[0]
        for t in taps[1:]:
            y = np.maximum(y, t)
        taken = np.zeros(y.shape, bool)
        first = []  # the first maximum of each tile takes the gradient
        for t in taps:
            sel = (t == y) & ~taken
            taken |= sel
            first.append(sel)
        return (y[:, :, 0, :] if one_d else y), ("tiles", first, x4.shape, win, one_d)
    cols = _windows(_pad(x4, win, -np.inf if is_max else 0.0), win)
    if is_max:
        flat = cols.reshape(*cols.shape[:2], win.k_h * win.k_w, win.out_h, win.out_w)
        arg = flat.argmax(axis=2)
        y = np.take_along_axis(flat, arg[:, :, None], axis=2)[:, :, 0]
        cache = ("max", arg, x4.shape, win, one_d)
    else:
        if node.attrs.get("count_include_pad", 0):
            ones = np.full((win.out_h, win.out_w), float(win.k_h * win.k_w), np.float32)
        else:  # the window positions that fall inside the input
            ones = _windows(_pad(np.ones((1, 1) + x4.shape[2:], np.float32), win), win)[0, 0].sum(axis=(0, 1))
        y = cols.sum(axis=(2, 3)) / ones
        cache = ("avg", ones, x4.shape, win, one_d)
    y = y.astype(x.dtype)
    return (y[:, :, 0, :] if one_d else y), cache


def pool_backward(cache, dy: np.ndarray):
    kind, aux, xshape, win, one_d = cache
    dy4 = dy[:, :, None, :] if one_d else dy
    taps = win.k_h * win.k_w
    if kind == "tiles":
        dx = np.empty(xshape, dy.dtype)
        for i, sel in enumerate(aux):
            ky, kx = divmod(i, win.k_w)
            dx[:, :, ky::win.k_h, kx::win.k_w] = sel * dy4
        return dx[:, :, 0, :] if one_d else dx
    if kind == "max":
        sel = aux[:, :, None] == np.arange(taps).reshape(1, 1, taps, 1, 1)
        dwin = (sel * dy4[:, :, None]).reshape(*dy4.shape[:2], win.k_h, win.k_w, win.out_h, win.out_w)
    else:
        g = (dy4 / aux)[:, :, None, None]
        dwin = np.broadcast_to(g, (*dy4.shape[:2], win.k_h, win.k_w, win.out_h, win.out_w))
    dx = _scatter_windows(dwin, xshape, win)
    return dx[:, :, 0, :] if one_d else dx


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, d in enumerate(shape):
        if d == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def check_trainable(node: Node) -> None:
    if node.op not in TRAINABLE_OPS:
        raise UnsupportedOpError(f"{node.describe()}: retraining does not support op {node.op}; "
                                 f"it supports {', '.join(sorted(TRAINABLE_OPS))}")


# Elementwise ops of one tensor (Pow: by a constant scalar exponent).
UNARY_TRAINABLE = ("Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Abs", "Neg", "Sqrt", "Exp",
                   "Log", "Reciprocal", "Erf", "Gelu", "Pow")
TRAINABLE_OPS = {"Conv", "Gemm", "MatMul", *UNARY_TRAINABLE,
                 "Add", "Sub", "Mul", "Div", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Reshape",
                 "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Softmax", "LogSoftmax", "BatchNormalization",
                 "ReduceMean", "ReduceSum", "Identity"}
