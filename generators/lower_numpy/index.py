"""numpy reference of the index group, from the definitions."""

from __future__ import annotations

import numpy as np

from generators.lower_numpy.table import lowers


def _norm(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


@lowers("Gather")
def _gather(xs, a):
    x, idx = xs
    axis = _norm(a["axis"], x.ndim)
    n = x.shape[axis]
    idx = idx.astype(np.int64)
    return np.take(x, np.where(idx < 0, idx + n, idx), axis=axis)


@lowers("GatherElements")
def _gather_elements(xs, a):
    x, idx = xs
    dim = _norm(a["dim"], x.ndim)
    # out[i0..ir] = x[i0.., idx[i0..ir], ..ir]
    grids = list(np.indices(idx.shape, dtype=np.int64))
    grids[dim] = idx.astype(np.int64)
    return x[tuple(grids)]


@lowers("IndexSelect")
def _index_select(xs, a):
    x, idx = xs
    return np.take(x, idx.astype(np.int64), axis=_norm(a["dim"], x.ndim))


@lowers("Embedding")
def _embedding(xs, a):
    w, idx = xs
    return w[idx.astype(np.int64)]


@lowers("OneHot")
def _one_hot(xs, a):
    idx = xs[0].astype(np.int64)
    return (idx[..., None] == np.arange(int(a["num_classes"]))).astype(np.int64)
