"""Reductions and order statistics: Reduce* over an axis subset, ArgMax/ArgMin, CumSum, TopK, Sort.

The Reduce* family is one class configured by a table (name, dtypes, value domain,
output dtype rule). Output dtypes follow torch eager: sum, prod and cumsum of
integers and bools come out int64; index outputs are int64.
"""

from __future__ import annotations

import random
from typing import Any

from generators.dtypes import BOOL, FLOATS, INDEX, NUMERIC
from generators.ir import TensorType
from generators.spec import Domain, OpSpec, Plan, Shape, pick_axis, pick_rank
from generators.symbolic import Cond, prod
from generators.symbolic import norm_axis as _norm


def _axes_ok(axes: list[int] | None, rank: int) -> bool:
    """Structural check: axes in range and distinct after normalisation (None = all)."""
    if axes is None:
        return True
    if not isinstance(axes, list) or not axes:
        return False
    if any(not isinstance(a, int) or not -rank <= a < rank for a in axes):
        return False
    return len({_norm(a, rank) for a in axes}) == len(axes)


def reduced_axes(axes: list[int] | None, rank: int) -> list[int]:
    """The normalised, sorted axes a reduction removes (all of them for None)."""
    return list(range(rank)) if axes is None else sorted(_norm(a, rank) for a in axes)


def _reduce_shape(shape: Shape, axes: list[int] | None, keepdims: bool) -> Shape:
    red = set(reduced_axes(axes, len(shape)))
    if keepdims:
        return tuple(1 if i in red else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in red)


def _pick_axes(rng: random.Random, rank: int) -> list[int] | None:
    """None (reduce all) sometimes; else a non-empty subset, each axis negative half the time."""
    if rank == 0 or rng.random() < 0.15:
        return None
    n = rng.choice([1, 1, 1, 2, 2, 3, rank])
    chosen = rng.sample(range(rank), min(n, rank))
    return [a - rank if rng.random() < 0.5 else a for a in chosen]


class Reduce(OpSpec):
    """y = reduce(x, axes, keepdims). `promote`: int/bool inputs give int64 (torch's sum/prod)."""

    def __init__(self, name: str, dtypes: tuple[str, ...], promote: bool = False,
                 domain: str | None = None, max_count: int | None = None) -> None:
        self.name, self.dtypes, self.promote = name, dtypes, promote
        self.domain, self.max_count = domain, max_count

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        return Plan([r], [dtype], {"axes": _pick_axes(rng, r), "keepdims": rng.random() < 0.4})

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        if len(in_dtypes) != 1 or in_dtypes[0] not in self.dtypes:
            return None
        dt = in_dtypes[0]
        return [INDEX if self.promote and dt not in FLOATS else dt]

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {0: self.domain} if self.domain else {}

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        shape = shapes[0]
        if not _axes_ok(attrs["axes"], len(shape)) or not isinstance(attrs["keepdims"], bool):
            return [False]
        if self.max_count is None:
            return []
        # Keep products finite: bound how many elements one output reduces.
        return [prod(shape[i] for i in reduced_axes(attrs["axes"], len(shape))) <= self.max_count]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [_reduce_shape(shapes[0], attrs["axes"], attrs["keepdims"])]


class ArgReduce(OpSpec):
    """argmax/argmin along one axis (negative allowed), keepdims; int64 output."""

    tie_sensitive = True

    def __init__(self, name: str) -> None:
        self.name, self.dtypes = name, NUMERIC

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1)
        return Plan([r], [dtype], {"axis": pick_axis(rng, r), "keepdims": rng.random() < 0.4})

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        return [INDEX] if len(in_dtypes) == 1 and in_dtypes[0] in self.dtypes else None

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        ok = len(shapes[0]) >= 1 and _axes_ok([attrs["axis"]], len(shapes[0]))
        return [ok and isinstance(attrs["keepdims"], bool)]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [_reduce_shape(shapes[0], [attrs["axis"]], attrs["keepdims"])]


class CumSum(OpSpec):
    """Inclusive/exclusive, forward/reverse running sum along an axis (torch emulates the variants)."""

    name = "CumSum"
    dtypes = NUMERIC + (BOOL,)

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1)
        return Plan([r], [dtype], {"axis": pick_axis(rng, r), "reverse": rng.random() < 0.3,
                                   "exclusive": rng.random() < 0.3})

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        if len(in_dtypes) != 1 or in_dtypes[0] not in self.dtypes:
            return None
        return [in_dtypes[0] if in_dtypes[0] in FLOATS else INDEX]

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        ok = len(shapes[0]) >= 1 and _axes_ok([attrs["axis"]], len(shapes[0]))
        return [ok and isinstance(attrs["reverse"], bool) and isinstance(attrs["exclusive"], bool)]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[0])]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out)]


class TopK(OpSpec):
    """(values, int64 indices) of the k largest/smallest along an axis, sorted."""

    name = "TopK"
    dtypes = NUMERIC
    tie_sensitive = True

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1)
        return Plan([r], [dtype], {"axis": pick_axis(rng, r), "largest": rng.random() < 0.6},
                    int_attrs={"k": (1, 6)})

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        return [in_dtypes[0], INDEX] if len(in_dtypes) == 1 and in_dtypes[0] in self.dtypes else None

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        shape = shapes[0]
        if len(shape) < 1 or not _axes_ok([attrs["axis"]], len(shape)) or not isinstance(attrs["largest"], bool):
            return [False]
        k = attrs["k"]
        return [k >= 1, k <= shape[_norm(attrs["axis"], len(shape))]]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        shape = list(shapes[0])
        shape[_norm(attrs["axis"], len(shape))] = attrs["k"]
        return [tuple(shape), tuple(shape)]


class Sort(OpSpec):
    """Stable sort along an axis: (values, int64 indices)."""

    name = "Sort"
    dtypes = NUMERIC
    tie_sensitive = True

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1)
        return Plan([r], [dtype], {"axis": pick_axis(rng, r), "descending": rng.random() < 0.5})

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        return [in_dtypes[0], INDEX] if len(in_dtypes) == 1 and in_dtypes[0] in self.dtypes else None

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        ok = len(shapes[0]) >= 1 and _axes_ok([attrs["axis"]], len(shapes[0]))
        return [ok and isinstance(attrs["descending"], bool)]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[0]), tuple(shapes[0])]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out)]


_F = FLOATS
_NB = NUMERIC + (BOOL,)

SPECS: list[OpSpec] = [
    Reduce("ReduceSum", _NB, promote=True),
    Reduce("ReduceMean", _F),
    Reduce("ReduceMax", _NB),
    Reduce("ReduceMin", _NB),
    Reduce("ReduceProd", _NB, promote=True, domain="small", max_count=10),
    Reduce("ReduceLogSumExp", _F),
    Reduce("ReduceL2", _F),
    ArgReduce("ArgMax"), ArgReduce("ArgMin"),
    CumSum(), TopK(), Sort(),
]
