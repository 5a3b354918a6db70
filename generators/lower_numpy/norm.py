"""numpy reference of the norm group: the textbook formulas in float64, cast back to the input dtype."""

from __future__ import annotations

import numpy as np

from generators.lower_numpy.table import lowers


def _affine(params, a):
    it = iter(params)
    w = next(it) if a["weight"] else None
    b = next(it) if a["bias"] else None
    return w, b


def _f64(p):
    return None if p is None else p.astype(np.float64)


def _channel(p, rank: int):
    return None if p is None else _f64(p).reshape([1, -1] + [1] * (rank - 2))


def _finish(y, w, b, dtype):
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y.astype(dtype)


def _standardize(x, axes, eps):
    """(x - mean) / sqrt(population variance + eps) over `axes`, in float64."""
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@lowers("BatchNorm")
def _batch_norm(xs, a):
    x, r = xs[0], xs[0].ndim
    w, b = _affine(xs[3:], a)
    y = (x.astype(np.float64) - _channel(xs[1], r)) / np.sqrt(_channel(xs[2], r) + a["eps"])
    return _finish(y, _channel(w, r), _channel(b, r), x.dtype)


@lowers("LayerNorm")
def _layer_norm(xs, a):
    x, r = xs[0], xs[0].ndim
    w, b = _affine(xs[1:], a)
    y = _standardize(x.astype(np.float64), tuple(range(r - a["num_dims"], r)), a["eps"])
    return _finish(y, _f64(w), _f64(b), x.dtype)


@lowers("RMSNorm")
def _rms_norm(xs, a):
    x, r = xs[0], xs[0].ndim
    w, _ = _affine(xs[1:], a)
    eps = a["eps"] if a["eps"] is not None else float(np.finfo(x.dtype).eps)
    x64 = x.astype(np.float64)
    ms = (x64 * x64).mean(axis=tuple(range(r - a["num_dims"], r)), keepdims=True)
    return _finish(x64 / np.sqrt(ms + eps), _f64(w), None, x.dtype)


@lowers("GroupNorm")
def _group_norm(xs, a):
    x, r, g = xs[0], xs[0].ndim, a["num_groups"]
    w, b = _affine(xs[1:], a)
    n, c = x.shape[:2]
    grouped = x.astype(np.float64).reshape((n, g, c // g) + x.shape[2:])
    y = _standardize(grouped, tuple(range(2, r + 1)), a["eps"]).reshape(x.shape)
    return _finish(y, _channel(w, r), _channel(b, r), x.dtype)


@lowers("InstanceNorm")
def _instance_norm(xs, a):
    x, r = xs[0], xs[0].ndim
    w, b = _affine(xs[1:], a)
    y = _standardize(x.astype(np.float64), tuple(range(2, r)), a["eps"])
    return _finish(y, _channel(w, r), _channel(b, r), x.dtype)
