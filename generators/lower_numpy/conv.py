"""numpy reference of the conv group, written from the definitions (float64 inside, input dtype out).

Convolutions sum kernel-offset slices of the padded input; pools reduce one
spatial axis at a time over explicit index windows (max and sum over a box
are separable), which keeps torch's window rules visible as plain arithmetic.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from generators.lower_numpy.table import lowers

_NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _vals(a: dict[str, Any], key: str) -> list[int]:
    return [int(a[f"{key}{i}"]) for i in range(a["rank"])]


def _to_f64(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) if x.dtype.kind == "f" else x


def _window_count(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    o = -(-span // s) + 1
    return o - 1 if (o - 1) * s >= size + p else o


def _axis_reduce(x: np.ndarray, axis: int, windows: list[np.ndarray], fn) -> np.ndarray:
    """Reduce `x` along `axis` over each index window; the results stack along that axis."""
    return np.stack([fn(np.take(x, w, axis=axis), axis=axis) for w in windows], axis=axis)


def _conv_core(x: np.ndarray, w: np.ndarray, strides: list[int], dils: list[int], groups: int) -> np.ndarray:
    """Unpadded grouped cross-correlation, x (N, C_in, *L), w (C_out, C_in/g, *k), float64."""
    r = x.ndim - 2
    ks = w.shape[2:]
    outs = [(x.shape[2 + i] - dils[i] * (ks[i] - 1) - 1) // strides[i] + 1 for i in range(r)]
    n, cin = x.shape[:2]
    cout = w.shape[0]
    wg = w.reshape((groups, cout // groups, cin // groups) + tuple(ks))
    y = np.zeros((n, groups, cout // groups) + tuple(outs))
    for t in itertools.product(*(range(k) for k in ks)):
        sl = tuple(slice(t[i] * dils[i], t[i] * dils[i] + (outs[i] - 1) * strides[i] + 1, strides[i])
                   for i in range(r))
        xs = x[(slice(None), slice(None)) + sl].reshape((n, groups, cin // groups) + tuple(outs))
        y += np.einsum("ngc...,goc->ngo...", xs, wg[(Ellipsis,) + t])
    return y.reshape((n, cout) + tuple(outs))


def _add_bias(y: np.ndarray, xs: list[np.ndarray]) -> np.ndarray:
    if len(xs) > 2:
        y = y + xs[2].astype(np.float64).reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


@lowers("Conv")
def _conv(xs, a):
    x, w = _to_f64(xs[0]), _to_f64(xs[1])
    r = a["rank"]
    ks, dils = list(w.shape[2:]), _vals(a, "dilation")
    if a["padding"] == "same":  # total pad d*(k-1), the odd extra unit on the right (torch)
        pads = [(dils[i] * (ks[i] - 1) // 2, dils[i] * (ks[i] - 1) - dils[i] * (ks[i] - 1) // 2) for i in range(r)]
    else:
        pads = [(p, p) for p in _vals(a, "pad")]
    x = np.pad(x, [(0, 0), (0, 0)] + pads, mode=_NP_PAD_MODES[a["padding_mode"]])
    y = _conv_core(x, w, _vals(a, "stride"), dils, int(a["groups"]))
    return _add_bias(y, xs).astype(xs[0].dtype)


@lowers("ConvTranspose")
def _conv_t(xs, a):
    x, w = _to_f64(xs[0]), _to_f64(xs[1])
    r, g = a["rank"], int(a["groups"])
    strides, pads, dils, ops = _vals(a, "stride"), _vals(a, "pad"), _vals(a, "dilation"), _vals(a, "output_padding")
    n, cin = x.shape[:2]
    ins, ks, opg = x.shape[2:], w.shape[2:], w.shape[1]
    full = [(ins[i] - 1) * strides[i] + dils[i] * (ks[i] - 1) + 1 + ops[i] for i in range(r)]
    y = np.zeros((n, g, opg) + tuple(full))
    xg = x.reshape((n, g, cin // g) + tuple(ins))
    wg = w.reshape((g, cin // g, opg) + tuple(ks))
    # y[i*s + t*d] += x[i] * w[t]: each kernel offset scatters a strided copy of x.
    for t in itertools.product(*(range(k) for k in ks)):
        sl = tuple(slice(t[i] * dils[i], t[i] * dils[i] + (ins[i] - 1) * strides[i] + 1, strides[i])
                   for i in range(r))
        y[(slice(None),) * 3 + sl] += np.einsum("ngc...,gco->ngo...", xg, wg[(Ellipsis,) + t])
    crop = tuple(slice(pads[i], full[i] - pads[i]) for i in range(r))
    y = y.reshape((n, g * opg) + tuple(full))[(slice(None), slice(None)) + crop]
    return _add_bias(y, xs).astype(xs[0].dtype)


def _pool_windows(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> list[tuple[np.ndarray, int]]:
    """Per output index: the in-range input indices of its window, and torch's padded pool size."""
    out = []
    for o in range(_window_count(size, k, s, p, d, ceil_mode)):
        start = o * s - p
        taps = start + d * np.arange(k)
        end = min(start + k, size + p)  # avg-pool divisor (d == 1): window clipped to the padded extent
        out.append((taps[(taps >= 0) & (taps < size)], end - start))
    return out


@lowers("MaxPool")
def _max_pool(xs, a):
    y = _to_f64(xs[0])
    for i, (k, s, p, d) in enumerate(zip(_vals(a, "kernel"), _vals(a, "stride"), _vals(a, "pad"),
                                         _vals(a, "dilation"), strict=True)):
        wins = _pool_windows(y.shape[2 + i], k, s, p, d, bool(a["ceil_mode"]))
        y = _axis_reduce(y, 2 + i, [w for w, _ in wins], np.max)
    return y.astype(xs[0].dtype)


@lowers("AvgPool")
def _avg_pool(xs, a):
    y = _to_f64(xs[0])
    div = np.ones(())
    for i, (k, s, p) in enumerate(zip(_vals(a, "kernel"), _vals(a, "stride"), _vals(a, "pad"), strict=True)):
        wins = _pool_windows(y.shape[2 + i], k, s, p, 1, bool(a["ceil_mode"]))
        y = _axis_reduce(y, 2 + i, [w for w, _ in wins], np.sum)
        sizes = np.array([n if a["count_include_pad"] else len(w) for w, n in wins], dtype=np.float64)
        div = np.multiply.outer(div, sizes)
    if a.get("divisor_override") is not None:
        div = np.full(div.shape, float(a["divisor_override"]))
    return (y / div).astype(xs[0].dtype)


def _adaptive_windows(size: int, n: int) -> list[np.ndarray]:
    return [np.arange((i * size) // n, -(-((i + 1) * size) // n)) for i in range(n)]


@lowers("AdaptiveAvgPool")
def _adaptive_avg(xs, a):
    y = _to_f64(xs[0])
    for i, n in enumerate(_vals(a, "out")):
        y = _axis_reduce(y, 2 + i, _adaptive_windows(y.shape[2 + i], n), np.mean)
    return y.astype(xs[0].dtype)


@lowers("AdaptiveMaxPool")
def _adaptive_max(xs, a):
    y = _to_f64(xs[0])
    for i, n in enumerate(_vals(a, "out")):
        y = _axis_reduce(y, 2 + i, _adaptive_windows(y.shape[2 + i], n), np.max)
    return y.astype(xs[0].dtype)
