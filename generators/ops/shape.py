"""Shape operators: reshape, transpose, squeeze/unsqueeze, expand, slice, concat, split,
flatten, tile, flip, roll, tril/triu.

List-valued numeric attributes (reshape sizes, tile repeats, roll shifts, split sizes) are
solved by z3, so they live in `int_attrs` under indexed names (`s0`, `s1`, ...) and a
structural attribute records how many there are. Axes are structural and often negative.
"""

from __future__ import annotations

import random
from typing import Any

from generators.dtypes import ALL
from generators.spec import (
    Homogeneous,
    OpSpec,
    Plan,
    Shape,
    pick_axis,
    pick_rank,
    same_shape,
)
from generators.symbolic import Cond, Dim, cdiv, prod, smax, smin
from generators.symbolic import norm_axis as _norm


def ints(attrs: dict[str, Any], prefix: str, n: int) -> list[Dim]:
    """The indexed numeric attributes prefix0..prefix{n-1} as a list."""
    return [attrs[f"{prefix}{i}"] for i in range(n)]


def _axes_ok(axes: list[int], rank: int, distinct: bool = True) -> bool:
    normed = [_norm(a, rank) for a in axes]
    in_range = all(-rank <= a < rank for a in axes)
    return in_range and (not distinct or len(set(normed)) == len(normed))


def _maybe_neg(rng: random.Random, axes: list[int], rank: int) -> list[int]:
    return [a - rank if rng.random() < 0.4 else a for a in axes]


class Reshape(Homogeneous):
    """x.reshape(sizes); `infer_dim` (or None) is the one size passed as -1."""

    name = "Reshape"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r, q = pick_rank(rng), pick_rank(rng)
        infer_dim = rng.randrange(q) if q and rng.random() < 0.3 else None
        return Plan([r], [dtype], {"rank": q, "infer_dim": infer_dim}, {f"s{i}": (1, 8) for i in range(q)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        out = ints(attrs, "s", attrs["rank"])
        k = attrs["infer_dim"]
        return [k is None or 0 <= k < attrs["rank"]] + [d >= 1 for d in out] + [prod(out) == prod(shapes[0])]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(ints(attrs, "s", attrs["rank"]))]

    def propose(self, rng: random.Random, shapes: list[tuple[int, ...]], attrs: dict[str, Any]
                ) -> dict[str, int] | None:
        """Deal the prime factors of the element count randomly over the output dims."""
        q, n = attrs["rank"], prod(shapes[0])
        if q == 0:
            return {} if n == 1 else None
        sizes = [1] * q
        f = 2
        while n > 1:
            while n % f == 0:
                sizes[rng.randrange(q)] *= f
                n //= f
            f += 1
        return {f"s{i}": v for i, v in enumerate(sizes)}

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        r, q = in_ranks[0], len(out)
        if r == 0:
            return [()] if q == 0 else None
        if q == 0:
            return [(1,) * r]
        if r <= q:  # merge the trailing output dims into the last input dim
            return [tuple(out[:r - 1]) + (prod(out[r - 1:]),)]
        return None


class Transpose(Homogeneous):
    """x.permute(perm); perm entries may be negative (torch accepts them)."""

    name = "Transpose"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        perm = list(range(r))
        rng.shuffle(perm)
        if rng.random() < 0.3:
            perm = _maybe_neg(rng, perm, r)
        return Plan([r], [dtype], {"perm": perm})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        r, perm = len(shapes[0]), attrs["perm"]
        return [len(perm) == r and _axes_ok(perm, r)]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(shapes[0][p] for p in attrs["perm"])]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        r = in_ranks[0]
        inv = [0] * r
        for i, p in enumerate(attrs["perm"]):
            inv[_norm(p, r)] = i
        return [tuple(out[i] for i in inv)]


