"""numpy reference of the nn group, written from the definitions (torch's documented semantics).

Floats are computed in float64 and cast back. Interpolation is a per-axis weight matrix built
from torch's coordinate rules (nearest index arithmetic mimics torch's float32 math, since a
rounding step there changes which pixel is picked).
"""

from __future__ import annotations

import math

import numpy as np

from generators.lower_numpy.table import lowers


def _wide(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) if x.dtype.kind == "f" else x.astype(np.int64)


# -- Pad -----------------------------------------------------------------------------------------

@lowers("Pad")
def _pad(xs, a):
    x, k, mode = xs[0], a["k"], a["mode"]
    widths = [(0, 0)] * x.ndim
    for i in range(k):
        widths[x.ndim - 1 - i] = (a[f"pad{2 * i}"], a[f"pad{2 * i + 1}"])
    if mode == "constant":
        out_shape = tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, widths))
        out = np.full(out_shape, a["value"]).astype(x.dtype)
        src, dst = [], []
        for d, (lo, hi) in zip(x.shape, widths):
            # out[i] = x[i - lo] where 0 <= i - lo < d
            s0, s1 = max(0, -lo), min(d, d + hi)
            src.append(slice(s0, s1))
            dst.append(slice(s0 + lo, s1 + lo))
        out[tuple(dst)] = x[tuple(src)]
        return out
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    return np.pad(x, widths, mode=np_mode)


# -- Interpolate ---------------------------------------------------------------------------------

def _cubic(t: float) -> list[float]:
    """Keys cubic convolution weights (A = -0.75) for taps at -1, 0, 1, 2 around floor(src)."""
    A = -0.75

    def near(x):
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def aa_matrix(mode: str, n_in: int, n_out: int, align: bool | None, scale: float | None) -> np.ndarray:
    """Antialiased resampling (torch's antialias=True, after PIL): the filter is stretched by the
    downscale factor and each row renormalised; bicubic uses A = -0.5 here."""
    if align:
        sc = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        sc = 1.0 / scale if scale else n_in / n_out
    taps = 2 if mode == "bilinear" else 4
    support = taps / 2 * sc if sc >= 1.0 else taps / 2
    inv = 1.0 / sc if sc >= 1.0 else 1.0

    def filt(x: float) -> float:
        x = abs(x)
        if mode == "bilinear":
            return max(0.0, 1.0 - x)
        A = -0.5
        if x < 1:
            return ((A + 2) * x - (A + 3)) * x * x + 1
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A if x < 2 else 0.0

    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = sc * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n_in)
        row = np.array([filt((j - center + 0.5) * inv) for j in range(lo, hi)])
        w[i, lo:hi] = row / row.sum() if row.sum() != 0 else row
    return w


def interp_matrix(mode: str, n_in: int, n_out: int, align: bool | None, scale: float | None) -> np.ndarray:
    """(n_out, n_in) weights. `scale`: the user scale factor passed to the kernel, or None."""
    w = np.zeros((n_out, n_in))
    if mode in ("nearest", "nearest-exact"):
        sc = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
        for i in range(n_out):
            if mode == "nearest":
                if n_out == n_in:
                    j = i
                elif n_out == 2 * n_in:
                    j = i >> 1
                else:
                    j = int(np.floor(np.float32(i) * sc))
            else:
                j = int(np.floor(np.float32((i + 0.5) * np.float64(sc))))
            w[i, min(j, n_in - 1)] = 1.0
        return w
    if mode == "area":
        for i in range(n_out):
            s, e = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
            w[i, s:e] = 1.0 / (e - s)
        return w
    if align:
        sc = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        sc = 1.0 / scale if scale else n_in / n_out
    for i in range(n_out):
        src = sc * i if align else sc * (i + 0.5) - 0.5
        if mode == "bicubic":
            j = math.floor(src)
            for tap, wt in zip(range(j - 1, j + 3), _cubic(src - j)):
                w[i, min(max(tap, 0), n_in - 1)] += wt
        else:
            src = max(src, 0.0)
            j = min(math.floor(src), n_in - 1)
            lam = min(max(src - j, 0.0), 1.0)
            w[i, j] += 1.0 - lam
            w[i, min(j + 1, n_in - 1)] += lam
    return w


