"""nn operator specs: padding, resizing, dense algebra (Linear, MatMul, Einsum), softmax and attention.

Semantics are PyTorch's (F.pad, F.interpolate, F.linear, torch.matmul, torch.einsum, F.softmax,
F.scaled_dot_product_attention). Structural attributes fix modes, equations and ranks; pad
amounts and output sizes are z3-solved int attributes.
"""

from __future__ import annotations

import random
from typing import Any

from generators.dtypes import BOOL, FLOATS, INTS
from generators.ir import TensorType
from generators.spec import Domain, Homogeneous, OpSpec, Plan, Shape, pick_axis, pick_rank, same_shape
from generators.symbolic import Cond, any_of, broadcast, broadcast_all, fdiv, smin

_F = FLOATS
_FI = FLOATS + ("int32", "int64")


# -- Pad -----------------------------------------------------------------------------------------

def pad_names(k: int) -> list[str]:
    """int_attr names in F.pad order: last dim (lo, hi), then the one before, ..."""
    return [f"pad{i}" for i in range(2 * k)]


class Pad(Homogeneous):
    """F.pad(x, pads, mode, value) over the `k` trailing dims (last dim first, torch order).

    constant: any rank, pads may be negative (cropping); reflect/replicate/circular: torch
    only pads k in 1..3 trailing dims of a (k+1)- or (k+2)-D tensor, pads >= 0, reflect needs
    pad < dim, circular pad <= dim. Bool has no reflect/replicate kernel in torch.
    """

    name = "Pad"
    dtypes = FLOATS + INTS + (BOOL,)

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        modes = ["constant", "constant", "reflect", "replicate", "circular"]
        if dtype == BOOL:
            modes = ["constant", "constant", "circular"]
        mode = rng.choice(modes)
        if mode == "constant":
            r = pick_rank(rng, 1, 5)
            k = rng.randint(1, r)
            lo = -2
            value: Any = rng.choice([0, 0, 1, -2]) if dtype in INTS else rng.choice([0.0, 0.0, 1.5, -2.0])
            if dtype == BOOL:
                value = rng.choice([0, 1])
        else:
            k = rng.randint(1, 3)
            r = k + rng.randint(1, 2)
            lo, value = 0, None
        attrs = {"mode": mode, "k": k, "value": value}
        return Plan([r], [dtype], attrs, {n: (lo, 3) for n in pad_names(k)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        x, k, mode = shapes[0], attrs["k"], attrs["mode"]
        cs: list[Cond] = []
        if k < 1 or k > len(x) or (mode != "constant" and not (k <= 3 and len(x) in (k + 1, k + 2))):
            return [False]
        for i in range(k):
            d, lo, hi = x[len(x) - 1 - i], attrs[f"pad{2 * i}"], attrs[f"pad{2 * i + 1}"]
            if mode == "constant":
                cs += [lo >= -2, hi >= -2, lo <= 3, hi <= 3, d + smin(lo, 0) + smin(hi, 0) >= 1]
            else:
                cs += [lo >= 0, hi >= 0, lo <= 3, hi <= 3]
            if mode == "reflect":
                cs += [lo < d, hi < d]
            if mode == "circular":
                cs += [lo <= d, hi <= d]
        return cs

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        x, k = list(shapes[0]), attrs["k"]
        for i in range(k):
            j = len(x) - 1 - i
            x[j] = x[j] + attrs[f"pad{2 * i}"] + attrs[f"pad{2 * i + 1}"]
        return [tuple(x)]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        x, k = list(out), attrs["k"]
        if k > len(x):
            return None
        for i in range(k):
            j = len(x) - 1 - i
            x[j] = x[j] - attrs[f"pad{2 * i}"] - attrs[f"pad{2 * i + 1}"]
        return [tuple(x)]


# -- Interpolate ---------------------------------------------------------------------------------

_SCALES = [[1, 2], [3, 4], [5, 4], [3, 2], [2, 1], [5, 2], [3, 1]]  # p/q, all dyadic: exact in float


class Interpolate(Homogeneous):
    """F.interpolate on (N, C, *spatial), spatial rank 1-3.

    attrs: mode; align_corners (linear/bicubic modes, else None); antialias (bilinear/bicubic,
    matters when downscaling); either `size` int attrs
    size0.. or `scale` = list of [p, q] per spatial dim (scale_factor p/q, output floor(in*p/q))
    with `recompute` (recompute_scale_factor).
    """

    name = "Interpolate"
    dtypes = _F

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        s = rng.randint(1, 3)
        mode = rng.choice(["nearest", "nearest-exact", "area", {1: "linear", 2: "bilinear", 3: "trilinear"}[s]]
                          + (["bicubic"] if s == 2 else []))
        align = rng.choice([False, True]) if mode in ("linear", "bilinear", "trilinear", "bicubic") else None
        # torch has no float16 antialias kernel on CPU
        aa = rng.choice([False, True]) if mode in ("bilinear", "bicubic") and dtype != "float16" else False
        attrs: dict[str, Any] = {"mode": mode, "align_corners": align, "antialias": aa, "scale": None,
                                 "recompute": None}
        ints: dict[str, tuple[int, int]] = {}
        if rng.random() < 0.5 and mode != "area":
            attrs["scale"] = [rng.choice(_SCALES) for _ in range(s)]
            attrs["recompute"] = rng.choice([False, True])
        else:
            ints = {f"size{i}": (1, 16) for i in range(s)}
        return Plan([s + 2], [dtype], attrs, ints)

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        x = shapes[0]
        s = len(x) - 2
        if s < 1 or s > 3:
            return [False]
        if attrs["antialias"]:
            if s != 2 or attrs["mode"] not in ("bilinear", "bicubic"):
                return [False]
            # torch 2.13 bug: antialias with output width 1 gives wrong rows (see the nn report)
            return self._requires_size(x, attrs) + [self.infer(shapes, attrs)[0][3] >= 2]
        return self._requires_size(x, attrs)

    def _requires_size(self, x: Shape, attrs: dict[str, Any]) -> list[Cond]:
        s = len(x) - 2
        if attrs["scale"] is not None:
            cs = [x[2 + i] * p >= q for i, (p, q) in enumerate(attrs["scale"])]
            if not attrs["recompute"]:
                # torch copies a dim whose output size equals its input size and ignores a scale != 1
                # there (linear modes, 2-D nearest) but honours it elsewhere (1-D/3-D nearest, bicubic):
                # keep such dims out rather than encode the inconsistency.
                cs += [x[2 + i] * (p - q) >= q for i, (p, q) in enumerate(attrs["scale"]) if p > q]
            return cs
        return [c for i in range(s) for c in (attrs[f"size{i}"] >= 1, attrs[f"size{i}"] <= 16)]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        x = shapes[0]
        s = len(x) - 2
        if attrs["scale"] is not None:
            sp = tuple(fdiv(x[2 + i] * p, q) for i, (p, q) in enumerate(attrs["scale"]))
        else:
            sp = tuple(attrs[f"size{i}"] for i in range(s))
        return [(x[0], x[1]) + sp]


# -- Linear / MatMul / Einsum --------------------------------------------------------------------

class Linear(Homogeneous):
    """F.linear(x, W, b): x (..., in), W (out, in), optional b (out,); W and b are weights."""

    name = "Linear"
    dtypes = _F

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        bias = rng.random() < 0.7
        ranks = [pick_rank(rng, 1, 5), 2] + ([1] if bias else [])
        fresh = {1: "weight", 2: "weight"} if bias else {1: "weight"}
        return Plan(ranks, [dtype] * len(ranks), {"bias": bias}, fresh=fresh)

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        x, w = shapes[0], shapes[1]
        if len(x) < 1 or len(w) != 2 or len(shapes) != (3 if attrs["bias"] else 2):
            return [False]
        cs = [x[-1] == w[1]]
        if attrs["bias"]:
            cs += [len(shapes[2]) == 1, shapes[2][0] == w[0]]
        return cs

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[0][:-1]) + (shapes[1][0],)]


def matmul_shape(a: Shape, b: Shape) -> tuple[list[Cond], Shape]:
    """torch.matmul's rank rules: (conditions, output shape)."""
    if len(a) == 1 and len(b) == 1:
        return [a[0] == b[0]], ()
    if len(a) == 1:
        return [a[0] == b[-2]], tuple(b[:-2]) + (b[-1],)
    if len(b) == 1:
        return [a[-1] == b[0]], tuple(a[:-1])
    cs, batch = broadcast(tuple(a[:-2]), tuple(b[:-2]))
    return cs + [a[-1] == b[-2]], tuple(batch) + (a[-2], b[-1])


class MatMul(Homogeneous):
    """torch.matmul, ranks 1-5 each: dot, matrix-vector, batched with broadcast leading dims."""

    name = "MatMul"
    dtypes = _FI

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        ra = pick_rank(rng, 1, 5)
        rb = ra if rng.random() < 0.5 else pick_rank(rng, 1, 5)
        return Plan([ra, rb], [dtype, dtype], fresh={1: "weight"} if rng.random() < 0.2 else {})

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {0: "small", 1: "small"}

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        if not shapes[0] or not shapes[1]:
            return [False]
        return matmul_shape(shapes[0], shapes[1])[0]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [matmul_shape(shapes[0], shapes[1])[1]]


EQUATIONS = [
    "ij,jk->ik", "bij,bjk->bik", "bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd", "ij->ji", "ii->i", "ii->",
    "i,j->ij", "i,i->", "i,i->i", "bcd,bcd->bc", "ijk->ikj", "ij->", "ij->j", "bn,anm,bm->ba",
    "ijk,ik->ij", "...ij,...jk->...ik", "b...i,bi->b...", "ij,kj->ik",
]


def einsum_terms(eq: str) -> tuple[list[str], str]:
    lhs, out = eq.split("->")
    return lhs.split(","), out


class Einsum(Homogeneous):
    """torch.einsum with a fixed equation (structural). Letters shared between operands broadcast
    (size 1 stretches), as in torch; a letter repeated inside one operand (diagonal) needs equal
    dims. `ell`: the rank of each operand's '...' part."""

    name = "Einsum"
    # not int32: torch.einsum returns int64 for int32 when it lowers to a sum ('ij->j', 'ii->')
    dtypes = FLOATS + ("int64",)

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        eq = rng.choice(EQUATIONS)
        terms, _ = einsum_terms(eq)
        ell = [rng.randint(0, 2) if "..." in t else 0 for t in terms]
        ranks = [len(t.replace("...", "")) + e for t, e in zip(terms, ell)]
        return Plan(ranks, [dtype] * len(terms), {"equation": eq, "ell": ell})

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {i: "small" for i in range(len(ins))}

    def _letters(self, shapes: list[Shape], attrs: dict[str, Any]) -> tuple[list[Cond], dict[str, Any], Shape]:
        """(conditions, letter -> size, broadcast ellipsis shape)."""
        terms, _ = einsum_terms(attrs["equation"])
        if len(terms) != len(shapes):
            return [False], {}, ()
        cs: list[Cond] = []
        size: dict[str, Any] = {}
        ells = []
        for t, s, e in zip(terms, shapes, attrs["ell"]):
            if len(s) != len(t.replace("...", "")) + e:
                return [False], {}, ()
            dims: list[tuple[str, Any]] = []
            pos = 0
            for part in t.split("...")[0]:
                dims.append((part, s[pos]))
                pos += 1
            if "..." in t:
                ells.append(tuple(s[pos:pos + e]))
                pos += e
                for ch in t.split("...")[1]:
                    dims.append((ch, s[pos]))
                    pos += 1
            own: dict[str, Any] = {}
            for ch, d in dims:
                if ch in own:
                    cs.append(own[ch] == d)
                else:
                    own[ch] = d
            for ch, d in own.items():
                if ch in size:
                    c, (size[ch],) = broadcast((size[ch],), (d,))
                    cs += c
                else:
                    size[ch] = d
        ell: Shape = ()
        if ells:
            c, ell = broadcast_all(ells)
            cs += c
        return cs, size, ell

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return self._letters(shapes, attrs)[0]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        _, size, ell = self._letters(shapes, attrs)
        _, out = einsum_terms(attrs["equation"])
        head, _, tail = out.partition("...")
        return [tuple(size[c] for c in head) + (tuple(ell) if "..." in out else ()) + tuple(size[c] for c in tail)]