class Squeeze(Homogeneous):
    """torch.squeeze(x, dim) with an int dim or a tuple of dims, each of size 1."""

    name = "Squeeze"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1, 5)
        k = rng.choice([1, 1, 1, 2, 3]) if r > 1 else 1
        dims = _maybe_neg(rng, rng.sample(range(r), min(k, r)), r)
        as_tuple = len(dims) > 1 or rng.random() < 0.3
        return Plan([r], [dtype], {"dims": dims, "as_tuple": as_tuple})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        s, dims = shapes[0], attrs["dims"]
        ok = len(dims) >= 1 and _axes_ok(dims, len(s)) and (attrs["as_tuple"] or len(dims) == 1)
        return [ok] + ([s[d] == 1 for d in dims] if ok else [])

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        s = shapes[0]
        gone = {_norm(d, len(s)) for d in attrs["dims"]}
        return [tuple(d for i, d in enumerate(s) if i not in gone)]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        r = in_ranks[0]
        gone = {_norm(d, r) for d in attrs["dims"]}
        it = iter(out)
        return [tuple(1 if i in gone else next(it) for i in range(r))]


class Unsqueeze(Homogeneous):
    """torch.unsqueeze(x, dim), dim in [-rank-1, rank]."""

    name = "Unsqueeze"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 0, 4)
        return Plan([r], [dtype], {"dim": rng.randint(-r - 1, r)})

    @staticmethod
    def _pos(attrs: dict[str, Any], r: int) -> int:
        d = attrs["dim"]
        return d + r + 1 if d < 0 else d

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        r = len(shapes[0])
        return [-r - 1 <= attrs["dim"] <= r]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        s = tuple(shapes[0])
        p = self._pos(attrs, len(s))
        return [s[:p] + (1,) + s[p:]]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        p = self._pos(attrs, in_ranks[0])
        return [tuple(out[:p]) + tuple(out[p + 1:])]


class Expand(Homogeneous):
    """x.expand(sizes): new leading dims, size-1 dims stretched (`stretch`), -1 kept (`keep`)."""

    name = "Expand"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 0, 5)
        q = r if r == 5 or rng.random() < 0.5 else rng.randint(r + 1, min(5, r + 2))
        stretch = [rng.random() < 0.5 for _ in range(r)]
        keep = [not st and rng.random() < 0.3 for st in stretch]
        return Plan([r], [dtype], {"rank": q, "stretch": stretch, "keep": keep},
                    {f"s{i}": (1, 6) for i in range(q)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        s, q = shapes[0], attrs["rank"]
        r = len(s)
        ok = q >= r and len(attrs["stretch"]) == r and len(attrs["keep"]) == r
        if not ok:
            return [False]
        sizes = ints(attrs, "s", q)
        out: list[Cond] = [d >= 1 for d in sizes]
        for j in range(r):
            st, kp, want = attrs["stretch"][j], attrs["keep"][j], sizes[q - r + j]
            out.append(not (st and kp))
            out.append(s[j] == 1 if st else want == s[j])
        return out

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return [tuple(ints(attrs, "s", attrs["rank"]))]

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        r = in_ranks[0]
        lead = len(out) - r
        return [tuple(1 if st else out[lead + j] for j, st in enumerate(attrs["stretch"]))]


_BOUND_KINDS = ("none", "pos", "neg")


def slice_bounds(n: Dim, attrs: dict[str, Any], i: int) -> tuple[Dim, Dim, Dim]:
    """Clamped (start, end, step) of sliced dim number i (position in attrs["dims"]) of size n."""
    d = attrs["dims"][i]
    sk, ek = attrs["starts"][i], attrs["ends"][i]
    s = attrs.get(f"start{d}", 0)
    e = attrs.get(f"end{d}", 0)
    step = attrs[f"step{d}"] if attrs["steps"][i] else 1
    start = 0 if sk == "none" else smin(s, n) if sk == "pos" else smax(s + n, 0)
    end = n if ek == "none" else smin(e, n) if ek == "pos" else smax(e + n, 0)
    return start, end, step


class Slice(Homogeneous):
    """x[a:b:c, ...] on a subset of dims: bounds omitted, positive or negative, clamped; step >= 1.

    `ellipsis` writes the slice as x[..., tail] when every sliced dim is in the tail.
    """

    name = "Slice"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng, 1, 5)
        dims = sorted(rng.sample(range(r), rng.randint(1, min(r, 3))))
        starts = [rng.choice(_BOUND_KINDS) for _ in dims]
        ends = [rng.choice(_BOUND_KINDS) for _ in dims]
        steps = [rng.random() < 0.4 for _ in dims]
        ints_: dict[str, tuple[int, int]] = {}
        for d, sk, ek, st in zip(dims, starts, ends, steps):
            if sk != "none":
                ints_[f"start{d}"] = (0, 6) if sk == "pos" else (-7, -1)
            if ek != "none":
                ints_[f"end{d}"] = (1, 9) if ek == "pos" else (-6, -1)
            if st:
                ints_[f"step{d}"] = (1, 3)
        ellipsis = dims[0] > 0 and rng.random() < 0.5
        return Plan([r], [dtype], {"dims": dims, "starts": starts, "ends": ends, "steps": steps,
                                   "ellipsis": ellipsis}, ints_)

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        s, dims = shapes[0], attrs["dims"]
        n = len(dims)
        ok = (n >= 1 and dims == sorted(set(dims)) and all(0 <= d < len(s) for d in dims)
              and len(attrs["starts"]) == n and len(attrs["ends"]) == n and len(attrs["steps"]) == n
              and all(k in _BOUND_KINDS for k in attrs["starts"] + attrs["ends"]))
        if not ok:
            return [False]
        out: list[Cond] = []
        for i, d in enumerate(dims):
            if attrs["steps"][i]:
                out.append(attrs[f"step{d}"] >= 1)
            start, end, _ = slice_bounds(s[d], attrs, i)
            out.append(end - start >= 1)
        return out

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        out = list(shapes[0])
        for i, d in enumerate(attrs["dims"]):
            start, end, step = slice_bounds(out[d], attrs, i)
            out[d] = cdiv(end - start, step)
        return [tuple(out)]


class Concat(Homogeneous):
    """torch.cat(xs, dim) of 1-5 inputs; all other dims equal."""

    name = "Concat"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r, k = pick_rank(rng, 1, 5), rng.randint(1, 5)
        return Plan([r] * k, [dtype] * k, {"axis": pick_axis(rng, r)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        r = len(shapes[0])
        if not (all(len(s) == r for s in shapes) and _axes_ok([attrs["axis"]], r)):
            return [False]
        a = _norm(attrs["axis"], r)
        return [s[i] == shapes[0][i] for s in shapes[1:] for i in range(r) if i != a]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        a = _norm(attrs["axis"], len(shapes[0]))
        out = list(shapes[0])
        out[a] = sum((s[a] for s in shapes[1:]), shapes[0][a])
        return [tuple(out)]


class Split(OpSpec):
    """torch.split(x, sizes | chunk, dim) into `parts` outputs.

    mode "sizes": sizes size0.. summing to the dim; mode "chunk": equal chunks of `chunk`,
    the last one smaller, which needs ceil(n / chunk) == parts.
    """

    name = "Split"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r, k = pick_rank(rng, 1, 5), rng.randint(1, 5)
        mode = rng.choice(["sizes", "chunk"])
        ints_ = {f"size{i}": (1, 6) for i in range(k)} if mode == "sizes" else {"chunk": (1, 6)}
        return Plan([r], [dtype], {"axis": pick_axis(rng, r), "parts": k, "mode": mode}, ints_)

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        if len(in_dtypes) != 1 or in_dtypes[0] not in self.dtypes:
            return None
        return [in_dtypes[0]] * attrs["parts"]

    @staticmethod
    def sizes(n: Dim, attrs: dict[str, Any]) -> list[Dim]:
        k = attrs["parts"]
        if attrs["mode"] == "sizes":
            return ints(attrs, "size", k)
        c = attrs["chunk"]
        return [c] * (k - 1) + [n - (k - 1) * c]

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        s, k = shapes[0], attrs["parts"]
        if not (k >= 1 and attrs["mode"] in ("sizes", "chunk") and _axes_ok([attrs["axis"]], len(s))):
            return [False]
        n = s[_norm(attrs["axis"], len(s))]
        if attrs["mode"] == "sizes":
            sz = ints(attrs, "size", k)
            return [d >= 1 for d in sz] + [sum(sz[1:], sz[0]) == n]
        c = attrs["chunk"]
        return [c >= 1, (k - 1) * c < n, n <= k * c]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        s = list(shapes[0])
        a = _norm(attrs["axis"], len(s))
        return [tuple(s[:a] + [d] + s[a + 1:]) for d in self.sizes(s[a], attrs)]


class Flatten(Homogeneous):
    """torch.flatten(x, start_dim, end_dim); a scalar becomes a 1-element vector."""

    name = "Flatten"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        m = max(r, 1)
        s, e = sorted(rng.choices(range(m), k=2))
        s, e = (s - m if rng.random() < 0.4 else s), (e - m if rng.random() < 0.4 else e)
        return Plan([r], [dtype], {"start_dim": s, "end_dim": e})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        m = max(len(shapes[0]), 1)
        s, e = attrs["start_dim"], attrs["end_dim"]
        return [_axes_ok([s, e], m, distinct=False) and _norm(s, m) <= _norm(e, m)]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        x = tuple(shapes[0])
        if not x:
            return [(1,)]
        s, e = _norm(attrs["start_dim"], len(x)), _norm(attrs["end_dim"], len(x))
        return [x[:s] + (prod(x[s:e + 1]),) + x[e + 1:]]


class Tile(Homogeneous):
    """torch.tile(x, reps): the shorter of shape and reps is left-padded with ones."""

    name = "Tile"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        k = rng.randint(1, 5) if rng.random() < 0.4 else max(r, 1)
        return Plan([r], [dtype], {"n_reps": k}, {f"r{i}": (1, 3) for i in range(k)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        k = attrs["n_reps"]
        return [1 <= k <= 5] + [d >= 1 for d in ints(attrs, "r", k)]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        x, reps = list(shapes[0]), ints(attrs, "r", attrs["n_reps"])
        q = max(len(x), len(reps))
        x = [1] * (q - len(x)) + x
        reps = [1] * (q - len(reps)) + reps
        return [tuple(d * t for d, t in zip(x, reps))]


class Flip(Homogeneous):
    """torch.flip(x, dims)."""

    name = "Flip"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        dims = _maybe_neg(rng, rng.sample(range(r), rng.randint(1, r)), r) if r else []
        return Plan([r], [dtype], {"dims": dims})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return [_axes_ok(attrs["dims"], len(shapes[0]))]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return same_shape(shapes[0])

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out)]


class Roll(Homogeneous):
    """torch.roll(x, shifts, dims): dims None rolls the flattened tensor; dims may repeat (shifts add).

    Shifts may be negative or exceed the dim. `as_int` passes a single shift/dim as plain ints.
    """

    name = "Roll"
    dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        r = pick_rank(rng)
        if r == 0 or rng.random() < 0.2:
            dims, k = None, 1
        else:
            k = rng.randint(1, min(r, 3))
            dims = _maybe_neg(rng, rng.sample(range(r), k), r)
            if rng.random() < 0.15:
                dims.append(rng.choice(dims))
                k += 1
        as_int = k == 1 and rng.random() < 0.5
        return Plan([r], [dtype], {"dims": dims, "n_shifts": k, "as_int": as_int},
                    {f"sh{i}": (-7, 7) for i in range(k)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        dims, k = attrs["dims"], attrs["n_shifts"]
        if dims is None:
            return [k == 1]
        return [len(dims) == k >= 1 and _axes_ok(dims, len(shapes[0]), distinct=False)]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return same_shape(shapes[0])

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out)]


class Triangle(Homogeneous):
    """torch.tril / torch.triu(x, diagonal) on the last two dims (batched)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtypes = ALL

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        return Plan([pick_rank(rng, 2, 5)], [dtype], {}, {"diagonal": (-4, 4)})

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        return [len(shapes[0]) >= 2]

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        return same_shape(shapes[0])

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        return [tuple(out)]


SPECS: list[OpSpec] = [
    Reshape(), Transpose(), Squeeze(), Unsqueeze(), Expand(), Slice(), Concat(), Split(),
    Flatten(), Tile(), Flip(), Roll(), Triangle("Tril"), Triangle("Triu"),
]
