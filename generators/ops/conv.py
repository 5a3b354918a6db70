"""Convolution and pooling specs: Conv, ConvTranspose, MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool.

Every family takes a batched (N, C, *spatial) input with spatial rank 1-3 as a
structural attribute. Per-dimension numeric attributes are int_attrs named
`<attr><i>` (kernel0, stride1, pad2, dilation0, output_padding1, out0 ...), so
z3 solves them with the shapes; `uniform` ties them across dimensions (the
frameworks' scalar-argument path). Output sizes follow torch's formulas.
"""

from __future__ import annotations

import random
from typing import Any

from generators.dtypes import FLOATS, INTS
from generators.spec import Homogeneous, OpSpec, Plan, Shape, dims_ge
from generators.symbolic import Cond, Dim, any_of, cdiv, fdiv, ite

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_RANGES = {"kernel": (1, 4), "stride": (1, 3), "pad": (0, 2), "dilation": (1, 3), "output_padding": (0, 2),
           "out": (1, 5), "groups": (1, 4), "out_per_group": (1, 4), "in_per_group": (1, 4)}
_MINS = {"kernel": 1, "stride": 1, "pad": 0, "dilation": 1, "output_padding": 0, "out": 1}


def per_dim(attrs: dict[str, Any], key: str, rank: int) -> list[Any]:
    """The per-dimension values of attribute `key` (kernel0, kernel1, ...)."""
    return [attrs[f"{key}{i}"] for i in range(rank)]


def _dim_attrs(rng: random.Random, keys: tuple[str, ...], rank: int, uniform: bool,
               extra: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Domains of the per-dimension attributes (and of `extra` scalar ones). Most are pinned to one
    random value: left free, z3 settles on the smallest solution (kernel 1, stride 1, groups 1)."""
    out: dict[str, tuple[int, int]] = {}
    for k in keys + extra:
        lo, hi = _RANGES[k]
        pin = rng.randint(lo, hi) if uniform else None
        for i in range(1 if k in extra else rank):
            v = pin if pin is not None else rng.randint(lo, hi)
            out[k if k in extra else f"{k}{i}"] = (v, v) if rng.random() < 0.75 else (lo, hi)
    return out


def _attr_rules(attrs: dict[str, Any], keys: tuple[str, ...], rank: int) -> list[Cond]:
    """Range rules for per-dimension attributes (and equality across dims when `uniform`)."""
    out: list[Cond] = []
    for k in keys:
        vals = per_dim(attrs, k, rank)
        out += [v >= _MINS[k] for v in vals]
        if attrs.get("uniform"):
            out += [v == vals[0] for v in vals[1:]]
    return out


def _window_out(size: Dim, k: Dim, s: Dim, p: Dim, d: Dim, ceil_mode: bool) -> Dim:
    """torch's pooling output size; in ceil mode the last window must start inside the input or left pad."""
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return fdiv(span, s) + 1
    o = cdiv(span, s) + 1
    return ite((o - 1) * s >= size + p, o - 1, o)


class _Spatial(Homogeneous):
    """Shared plumbing: spatial rank from the plan, batched NC* input at position 0."""

    ranks: tuple[int, ...] = (1, 2, 3)

    def _rank(self, rng: random.Random, dtype: str) -> int:
        return rng.choice(self.ranks)

    @staticmethod
    def _uniform(rng: random.Random, rank: int) -> bool:
        return rank > 1 and rng.random() < 0.4


class Conv(_Spatial):
    """torch conv{1,2,3}d: weight (C_out, C_in/groups, *k), optional bias, padding modes, 'same' padding."""

    name = "Conv"
    dtypes = FLOATS
    keys = ("kernel", "stride", "pad", "dilation")

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = self._rank(rng, dtype)
        same = rng.random() < 0.15
        attrs = {"rank": r, "has_bias": rng.random() < 0.6, "uniform": self._uniform(rng, r),
                 "padding": "same" if same else "explicit",
                 "padding_mode": "zeros" if same or rng.random() < 0.5 else rng.choice(PADDING_MODES[1:]),
                 "depthwise": rng.random() < 0.2}
        ints = _dim_attrs(rng, self.keys, r, attrs["uniform"], ("groups", "out_per_group"))
        if same:
            ints.update({f"{k}{i}": (v, v) for k, v in (("stride", 1), ("pad", 0)) for i in range(r)})
        n_in = 3 if attrs["has_bias"] else 2
        return Plan([r + 2, r + 2, 1][:n_in], [dtype] * n_in, attrs, ints,
                    fresh={i: "weight" for i in range(1, n_in)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        r = attrs["rank"]
        x, w = shapes[0], shapes[1]
        g, opg = attrs["groups"], attrs["out_per_group"]
        c: list[Cond] = dims_ge(x, 1) + _attr_rules(attrs, self.keys, r)
        c += [g >= 1, opg >= 1, x[1] == g * w[1], w[0] == g * opg]
        if attrs["depthwise"]:
            c.append(w[1] == 1)
        if attrs["has_bias"]:
            c.append(shapes[2][0] == w[0])
        same = attrs["padding"] == "same"
        mode = attrs["padding_mode"]
        for i, (k, s, p, d) in enumerate(zip(*(per_dim(attrs, key, r) for key in self.keys), strict=True)):
            size = x[2 + i]
            c.append(w[2 + i] == k)
            if same:  # torch: 'same' needs stride 1 (the pad attrs are then unused and pinned to 0)
                c += [s == 1, p == 0]
            else:
                c.append(size + 2 * p - d * (k - 1) - 1 >= 0)
            if mode == "reflect":
                c.append(p < size)
            elif mode == "circular":
                c.append(p <= size)
        return c

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        r, x, w = attrs["rank"], shapes[0], shapes[1]
        if attrs["padding"] == "same":
            return [(x[0], w[0]) + tuple(x[2:])]
        sp = tuple(_window_out(x[2 + i], k, s, p, d, False)
                   for i, (k, s, p, d) in enumerate(zip(*(per_dim(attrs, key, r) for key in self.keys), strict=True)))
        return [(x[0], w[0]) + sp]


class ConvTranspose(_Spatial):
    """torch conv_transpose{1,2,3}d: weight (C_in, C_out/groups, *k); output_padding < stride or < dilation."""

    name = "ConvTranspose"
    dtypes = FLOATS
    keys = ("kernel", "stride", "pad", "dilation", "output_padding")

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = self._rank(rng, dtype)
        attrs = {"rank": r, "has_bias": rng.random() < 0.6, "uniform": self._uniform(rng, r)}
        ints = _dim_attrs(rng, self.keys, r, attrs["uniform"], ("groups", "in_per_group"))
        n_in = 3 if attrs["has_bias"] else 2
        return Plan([r + 2, r + 2, 1][:n_in], [dtype] * n_in, attrs, ints,
                    fresh={i: "weight" for i in range(1, n_in)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        r = attrs["rank"]
        x, w = shapes[0], shapes[1]
        g, ipg = attrs["groups"], attrs["in_per_group"]
        c: list[Cond] = dims_ge(x, 1) + dims_ge(w, 1) + _attr_rules(attrs, self.keys, r)
        c += [g >= 1, ipg >= 1, x[1] == g * ipg, w[0] == x[1]]
        if attrs["has_bias"]:
            c.append(shapes[2][0] == g * w[1])
        for i, (k, s, p, d, op) in enumerate(zip(*(per_dim(attrs, key, r) for key in self.keys), strict=True)):
            c += [w[2 + i] == k, any_of(op < s, op < d), self._out(x[2 + i], k, s, p, d, op) >= 1]
        return c

    @staticmethod
    def _out(size: Dim, k: Dim, s: Dim, p: Dim, d: Dim, op: Dim) -> Dim:
        return (size - 1) * s - 2 * p + d * (k - 1) + op + 1

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        r, x, w = attrs["rank"], shapes[0], shapes[1]
        sp = tuple(self._out(x[2 + i], *vals)
                   for i, vals in enumerate(zip(*(per_dim(attrs, key, r) for key in self.keys), strict=True)))
        return [(x[0], attrs["groups"] * w[1]) + sp]


class _Pool(_Spatial):
    """Sliding-window pools: kernel, stride, pad (<= kernel/2, torch's rule), ceil_mode."""

    keys: tuple[str, ...] = ("kernel", "stride", "pad")

    def _attrs(self, rng: random.Random, r: int) -> dict[str, Any]:
        return {"rank": r, "ceil_mode": rng.random() < 0.5, "uniform": self._uniform(rng, r)}

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = self._rank(rng, dtype)
        attrs = self._attrs(rng, r)
        return Plan([r + 2], [dtype], attrs, _dim_attrs(rng, self.keys, r, attrs["uniform"]))

    def _dils(self, attrs: dict[str, Any]) -> list[Any]:
        return [1] * attrs["rank"]

    def _kspd(self, attrs: dict[str, Any]) -> list[tuple[Any, Any, Any, Any]]:
        r = attrs["rank"]
        return list(zip(per_dim(attrs, "kernel", r), per_dim(attrs, "stride", r), per_dim(attrs, "pad", r),
                        self._dils(attrs), strict=True))

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        x = shapes[0]
        c: list[Cond] = dims_ge(x, 1) + _attr_rules(attrs, self.keys, attrs["rank"])
        for i, (k, _s, p, d) in enumerate(self._kspd(attrs)):
            c += [2 * p <= k, x[2 + i] + 2 * p - d * (k - 1) - 1 >= 0]
        return c

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        x = shapes[0]
        return [tuple(x[:2]) + tuple(_window_out(x[2 + i], k, s, p, d, attrs["ceil_mode"])
                                     for i, (k, s, p, d) in enumerate(self._kspd(attrs)))]


class MaxPool(_Pool):
    """torch max_pool{1,2,3}d with dilation and ceil_mode. Integer inputs only for rank 2/3 (torch's kernels)."""

    name = "MaxPool"
    dtypes = FLOATS + INTS
    keys = ("kernel", "stride", "pad", "dilation")

    def _rank(self, rng: random.Random, dtype: str) -> int:
        return rng.choice((2, 3) if dtype in INTS else self.ranks)

    def _dils(self, attrs: dict[str, Any]) -> list[Any]:
        return per_dim(attrs, "dilation", attrs["rank"])

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        if in_dtypes and in_dtypes[0] in INTS and attrs.get("rank") == 1:
            return None  # torch's max_pool1d has no integer kernels
        return super().out_dtypes(in_dtypes, attrs)

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        # Every window must hold a real element (else torch yields -inf): no padding, or dilation <= size.
        return super().requires(shapes, attrs) + [any_of(p == 0, d <= shapes[0][2 + i])
                                                  for i, (_, _, p, d) in enumerate(self._kspd(attrs))]


class AvgPool(_Pool):
    """torch avg_pool{1,2,3}d with ceil_mode, count_include_pad and (rank 2/3) divisor_override."""

    name = "AvgPool"
    dtypes = FLOATS

    def _rank(self, rng: random.Random, dtype: str) -> int:
        return rng.choice((1, 2) if dtype == "float16" else self.ranks)  # torch has no half avg_pool3d on CPU

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        if in_dtypes == ["float16"] and attrs.get("rank") == 3:
            return None
        return super().out_dtypes(in_dtypes, attrs)

    def _attrs(self, rng: random.Random, r: int) -> dict[str, Any]:
        a = super()._attrs(rng, r)
        a["count_include_pad"] = rng.random() < 0.5
        a["divisor_override"] = rng.choice([2, 3, 5]) if r > 1 and rng.random() < 0.2 else None
        return a

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        dv = attrs.get("divisor_override")
        c = super().requires(shapes, attrs) + ([dv >= 1, attrs["rank"] > 1] if dv is not None else [])
        if attrs["rank"] == 3:  # torch's avg_pool3d (unlike 1d/2d) rejects an unpadded input smaller than the kernel
            c += [shapes[0][2 + i] >= k for i, (k, _, _, _) in enumerate(self._kspd(attrs))]
        return c


class _Adaptive(_Spatial):
    """torch adaptive pools: window i of n over size L is [floor(i*L/n), ceil((i+1)*L/n))."""

    dtypes = FLOATS

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = self._rank(rng, dtype)
        attrs = {"rank": r, "uniform": self._uniform(rng, r)}
        return Plan([r + 2], [dtype], attrs, _dim_attrs(rng, ("out",), r, attrs["uniform"]))

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return dims_ge(shapes[0], 1) + _attr_rules(attrs, ("out",), attrs["rank"])

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[0][:2]) + tuple(per_dim(attrs, "out", attrs["rank"]))]


class AdaptiveAvgPool(_Adaptive):
    name = "AdaptiveAvgPool"


class AdaptiveMaxPool(_Adaptive):
    name = "AdaptiveMaxPool"


SPECS: list[OpSpec] = [Conv(), ConvTranspose(), MaxPool(), AvgPool(), AdaptiveAvgPool(), AdaptiveMaxPool()]