# -- Softmax / attention -------------------------------------------------------------------------

class Softmax(Homogeneous):
    """F.softmax / F.log_softmax along `axis` (negative half the time), ranks 0-5."""

    dtypes = _F

    def __init__(self, name: str) -> None:
        self.name = name

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        axis = rng.choice([0, -1]) if r == 0 else pick_axis(rng, r)
        return Plan([r], [dtype], {"axis": axis})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        r = max(len(shapes[0]), 1)
        return [-r <= attrs["axis"] < r]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return same_shape(shapes[0])

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out)]


class ScaledDotProductAttention(Homogeneous):
    """F.scaled_dot_product_attention(q, k, v[, mask]); q (B..., L, E), k (B..., S, E), v (B..., S, Ev).

    Batch dims broadcast. attrs: is_causal, mask ("none" | "float": an additive input of rank 2
    (L, S) or the full rank), scale (None = 1/sqrt(E)), gqa (enable_gqa: q heads = k/v heads *
    int attr `groups`, dim -3).
    """

    name = "ScaledDotProductAttention"
    dtypes = _F

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        gqa = rng.random() < 0.25
        r = rng.randint(3, 5) if gqa else pick_rank(rng, 2, 5)
        causal = rng.random() < 0.3
        mask = "none" if causal or rng.random() < 0.5 else "float"
        attrs = {"is_causal": causal, "mask": mask, "scale": rng.choice([None, None, 0.5, 0.125, 1.0]), "gqa": gqa}
        ranks = [r, r, r] + ([rng.choice([2, r])] if mask == "float" else [])
        return Plan(ranks, [dtype] * len(ranks), attrs, {"groups": (1, 3)} if gqa else {})

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        return {i: "small" for i in range(len(ins))}

    def _shape(self, shapes: list[Shape], attrs: dict[str, Any]) -> tuple[list[Cond], Shape]:
        q, k, v = shapes[:3]
        r = len(q)
        if r < 2 or len(k) != r or len(v) != r or len(shapes) != (4 if attrs["mask"] == "float" else 3):
            return [False], ()
        cs: list[Cond] = [k[-1] == q[-1], v[-2] == k[-2]]
        qb, kb, vb = tuple(q[:-2]), tuple(k[:-2]), tuple(v[:-2])
        if attrs["gqa"]:
            if r < 3:
                return [False], ()
            g = attrs["groups"]
            cs += [g >= 1, g <= 3, q[-3] == k[-3] * g, k[-3] == v[-3]]
            qb, kb, vb = qb[:-1], kb[:-1], vb[:-1]
        c, batch = broadcast_all([qb, kb, vb])
        cs += c
        if attrs["gqa"]:
            batch = tuple(batch) + (q[-3],)
        out = tuple(batch) + (q[-2], v[-1])
        if attrs["mask"] == "float":  # broadcastable *to* the scores (torch adds it in place)
            # the scores' batch is q's and k's only (v may broadcast them further afterwards)
            sb = tuple(broadcast(qb, kb)[1]) + ((q[-3],) if attrs["gqa"] else ())
            m, want = tuple(shapes[3]), sb + (q[-2], k[-2])
            if len(m) > len(want):
                return [False], ()
            cs += [any_of(d == 1, d == w) for d, w in zip(m[:-2], want[len(want) - len(m):-2])]
            cs += [m[-2] == q[-2], m[-1] == k[-2]]
        return cs, out

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        if attrs["is_causal"] and attrs["mask"] != "none":
            return [False]
        return self._shape(shapes, attrs)[0]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [self._shape(shapes, attrs)[1]]


SPECS: list[OpSpec] = [
    Pad(), Interpolate(), Linear(), MatMul(), Einsum(),
    Softmax("Softmax"), Softmax("LogSoftmax"), ScaledDotProductAttention(),
]