@lowers("Interpolate")
def _interpolate(xs, a):
    x = xs[0]
    y = x.astype(np.float64)
    s = x.ndim - 2
    for i in range(s):
        ax = 2 + i
        n_in = x.shape[ax]
        if a["scale"] is not None:
            p, q = a["scale"][i]
            n_out = (n_in * p) // q
            scale = None if a["recompute"] else p / q
        else:
            n_out, scale = a[f"size{i}"], None
        make = aa_matrix if a["antialias"] else interp_matrix
        w = make(a["mode"], n_in, n_out, a["align_corners"], scale)
        y = np.moveaxis(np.tensordot(w, y, axes=([1], [ax])), 0, ax)
    return y.astype(x.dtype)


# -- Linear / MatMul / Einsum --------------------------------------------------------------------

@lowers("Linear")
def _linear(xs, a):
    x, w = _wide(xs[0]), _wide(xs[1])
    y = x @ w.T
    if a["bias"]:
        y = y + _wide(xs[2])
    return y.astype(xs[0].dtype)


@lowers("MatMul")
def _matmul(xs, a):
    return np.asarray(np.matmul(_wide(xs[0]), _wide(xs[1]))).astype(xs[0].dtype)


@lowers("Einsum")
def _einsum(xs, a):
    lhs, _ = a["equation"].split("->")
    terms = lhs.split(",")
    size: dict[str, int] = {}
    letter_axes = []
    for t, x in zip(terms, xs):
        head, _, tail = t.partition("...")
        n_ell = x.ndim - len(head) - len(tail)
        axes = list(zip(head, range(len(head)))) + list(zip(tail, range(len(head) + n_ell, x.ndim)))
        letter_axes.append(axes)
        for ch, ax in axes:
            size[ch] = max(size.get(ch, 1), x.shape[ax])
    ops = []
    for x, axes in zip(xs, letter_axes):
        y = _wide(x)
        for ch, ax in axes:  # torch broadcasts a size-1 letter against the other operands
            if y.shape[ax] == 1 and size[ch] > 1:
                y = np.repeat(y, size[ch], axis=ax)
        ops.append(y)
    return np.asarray(np.einsum(a["equation"], *ops)).astype(xs[0].dtype)


# -- Softmax / attention -------------------------------------------------------------------------

def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    z = x - m
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


@lowers("Softmax")
def _softmax(xs, a):
    x = xs[0].astype(np.float64)
    y = np.exp(_log_softmax(x.reshape(x.shape or (1,)), a["axis"]))
    return y.reshape(x.shape).astype(xs[0].dtype)


@lowers("LogSoftmax")
def _logsoftmax(xs, a):
    x = xs[0].astype(np.float64)
    y = _log_softmax(x.reshape(x.shape or (1,)), a["axis"])
    return y.reshape(x.shape).astype(xs[0].dtype)


@lowers("ScaledDotProductAttention")
def _sdpa(xs, a):
    q, k, v = (t.astype(np.float64) for t in xs[:3])
    if a["gqa"]:
        g = q.shape[-3] // k.shape[-3]
        k, v = np.repeat(k, g, axis=-3), np.repeat(v, g, axis=-3)
    scale = a["scale"] if a["scale"] is not None else 1.0 / math.sqrt(q.shape[-1])
    s = (q @ np.swapaxes(k, -1, -2)) * scale
    if a["is_causal"]:
        keep = np.tril(np.ones((q.shape[-2], k.shape[-2]), dtype=bool))
        s = np.where(keep, s, -np.inf)
    if a["mask"] == "float":
        s = s + xs[3].astype(np.float64)
    p = np.exp(_log_softmax(s, -1))
    return (p @ v).astype(xs[0].dtype)
