"""Index operators: Gather (take along an axis, negative indices), GatherElements,
IndexSelect, Embedding, OneHot.

Index inputs are fresh leaves whose values are sampled in ("range", lo, hi) from the
data shape, so every index is in bounds by construction.
"""

from __future__ import annotations

import random
from typing import Any

from generators.dtypes import ALL
from generators.ir import TensorType
from generators.spec import Domain, OpSpec, Plan, Shape, pick_axis, pick_rank
from generators.symbolic import Cond
from generators.symbolic import norm_axis as _norm

INDEX_DTYPES = ("int64", "int32")


def _axis_ok(axis: int, rank: int) -> bool:
    return -rank <= axis < rank


class _Indexed(OpSpec):
    """Inputs (data, index): data of any dtype in `dtypes`, index int64/int32."""

    dtypes = ALL

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        ok = len(in_dtypes) == 2 and in_dtypes[0] in self.dtypes and in_dtypes[1] in INDEX_DTYPES
        return [in_dtypes[0]] if ok else None


class Gather(_Indexed):
    """ONNX Gather: out = data.shape[:axis] + idx.shape + data.shape[axis+1:]; idx in [-n, n-1].

    torch lowers it with real negative indexing, x[:, :, idx] (or x[..., idx, :] for a negative axis).
    """

    name = "Gather"

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1, 5)
        m = pick_rank(rng, 0, min(3, 6 - r))
        return Plan([r, m], [dtype, rng.choice(INDEX_DTYPES)], {"axis": pick_axis(rng, r)}, fresh={1: "leaf"})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return [len(shapes[0]) >= 1 and _axis_ok(attrs["axis"], len(shapes[0]))]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        x, idx = tuple(shapes[0]), tuple(shapes[1])
        a = _norm(attrs["axis"], len(x))
        return [x[:a] + idx + x[a + 1:]]

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        n = ins[0].shape[attrs["axis"]]
        return {1: ("range", -n, n - 1)}


class GatherElements(_Indexed):
    """torch.gather(x, dim, idx): idx has x's rank, dims <= x's off `dim`; values in [0, n-1]."""

    name = "GatherElements"

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1, 5)
        return Plan([r, r], [dtype, rng.choice(INDEX_DTYPES)], {"dim": pick_axis(rng, r)}, fresh={1: "leaf"})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        x, idx = shapes
        r = len(x)
        if not (r >= 1 and len(idx) == r and _axis_ok(attrs["dim"], r)):
            return [False]
        a = _norm(attrs["dim"], r)
        return [idx[i] <= x[i] for i in range(r) if i != a]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[1])]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out), tuple(out)]

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        n = ins[0].shape[attrs["dim"]]
        return {1: ("range", 0, n - 1)}


class IndexSelect(_Indexed):
    """torch.index_select(x, dim, idx) with a 1-D idx in [0, n-1] (it rejects negatives)."""

    name = "IndexSelect"

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1, 5)
        return Plan([r, 1], [dtype, rng.choice(INDEX_DTYPES)], {"dim": pick_axis(rng, r)}, fresh={1: "leaf"})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return [len(shapes[0]) >= 1 and len(shapes[1]) == 1 and _axis_ok(attrs["dim"], len(shapes[0]))]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        out = list(shapes[0])
        out[_norm(attrs["dim"], len(out))] = shapes[1][0]
        return [tuple(out)]

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        n = ins[0].shape[attrs["dim"]]
        return {1: ("range", 0, n - 1)}


class Embedding(_Indexed):
    """F.embedding(idx, weight): inputs (weight (V, D), idx of rank 0-4 in [0, V-1]) -> idx.shape + (D,)."""

    name = "Embedding"

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        return Plan([2, pick_rank(rng, 0, 4)], [dtype, rng.choice(INDEX_DTYPES)], {},
                    fresh={0: "weight", 1: "leaf"})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return [len(shapes[0]) == 2 and len(shapes[1]) <= 4]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[1]) + (shapes[0][1],)]

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {1: ("range", 0, ins[0].shape[0] - 1)}


class OneHot(OpSpec):
    """F.one_hot(idx, num_classes) -> int64 idx.shape + (num_classes,); idx int64 in [0, C-1]."""

    name = "OneHot"
    dtypes = ("int64",)

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        return Plan([pick_rank(rng, 0, 4)], [dtype], {}, {"num_classes": (1, 8)}, fresh={0: "leaf"})

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        return ["int64"] if in_dtypes == ["int64"] else None

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return [len(shapes[0]) <= 4, attrs["num_classes"] >= 1]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[0]) + (attrs["num_classes"],)]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out[:-1])]

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {0: ("range", 0, attrs["num_classes"] - 1)}


SPECS: list[OpSpec] = [Gather(), GatherElements(), IndexSelect(), Embedding(), OneHot()]
