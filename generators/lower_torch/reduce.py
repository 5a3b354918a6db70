"""torch lowerings of the reduce group: the natural torch API per op (it is a system under test)."""

from __future__ import annotations

import torch

from generators.lower_torch.table import lowers


def _dims(x: torch.Tensor, axes: list[int] | None) -> tuple[int, ...] | None:
    return None if axes is None else tuple(axes)


@lowers("ReduceSum")
def _sum(xs, a):
    return torch.sum(xs[0], dim=_dims(xs[0], a["axes"]), keepdim=a["keepdims"])


@lowers("ReduceMean")
def _mean(xs, a):
    return torch.mean(xs[0], dim=_dims(xs[0], a["axes"]), keepdim=a["keepdims"])


def _all_dims(x: torch.Tensor, axes: list[int] | None) -> tuple[int, ...]:
    return tuple(range(x.dim())) if axes is None else tuple(axes)


@lowers("ReduceMax")
def _max(xs, a):
    x = xs[0]
    if a["axes"] is None and not a["keepdims"]:
        return torch.amax(x)
    return torch.amax(x, dim=_all_dims(x, a["axes"]), keepdim=a["keepdims"])


@lowers("ReduceMin")
def _min(xs, a):
    x = xs[0]
    if a["axes"] is None and not a["keepdims"]:
        return torch.amin(x)
    return torch.amin(x, dim=_all_dims(x, a["axes"]), keepdim=a["keepdims"])


@lowers("ReduceProd")
def _prod(xs, a):
    # torch.prod takes one dim at a time: chain it over the axes, highest first.
    x = xs[0]
    if a["axes"] is None and not a["keepdims"]:
        return torch.prod(x)
    axes = sorted((d % x.dim() for d in _all_dims(x, a["axes"])), reverse=True) if x.dim() else []
    if not axes:  # rank 0 with keepdims: nothing to reduce, only the dtype rule applies
        return torch.prod(x)
    for d in axes:
        x = torch.prod(x, dim=d, keepdim=a["keepdims"])
    return x


@lowers("ReduceLogSumExp")
def _lse(xs, a):
    x = xs[0]
    return torch.logsumexp(x, dim=_all_dims(x, a["axes"]), keepdim=a["keepdims"])


@lowers("ReduceL2")
def _l2(xs, a):
    return torch.linalg.vector_norm(xs[0], 2, dim=_dims(xs[0], a["axes"]), keepdim=a["keepdims"])


@lowers("ArgMax")
def _argmax(xs, a):
    return torch.argmax(xs[0], dim=a["axis"], keepdim=a["keepdims"])


@lowers("ArgMin")
def _argmin(xs, a):
    return torch.argmin(xs[0], dim=a["axis"], keepdim=a["keepdims"])


@lowers("CumSum")
def _cumsum(xs, a):
    x, d = xs[0], a["axis"]
    if a["reverse"]:
        x = torch.flip(x, (d,))
    y = torch.cumsum(x, dim=d)
    if a["exclusive"]:
        # Shift by one along d: a leading zero slice, the running sum without its last slice.
        n = y.shape[d]
        y = torch.cat([torch.zeros_like(y.narrow(d, 0, 1)), y.narrow(d, 0, n - 1)], dim=d)
    if a["reverse"]:
        y = torch.flip(y, (d,))
    return y


@lowers("TopK")
def _topk(xs, a):
    v, i = torch.topk(xs[0], a["k"], dim=a["axis"], largest=a["largest"], sorted=True)
    return [v, i]


@lowers("Sort")
def _sort(xs, a):
    v, i = torch.sort(xs[0], dim=a["axis"], descending=a["descending"], stable=True)
    return [v, i]
