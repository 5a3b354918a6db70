"""Arithmetic that works on plain ints and on z3 expressions alike.

Specs write their shape rules once with these helpers: the generator runs them
on z3 terms to solve, `Graph.validate` and the concrete fast path run them on
ints. Never branch in Python on a value that may be symbolic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import z3

Dim = Any  # int or z3.ArithRef
Cond = Any  # bool or z3.BoolRef


def is_sym(x: Any) -> bool:
    return isinstance(x, z3.ExprRef)


def fdiv(a: Dim, b: Dim) -> Dim:
    """Floor division for non-negative divisors (z3 Int '/' is Euclidean, equal there)."""
    if is_sym(a) or is_sym(b):
        return a / b
    return a // b


def cdiv(a: Dim, b: Dim) -> Dim:
    """Ceiling division for positive divisors."""
    return fdiv(a + b - 1, b)


def smin(a: Dim, b: Dim) -> Dim:
    if is_sym(a) or is_sym(b):
        return z3.If(a <= b, a, b)
    return min(a, b)


def smax(a: Dim, b: Dim) -> Dim:
    if is_sym(a) or is_sym(b):
        return z3.If(a >= b, a, b)
    return max(a, b)


def ite(c: Cond, a: Dim, b: Dim) -> Dim:
    if is_sym(c) or is_sym(a) or is_sym(b):
        return z3.If(c, a, b)
    return a if c else b


def any_of(*conds: Cond) -> Cond:
    if any(is_sym(c) for c in conds):
        return z3.Or(*conds)
    return any(conds)


def all_of(*conds: Cond) -> Cond:
    if any(is_sym(c) for c in conds):
        return z3.And(*conds)
    return all(conds)


def prod(dims: Iterable[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = out * d
    return out


def broadcast(a: tuple, b: tuple) -> tuple[list[Cond], tuple]:
    """Numpy broadcasting: (conditions, result shape). 1-sized dims stretch."""
    n = max(len(a), len(b))
    pa = (1,) * (n - len(a)) + tuple(a)
    pb = (1,) * (n - len(b)) + tuple(b)
    conds = [any_of(x == y, x == 1, y == 1) for x, y in zip(pa, pb) if not (_one(x) or _one(y))]
    shape = tuple(y if _one(x) else x if _one(y) else ite(x == 1, y, x) for x, y in zip(pa, pb))
    return conds, shape


def broadcast_all(shapes: list[tuple]) -> tuple[list[Cond], tuple]:
    conds: list[Cond] = []
    out = shapes[0]
    for s in shapes[1:]:
        c, out = broadcast(out, s)
        conds += c
    return conds, out


def _one(x: Dim) -> bool:
    return not is_sym(x) and x == 1


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis
