"""numpy reference of the reduce group, from the definitions: floats in float64, ints in int64."""

from __future__ import annotations

import numpy as np

from generators.lower_numpy.table import lowers


def _axes(x: np.ndarray, axes: list[int] | None) -> tuple[int, ...]:
    return tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)


def _wide(x: np.ndarray) -> np.ndarray:
    """float64 for floats, int64 for ints and bools (torch's integer accumulation dtype)."""
    return x.astype(np.float64) if x.dtype.kind == "f" else x.astype(np.int64)


def _float_out(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Back to the input dtype for floats; int64 otherwise (sum/prod/cumsum promotion)."""
    return np.asarray(y).astype(x.dtype if x.dtype.kind == "f" else np.int64)


@lowers("ReduceSum")
def _sum(xs, a):
    x = xs[0]
    return _float_out(x, np.sum(_wide(x), axis=_axes(x, a["axes"]), keepdims=a["keepdims"]))


@lowers("ReduceProd")
def _prod(xs, a):
    x = xs[0]
    return _float_out(x, np.prod(_wide(x), axis=_axes(x, a["axes"]), keepdims=a["keepdims"]))


@lowers("ReduceMean")
def _mean(xs, a):
    x = xs[0]
    y = np.mean(x.astype(np.float64), axis=_axes(x, a["axes"]), keepdims=a["keepdims"])
    return np.asarray(y).astype(x.dtype)


@lowers("ReduceMax")
def _max(xs, a):
    x = xs[0]
    return np.asarray(np.max(x, axis=_axes(x, a["axes"]), keepdims=a["keepdims"])).astype(x.dtype)


@lowers("ReduceMin")
def _min(xs, a):
    x = xs[0]
    return np.asarray(np.min(x, axis=_axes(x, a["axes"]), keepdims=a["keepdims"])).astype(x.dtype)


@lowers("ReduceLogSumExp")
def _lse(xs, a):
    x = xs[0]
    ax = _axes(x, a["axes"])
    x64 = x.astype(np.float64)
    m = np.max(x64, axis=ax, keepdims=True)
    y = m + np.log(np.sum(np.exp(x64 - m), axis=ax, keepdims=True))
    if not a["keepdims"]:
        y = np.squeeze(y, axis=ax)
    return np.asarray(y).astype(x.dtype)


@lowers("ReduceL2")
def _l2(xs, a):
    x = xs[0]
    x64 = x.astype(np.float64)
    y = np.sqrt(np.sum(x64 * x64, axis=_axes(x, a["axes"]), keepdims=a["keepdims"]))
    return np.asarray(y).astype(x.dtype)


def _arg(xs, a, largest: bool):
    x, ax = xs[0], a["axis"] % xs[0].ndim
    # First occurrence of the extreme value: stable sort on the key, take position 0.
    key = _wide(x)
    order = np.argsort(-key if largest else key, axis=ax, kind="stable")
    y = np.take(order, [0], axis=ax)
    return (y if a["keepdims"] else np.squeeze(y, axis=ax)).astype(np.int64)


@lowers("ArgMax")
def _argmax(xs, a):
    return _arg(xs, a, True)


@lowers("ArgMin")
def _argmin(xs, a):
    return _arg(xs, a, False)


@lowers("CumSum")
def _cumsum(xs, a):
    x = xs[0]
    ax = a["axis"] % x.ndim
    w = _wide(x)
    if a["reverse"]:
        w = np.flip(w, axis=ax)
    y = np.cumsum(w, axis=ax)
    if a["exclusive"]:
        y = y - w
    if a["reverse"]:
        y = np.flip(y, axis=ax)
    return _float_out(x, y)


def _sorted(x: np.ndarray, axis: int, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort: equal keys keep their original order in both directions."""
    key = _wide(x)
    idx = np.argsort(-key if descending else key, axis=axis, kind="stable")
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


@lowers("TopK")
def _topk(xs, a):
    x = xs[0]
    ax = a["axis"] % x.ndim
    v, i = _sorted(x, ax, a["largest"])
    keep = np.arange(a["k"])
    return [np.take(v, keep, axis=ax), np.take(i, keep, axis=ax)]


@lowers("Sort")
def _sort(xs, a):
    x = xs[0]
    return list(_sorted(x, a["axis"] % x.ndim, a["descending"]))
