"""Normalisation layers: BatchNorm (inference), LayerNorm, GroupNorm, InstanceNorm, RMSNorm.

Parameters (running stats, scale, shift) are fresh weights. Optional scale and
shift are structural booleans `weight` / `bias`; when present they follow the
data input in that order (BatchNorm: x, running_mean, running_var, [weight], [bias]).
"""

from __future__ import annotations

import random
from typing import Any

from generators.dtypes import FLOATS
from generators.ir import TensorType
from generators.spec import Domain, OpSpec, Plan, Shape, pick_rank
from generators.symbolic import Cond, fdiv, prod

_EPS = [1e-5, 1e-3, 1e-6, 0.1]


def _affine(rng: random.Random) -> dict[str, bool]:
    """Both scale and shift most of the time; each alone or neither otherwise."""
    r = rng.random()
    if r < 0.55:
        return {"weight": True, "bias": True}
    if r < 0.7:
        return {"weight": True, "bias": False}
    if r < 0.8:
        return {"weight": False, "bias": True}
    return {"weight": False, "bias": False}


def _n_affine(attrs: dict[str, Any]) -> int:
    return int(bool(attrs["weight"])) + int(bool(attrs["bias"]))


def _flags_ok(attrs: dict[str, Any]) -> bool:
    return isinstance(attrs["weight"], bool) and isinstance(attrs["bias"], bool) and isinstance(attrs["eps"], float)


class _Norm(OpSpec):
    """Shared pieces: float dtypes, all inputs one dtype, output shaped like x."""

    dtypes = FLOATS
    n_stats = 0  # inputs between x and the affine parameters (BatchNorm's running stats)

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        if not in_dtypes or len(set(in_dtypes)) != 1 or in_dtypes[0] not in self.dtypes:
            return None
        return [in_dtypes[0]]

    def param_shape(self, x: Shape, attrs: dict[str, Any]) -> Shape:
        """Shape of every per-feature parameter (stats, scale, shift)."""
        return (x[1],)

    def n_params(self, attrs: dict[str, Any]) -> int:
        return self.n_stats + _n_affine(attrs)

    def params_ok(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        want = self.param_shape(shapes[0], attrs)
        if len(shapes) != 1 + self.n_params(attrs) or any(len(s) != len(want) for s in shapes[1:]):
            return [False]
        return [d == w for s in shapes[1:] for d, w in zip(s, want, strict=True)]

    def plan_params(self, rng: random.Random, dtype: str, rank: int, attrs: dict[str, Any],
                    prank: int, int_attrs: dict[str, tuple[int, int]] | None = None) -> Plan:
        n = self.n_params(attrs)
        return Plan([rank] + [prank] * n, [dtype] * (n + 1), attrs, int_attrs or {},
                    fresh={i: "weight" for i in range(1, n + 1)})

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[0])]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        p = self.param_shape(tuple(out), attrs)
        return [tuple(out)] + [tuple(p)] * (len(in_ranks) - 1)


class BatchNorm(_Norm):
    """Inference-mode batch norm over (N, C, *) with running mean/var as weights."""

    name = "BatchNorm"
    n_stats = 2

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        attrs = {"eps": rng.choice(_EPS), **_affine(rng)}
        return self.plan_params(rng, dtype, pick_rank(rng, 2, 5), attrs, 1)

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {2: "positive"}

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        if len(shapes[0]) < 2 or not _flags_ok(attrs):
            return [False]
        return self.params_ok(shapes, attrs)


class LayerNorm(_Norm):
    """Normalise over the last `num_dims` dims, scale/shift shaped like those dims."""

    name = "LayerNorm"
    # A lone normalised element is exactly 0 after centring, but torch's fused x*rstd - mean*rstd
    # leaves rounding noise scaled by 1/sqrt(eps) there: keep at least two elements per group.
    min_count = 2

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1, 5)
        k = rng.randint(1, r) if rng.random() < 0.5 else 1
        attrs = {"num_dims": k, "eps": rng.choice(_EPS), **_affine(rng)}
        return self.plan_params(rng, dtype, r, attrs, k)

    def param_shape(self, x: Shape, attrs: dict[str, Any]) -> Shape:
        return tuple(x[len(x) - attrs["num_dims"]:])

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        k = attrs["num_dims"]
        if not isinstance(k, int) or not 1 <= k <= len(shapes[0]) or not _flags_ok(attrs):
            return [False]
        return [prod(self.param_shape(shapes[0], attrs)) >= self.min_count] + self.params_ok(shapes, attrs)


class RMSNorm(LayerNorm):
    """x / sqrt(mean(x^2 over the last num_dims) + eps) * weight; eps None means finfo(dtype).eps."""

    name = "RMSNorm"
    min_count = 1  # no centring, so a single element is well-conditioned

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1, 5)
        k = rng.randint(1, r) if rng.random() < 0.5 else 1
        attrs = {"num_dims": k, "eps": rng.choice(_EPS + [None]), "weight": rng.random() < 0.7, "bias": False}
        return self.plan_params(rng, dtype, r, attrs, k)

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        if attrs["bias"] is not False:
            return [False]
        if attrs["eps"] is None:
            return super().requires(shapes, {**attrs, "eps": 0.0})
        return super().requires(shapes, attrs)


class GroupNorm(_Norm):
    """Normalise over groups of C / num_groups channels (and all spatial dims); per-channel affine."""

    name = "GroupNorm"

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        attrs = {"eps": rng.choice(_EPS), **_affine(rng)}
        return self.plan_params(rng, dtype, pick_rank(rng, 2, 5), attrs, 1, {"num_groups": (1, 6)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        if len(shapes[0]) < 2 or not _flags_ok(attrs):
            return [False]
        x, g = shapes[0], attrs["num_groups"]
        per = fdiv(x[1], g)
        # At least two values per group: torch refuses a lone value across the whole batch ("Expected
        # more than 1 value per channel") and, per sample, its fused form is noise there (see LayerNorm).
        return [g >= 1, g <= x[1], per * g == x[1], per * prod(x[2:]) >= 2] + self.params_ok(shapes, attrs)


class InstanceNorm(_Norm):
    """Per-sample, per-channel normalisation over the spatial dims of (N, C, *spatial), no running stats."""

    name = "InstanceNorm"
    # No float16: torch's CPU kernel rounds the per-channel mean to float16 before centring, so
    # near-constant channels come out far from the exact result (e.g. [2.648, 2.646] -> [0, -0.59]).
    dtypes = ("float32", "float64")

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        attrs = {"eps": rng.choice(_EPS), **_affine(rng)}
        return self.plan_params(rng, dtype, pick_rank(rng, 3, 5), attrs, 1)

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        x = shapes[0]
        if len(x) < 3 or not _flags_ok(attrs):
            return [False]
        # torch refuses a single spatial element ("Expected more than 1 spatial element").
        return [prod(x[2:]) >= 2] + self.params_ok(shapes, attrs)


SPECS: list[OpSpec] = [BatchNorm(), LayerNorm(), GroupNorm(), InstanceNorm(), RMSNorm()]
