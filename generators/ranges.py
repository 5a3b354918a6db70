"""Value ranges: a conservative interval per tensor, propagated through ops at generation time.

Why: value search can only move leaves, so an op with an input domain (Log needs positive
inputs) placed on an intermediate whose values can never enter that domain (Log(Relu(-|x|)),
Rsqrt(LogSoftmax(x)) over a size-1 axis) makes a graph no inputs can keep finite. The
generator asks `reachable` before wiring a tensor into a domain slot, and refuses the wiring
when the tensor's interval misses the domain.

An `Interval` over-approximates the values a tensor can hold ([lo, hi], closed, infinities
allowed). Three facts hold of every instance instead, and catch what bounds cannot: `has`
lists values always present (the zeros Tril writes), `below` is a value some element is at
most and `above` one some element is at least (a LayerNorm row has elements on both sides of
0, a softmax over n on both sides of 1/n): a domain that excludes such a value is out of
reach however the leaves are drawn. An op with no rule here gives the unbounded interval with
no facts, which never refuses anything, so a missing or loose rule costs no variety, only a
little validity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from generators.dtypes import FLOATS
from generators.ir import Graph, TensorType
from generators.spec import Domain

INF = math.inf
NONZERO_EPS = 0.25  # "nonzero" keeps |x| >= this
EXP_LIMIT = 8.0  # exp(8) ~ 3e3: float16 survives a product or two of it
# Float domains as closed intervals (value search checks exactly these); "nonzero" also excludes
# (-NONZERO_EPS, NONZERO_EPS).
DOMAIN_INTERVALS: dict[str, tuple[float, float]] = {
    "positive": (0.05, INF), "nonneg": (0.0, INF), "unit": (-0.99, 0.99),
    "exp_safe": (-INF, EXP_LIMIT), "small": (-3.0, 3.0), "nonzero": (-INF, INF)}
# Integer leaves are drawn in [-span, span] and value search never moves them.
INT_SPAN = {"int8": 10, "int32": 20, "int64": 20}
_INT_LIMITS = {"int8": (-128, 127), "int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}


@dataclass(frozen=True)
class Interval:
    """Values a tensor may hold: within [lo, hi]. Every value in `has` is (almost) surely present;
    some element is <= `below` and some element is >= `above` (INF / -INF: nothing known)."""

    lo: float = -INF
    hi: float = INF
    has: tuple[float, ...] = ()
    below: float = INF
    above: float = -INF

    def hull(self, other: Interval, keep: bool = False) -> Interval:
        """The smallest interval holding both; `keep`: all of both is present (concatenation)."""
        if keep:
            return _make(min(self.lo, other.lo), max(self.hi, other.hi), set(self.has) | set(other.has),
                         min(self.below, other.below), max(self.above, other.above))
        return _make(min(self.lo, other.lo), max(self.hi, other.hi))

    def clip(self, lo: float, hi: float) -> Interval:
        """Intersected with [lo, hi] (the values an op with that domain actually sees)."""
        nlo, nhi = max(self.lo, lo), min(self.hi, hi)
        if nlo > nhi:  # disjoint: the op is unreachable anyway; stay conservative
            return self
        return _make(nlo, nhi, self.has, self.below, self.above)

    def bounds(self) -> Interval:
        """The same bounds, none of the facts (for ops that keep only some of the elements)."""
        return Interval(self.lo, self.hi)


TOP = Interval()
UNIT_BOOL = Interval(0.0, 1.0)


def _fix(lo: float, hi: float) -> tuple[float, float]:
    lo, hi = float(lo), float(hi)
    return (-INF if math.isnan(lo) else lo), (INF if math.isnan(hi) else hi)


def _make(lo: float, hi: float, has: Iterable[float] = (), below: float = INF, above: float = -INF) -> Interval:
    """A canonical Interval: NaN bounds widened, facts that say nothing (below >= hi) dropped."""
    lo, hi = _fix(lo, hi)
    if lo > hi:
        return TOP
    below = INF if math.isnan(below) or below >= hi else max(float(below), lo)
    above = -INF if math.isnan(above) or above <= lo else min(float(above), hi)
    return Interval(lo, hi, tuple(sorted({float(c) for c in has if not math.isnan(c) and lo <= c <= hi})),
                    below, above)


def leaf_interval(dtype: str, domain: Domain | None = None) -> Interval:
    """What value search may give a leaf: integers in their sampling span, floats anywhere (the
    gradient search moves them), both narrowed by the domain the leaf was made for."""
    if isinstance(domain, tuple) and domain[0] == "range":
        return Interval(float(domain[1]), float(domain[2]))
    if dtype == "bool":
        return UNIT_BOOL
    if dtype in INT_SPAN:
        span = float(INT_SPAN[dtype])
        iv = Interval(-span, span)
        if domain == "positive":
            return Interval(1.0, span)
        if isinstance(domain, str) and domain in DOMAIN_INTERVALS:
            lo, hi = DOMAIN_INTERVALS[domain]
            return iv.clip(float(np.ceil(lo)), float(np.floor(hi)))
        return iv
    if isinstance(domain, str) and domain in DOMAIN_INTERVALS:
        return Interval(*DOMAIN_INTERVALS[domain])
    return TOP


def reachable(iv: Interval, dom: Domain, dtype: str) -> bool:
    """Can every element of a tensor with interval `iv` lie inside `dom` (as value search checks it)?

    The overlap must have some width unless `iv` is a single point: values pinned against a bound
    from outside (a LogSoftmax, <= 0, feeding Sqrt) would all have to sit exactly on it."""
    if isinstance(dom, tuple):
        lo, hi = float(dom[1]), float(dom[2])
        return max(iv.lo, lo) <= min(iv.hi, hi) and all(lo <= c <= hi for c in iv.has)
    if dtype not in FLOATS:  # value search only checks integers for zeros
        if dom not in ("positive", "nonzero"):
            return True
        return not (iv.lo == iv.hi == 0.0) and 0.0 not in iv.has
    if dom == "nonzero":
        return (iv.hi >= NONZERO_EPS or iv.lo <= -NONZERO_EPS) and all(abs(c) >= NONZERO_EPS for c in iv.has)
    lo, hi = DOMAIN_INTERVALS[dom]
    olo, ohi = max(iv.lo, lo), min(iv.hi, hi)
    overlap = olo < ohi or (olo == ohi and (iv.lo == iv.hi or lo == hi))
    return overlap and all(lo <= c <= hi for c in iv.has) and iv.below >= lo and iv.above <= hi


# -- scalar functions (numpy float64: overflow gives inf, not an exception) ------------------------

def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.float64(x))))


def _softsign(x: float) -> float:
    return math.copysign(1.0, x) if math.isinf(x) else x / (1.0 + abs(x))


def _gelu(x: float) -> float:
    return 0.0 if x == -INF else (x if x == INF else 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))))


def _gelu_tanh(x: float) -> float:
    if math.isinf(x):
        return 0.0 if x < 0 else x
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def _silu(x: float) -> float:
    return 0.0 if x == -INF else x * _sigmoid(x)


def _mish(x: float) -> float:
    return 0.0 if x == -INF else x * math.tanh(float(np.logaddexp(0.0, x)))


def _hardswish(x: float) -> float:
    return x * min(max(x + 3.0, 0.0), 6.0) / 6.0 if x > -3.0 else 0.0


def _elu(alpha: float) -> Callable[[float], float]:
    return lambda x: x if x > 0 else alpha * float(np.expm1(np.float64(x)))


def _celu(alpha: float) -> Callable[[float], float]:
    return lambda x: x if x > 0 else alpha * float(np.expm1(np.float64(x) / alpha))


_SELU_A, _SELU_S = 1.6732632423543772, 1.0507009873554805


def _np(fn: Any) -> Callable[[float], float]:
    return lambda x: float(fn(np.float64(x)))


# Increasing functions, with the input interval they are defined on (the op's domain).
_INCREASING: dict[str, Callable[[float], float]] = {
    "Exp": _np(np.exp), "Expm1": _np(np.expm1), "Log": _np(np.log), "Log1p": _np(np.log1p),
    "Sqrt": _np(np.sqrt), "Tanh": _np(np.tanh), "Atan": _np(np.arctan), "Asin": _np(np.arcsin),
    "Sinh": _np(np.sinh), "Erf": math.erf, "Floor": _np(np.floor), "Ceil": _np(np.ceil),
    "Round": _np(np.round), "Sign": _np(np.sign), "Relu": lambda x: max(x, 0.0),
    "Relu6": lambda x: min(max(x, 0.0), 6.0), "Sigmoid": _sigmoid, "Softsign": _softsign,
    "Softplus": _np(lambda x: np.logaddexp(0.0, x)), "Hardsigmoid": lambda x: min(max(x / 6.0 + 0.5, 0.0), 1.0),
    "Selu": lambda x: _SELU_S * (x if x > 0 else _SELU_A * float(np.expm1(np.float64(x)))),
}
_DECREASING: dict[str, Callable[[float], float]] = {
    "Neg": lambda x: -x, "Rsqrt": _np(lambda x: 1.0 / np.sqrt(x)), "Acos": _np(np.arccos),
}
# One minimum at m, decreasing before it (towards 0 at -inf), increasing after.
_DIPS: dict[str, tuple[float, Callable[[float], float]]] = {
    "Silu": (-1.2784645, _silu), "Mish": (-1.1923772, _mish), "Hardswish": (-1.5, _hardswish),
}
_DIP_SLACK = 1e-4  # the tabulated minimum points are rounded
# Even functions with their minimum at 0.
_EVEN: dict[str, Callable[[float], float]] = {
    "Abs": abs, "Square": lambda x: x * x, "Cosh": _np(np.cosh),
}


def _known(f: Callable[[float], float], c: float, none: float) -> float:
    """f(c) for a fact's value c, keeping "nothing known" (an infinite c) as `none`."""
    return f(c) if math.isfinite(c) else none


def _monotone(f: Callable[[float], float], iv: Interval, increasing: bool = True) -> Interval:
    """A non-decreasing (or non-increasing) f maps bounds to bounds and facts to facts."""
    has = [f(c) for c in iv.has]
    if increasing:
        return _make(f(iv.lo), f(iv.hi), has, _known(f, iv.below, INF), _known(f, iv.above, -INF))
    return _make(f(iv.hi), f(iv.lo), has, _known(f, iv.above, INF), _known(f, iv.below, -INF))


def _dip(m: float, f: Callable[[float], float], iv: Interval) -> Interval:
    """f <= 0 left of 0 (falling to f(m), then rising), increasing right of m."""
    if iv.lo >= m:
        return _monotone(f, iv)
    lo = f(iv.hi) if iv.hi <= m else f(m) - _DIP_SLACK
    below = _known(f, max(iv.below, 0.0), INF)  # an element <= c < 0 maps to <= 0 = f(0)
    above = _known(f, iv.above, -INF) if iv.above >= m else -INF
    return _make(lo, max(f(iv.lo), f(iv.hi)), [f(c) for c in iv.has], below, above)


def _even(f: Callable[[float], float], iv: Interval) -> Interval:
    """Even, increasing in |x|: an element <= c <= 0 or >= c >= 0 maps to one >= f(c)."""
    if iv.lo >= 0:
        return _monotone(f, iv)
    if iv.hi <= 0:
        return _monotone(f, iv, increasing=False)
    facts = [f(c) for c in (iv.below,) if c <= 0 and math.isfinite(c)]
    facts += [f(c) for c in (iv.above,) if c >= 0 and math.isfinite(c)]
    return _make(f(0.0), max(f(iv.lo), f(iv.hi)), [f(c) for c in iv.has], INF, max(facts, default=-INF))


def _periodic(fn: Callable[[float], float], offset: float, iv: Interval) -> Interval:
    """sin/cos: endpoints plus every extremum (offset + k*pi) inside the interval."""
    if not (math.isfinite(iv.lo) and math.isfinite(iv.hi)) or iv.hi - iv.lo >= 2 * math.pi:
        return _make(-1.0, 1.0, (fn(c) for c in iv.has if math.isfinite(c)))
    vals = [fn(iv.lo), fn(iv.hi)]
    k = math.ceil((iv.lo - offset) / math.pi)
    while offset + k * math.pi <= iv.hi:
        vals.append(fn(offset + k * math.pi))
        k += 1
    return _make(min(vals), max(vals), (fn(c) for c in iv.has))


def _reciprocal(iv: Interval) -> Interval:
    """1/x for x kept at |x| >= NONZERO_EPS: each signed part maps decreasingly."""
    parts = []
    if iv.hi >= NONZERO_EPS:
        parts.append(_monotone(_np(lambda x: 1.0 / x), Interval(max(iv.lo, NONZERO_EPS), iv.hi), False))
    if iv.lo <= -NONZERO_EPS:
        parts.append(_monotone(_np(lambda x: 1.0 / x), Interval(iv.lo, min(iv.hi, -NONZERO_EPS)), False))
    if not parts:
        return TOP
    out = parts[0] if len(parts) == 1 else parts[0].hull(parts[1])
    return _make(out.lo, out.hi, (1.0 / c for c in iv.has if c != 0))


def _unary(op: str, iv: Interval, attrs: dict[str, Any]) -> Interval:
    if op in _INCREASING:
        return _monotone(_INCREASING[op], iv)
    if op in _DECREASING:
        return _monotone(_DECREASING[op], iv, increasing=False)
    if op in _DIPS:
        return _dip(*_DIPS[op], iv)
    if op in _EVEN:
        return _even(_EVEN[op], iv)
    if op == "Sin":
        return _periodic(math.sin, math.pi / 2, iv)
    if op == "Cos":
        return _periodic(math.cos, 0.0, iv)
    if op == "Reciprocal":
        return _reciprocal(iv)
    if op == "Gelu":
        return _dip(-0.7517916, _gelu if attrs.get("approximate") != "tanh" else _gelu_tanh, iv)
    if op == "LeakyRelu":
        s = float(attrs["negative_slope"])
        return _monotone(lambda x: x if x >= 0 else s * x, iv)
    if op == "Elu":
        return _monotone(_elu(float(attrs["alpha"])), iv)
    if op == "Celu":
        return _monotone(_celu(float(attrs["alpha"])), iv)
    if op == "Hardtanh":
        lo, hi = attrs["bounds"]
        return _monotone(lambda x: min(max(x, float(lo)), float(hi)), iv)
    if op == "Clip":
        lo, hi = float(attrs["min"]), float(attrs["max"])
        return _monotone(lambda x: min(max(x, lo), hi), iv)
    if op == "Not":
        return _make(1.0 - iv.hi, 1.0 - iv.lo, (1.0 - c for c in iv.has))
    return TOP


# The op's own input domain bounds what it sees (value search keeps it inside).
_UNARY_DOMAIN = {"Log": "positive", "Rsqrt": "positive", "Log1p": "nonneg", "Sqrt": "nonneg",
                 "Asin": "unit", "Acos": "unit", "Exp": "exp_safe", "Expm1": "exp_safe",
                 "Sinh": "exp_safe", "Cosh": "exp_safe"}


# -- binary -------------------------------------------------------------------------------------

def _mul(a: float, b: float) -> float:
    return 0.0 if a == 0 or b == 0 else a * b


def _times(a: Interval, b: Interval) -> Interval:
    ps = [_mul(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    return _make(min(ps), max(ps))


def _binary(op: str, a: Interval, b: Interval) -> Interval:
    if op == "Add":
        return _make(a.lo + b.lo, a.hi + b.hi)
    if op == "Sub":
        return _make(a.lo - b.hi, a.hi - b.lo)
    if op == "Mul":
        return _times(a, b)
    if op == "Div":
        return _times(a, _reciprocal(b))
    if op == "FloorDiv":
        q = _times(a, _reciprocal(b))
        return _make(math.floor(q.lo) if math.isfinite(q.lo) else q.lo,
                     math.floor(q.hi) if math.isfinite(q.hi) else q.hi)
    if op == "Pow":  # a kept positive, b small: exp(b * log a), monotone in each factor
        base = a.clip(*DOMAIN_INTERVALS["positive"])
        logs = _make(*_fix(np.log(np.float64(base.lo)), np.log(np.float64(base.hi))))
        e = _times(logs, b.clip(*DOMAIN_INTERVALS["small"]))
        return _make(float(np.exp(np.float64(e.lo))), float(np.exp(np.float64(e.hi))))
    if op == "Maximum":
        return _make(max(a.lo, b.lo), max(a.hi, b.hi), above=max(a.above, b.above))
    if op == "Minimum":
        return _make(min(a.lo, b.lo), min(a.hi, b.hi), below=min(a.below, b.below))
    if op == "Mod":  # remainder takes the divisor's sign and stays below its magnitude
        return _make(min(b.lo, 0.0), max(b.hi, 0.0))
    return TOP


_BOOL_OUT = {"Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "And", "Or", "Xor",
             "OneHot"}
# Ops whose outputs hold only (copies of) their first input's values.
# Ops whose outputs hold every one of their first input's values (all facts carry over).
_MOVES = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Expand", "Flatten", "Tile", "Flip", "Roll"}
# Ops that pick some of them: the bounds carry over, and (a heuristic) the values always present.
_PICKS = {"Slice", "Split", "Gather", "GatherElements", "IndexSelect"}
# Ops whose outputs hold a subset or convex combinations of their first input's values; a min keeps
# an element <= below, a max (over windows covering everything) one >= above.
_WITHIN = {"MaxPool", "AdaptiveAvgPool", "ReduceMean"}
_MIN_LIKE = {"ReduceMin"}
_MAX_LIKE = {"ReduceMax", "AdaptiveMaxPool"}


def _axis_len(t: TensorType, axis: int) -> int:
    return t.shape[axis] if t.shape else 1


def _count(t: TensorType, axes: list[int] | None) -> int:
    if axes is None:
        return t.numel()
    n = 1
    for a in axes:
        n *= t.shape[a]
    return n


def _softmax(op: str, iv: Interval, n: int) -> Interval:
    """Each element is 1 / (1 + sum of n-1 terms e^(x_j - x_i)), each term in [e^(lo-hi), e^(hi-lo)]."""
    if n == 1:
        v = 1.0 if op == "Softmax" else 0.0
        return Interval(v, v, (v,))
    spread = iv.hi - iv.lo if math.isfinite(iv.hi - iv.lo) else INF
    lo_p = 1.0 / (1.0 + (n - 1) * float(np.exp(np.float64(spread))))
    hi_p = 1.0 / (1.0 + (n - 1) * float(np.exp(np.float64(-spread))))
    # the probabilities average 1/n: some are at most that, some at least
    if op == "Softmax":
        return _make(lo_p, hi_p, (), 1.0 / n, 1.0 / n)
    mid = -math.log(n)
    return _make(float(np.log(np.float64(lo_p))), float(np.log(np.float64(hi_p))), (), mid, mid)


def _triangle(op: str, iv: Interval, t: TensorType, d: int) -> Interval:
    m, n = t.shape[-2], t.shape[-1]
    zeros = d < n - 1 if op == "Tril" else d > 1 - m
    return _make(min(iv.lo, 0.0), max(iv.hi, 0.0), iv.has + (0.0,)) if zeros else iv


def _pad(iv: Interval, attrs: dict[str, Any]) -> Interval:
    pads = [attrs[f"pad{i}"] for i in range(2 * attrs["k"])]
    kept = iv if all(p >= 0 for p in pads) else _make(iv.lo, iv.hi, iv.has)  # a negative pad crops
    if attrs["mode"] != "constant" or not any(p > 0 for p in pads):
        return kept
    v = float(attrs["value"])
    return kept.hull(Interval(v, v, (v,)), keep=True)


def _reduce(op: str, iv: Interval, t: TensorType, attrs: dict[str, Any]) -> Interval:
    axes = attrs["axes"]
    c = _count(t, None if axes is None else [a % max(t.rank, 1) for a in axes])
    if op == "ReduceSum":
        return _make(_mul(c, iv.lo), _mul(c, iv.hi))
    if op == "ReduceLogSumExp":  # between max(x) and max(x) + log c, and at least min(x) + log c
        return _make(iv.lo + math.log(max(c, 1)), iv.hi + math.log(max(c, 1)))
    if op == "ReduceL2":
        m = max(abs(iv.lo), abs(iv.hi))
        low = 0.0 if iv.lo <= 0 <= iv.hi else min(abs(iv.lo), abs(iv.hi))
        return _make(math.sqrt(c) * low, math.sqrt(c) * m)
    if op == "ReduceProd":
        x = iv.clip(*DOMAIN_INTERVALS["small"]) if t.dtype in FLOATS else iv
        if x.lo >= 0:
            return _make(float(np.power(np.float64(x.lo), c)), float(np.power(np.float64(x.hi), c)))
        m = float(np.power(np.float64(max(-x.lo, abs(x.hi))), c))
        return _make(-m, m)
    return TOP


def _cumsum(iv: Interval, n: int, exclusive: bool) -> Interval:
    lo, hi = min(iv.lo, _mul(n, iv.lo)), max(iv.hi, _mul(n, iv.hi))
    if exclusive:
        return _make(min(lo, 0.0), max(hi, 0.0), (0.0,))
    return _make(lo, hi)


def _cast(iv: Interval, src: str, to: str) -> Interval:
    if to == "bool":
        if iv.lo > 0 or iv.hi < 0:
            return Interval(1.0, 1.0)
        return Interval(0.0, 0.0) if iv.lo == iv.hi == 0 else UNIT_BOOL
    if to in _INT_LIMITS:
        lo, hi = (math.trunc(v) if math.isfinite(v) else v for v in (iv.lo, iv.hi))
        lim = _INT_LIMITS[to]
        if lo < lim[0] or hi > lim[1]:  # wraps around
            return _make(*lim)
        return _make(lo, hi, [float(math.trunc(c)) for c in iv.has],
                     _known(math.trunc, iv.below, INF), _known(math.trunc, iv.above, -INF))
    return iv


def _avg_pool(iv: Interval, attrs: dict[str, Any]) -> Interval:
    if attrs.get("divisor_override") is not None:
        return TOP
    padded = any(attrs.get(f"pad{i}", 0) > 0 for i in range(attrs["rank"])) or attrs.get("ceil_mode")
    return iv.hull(Interval(0.0, 0.0)) if attrs.get("count_include_pad") and padded else _make(iv.lo, iv.hi)


def _norm(op: str, iv: Interval, t: TensorType, attrs: dict[str, Any]) -> Interval:
    """Unscaled LayerNorm/RMSNorm outputs are bounded by sqrt(count). A centred group (LayerNorm,
    GroupNorm, InstanceNorm: at least two elements each) has elements on both sides of 0, unless a
    shift moves it or LayerNorm's per-element scale unbalances it."""
    if attrs.get("bias"):
        return TOP
    if op == "InstanceNorm" or (op == "GroupNorm" and not attrs.get("weight")):
        return Interval(below=0.0, above=0.0)
    if attrs.get("weight") or op not in ("LayerNorm", "RMSNorm"):
        return TOP
    c = 1
    for d in t.shape[t.rank - attrs["num_dims"]:]:
        c *= d
    m = math.sqrt(c)
    return _make(-m, m) if op == "RMSNorm" else _make(-m, m, (), 0.0, 0.0)


def transfer(op: str, ins: list[Interval], in_types: list[TensorType], attrs: dict[str, Any],
             out_types: list[TensorType]) -> list[Interval]:
    """Intervals of an op's outputs from its inputs' intervals (unbounded when no rule applies)."""
    try:
        with np.errstate(all="ignore"):
            outs = _transfer(op, ins, in_types, attrs, out_types)
    except (ArithmeticError, ValueError, KeyError, IndexError, TypeError):
        outs = [TOP] * len(out_types)
    return [_dtype_bound(iv, t.dtype) for iv, t in zip(outs, out_types)]


def _dtype_bound(iv: Interval, dtype: str) -> Interval:
    """Bools are 0/1; integers that may leave their dtype wrap around to anything."""
    if dtype == "bool":
        return iv.clip(0.0, 1.0) if iv.lo <= 1 and iv.hi >= 0 else UNIT_BOOL
    if dtype in _INT_LIMITS:
        lo, hi = _INT_LIMITS[dtype]
        return iv if lo <= iv.lo and iv.hi <= hi else Interval(float(lo), float(hi))
    return iv


def _transfer(op: str, ins: list[Interval], in_types: list[TensorType], attrs: dict[str, Any],
              out_types: list[TensorType]) -> list[Interval]:
    n_out = len(out_types)
    x = ins[0] if ins else TOP
    if op in _UNARY_DOMAIN and in_types[0].dtype in FLOATS:
        x = x.clip(*DOMAIN_INTERVALS[_UNARY_DOMAIN[op]])
    if op in _BOOL_OUT:
        return [UNIT_BOOL] * n_out
    if op in _MOVES:
        return [x] * n_out
    if op in _PICKS:
        return [_make(x.lo, x.hi, x.has)] * n_out
    if op in _WITHIN:
        return [x.bounds()] * n_out
    if op in _MIN_LIKE:
        return [_make(x.lo, x.hi, below=x.below)]
    if op in _MAX_LIKE:
        return [_make(x.lo, x.hi, above=x.above)]
    if len(ins) == 1 and out_types[0].dtype == in_types[0].dtype and n_out == 1 and op not in _SHAPED:
        return [_unary(op, x, attrs)]
    if op in ("Add", "Sub", "Mul", "Div", "FloorDiv", "Pow", "Maximum", "Minimum", "Mod"):
        return [_binary(op, x, ins[1])]
    return _SHAPED.get(op, _top)(op, ins, in_types, attrs, n_out)


def _top(op: str, ins: list[Interval], in_types: list[TensorType], attrs: dict[str, Any], n: int) -> list[Interval]:
    return [TOP] * n


def _arg_index(op: str, ins: list[Interval], in_types: list[TensorType], attrs: dict[str, Any],
               n: int) -> list[Interval]:
    return [_make(0, _axis_len(in_types[0], attrs["axis"]) - 1)]


def _ordered(op: str, ins: list[Interval], in_types: list[TensorType], attrs: dict[str, Any],
             n: int) -> list[Interval]:
    values = ins[0] if op == "Sort" else ins[0].bounds()  # a sort keeps every value, top-k some
    return [values, _make(0, _axis_len(in_types[0], attrs["axis"]) - 1)]


_SHAPED: dict[str, Callable[[str, list[Interval], list[TensorType], dict[str, Any], int], list[Interval]]] = {
    "Softmax": lambda op, i, t, a, n: [_softmax(op, i[0], _axis_len(t[0], a["axis"]))],
    "LogSoftmax": lambda op, i, t, a, n: [_softmax(op, i[0], _axis_len(t[0], a["axis"]))],
    "Tril": lambda op, i, t, a, n: [_triangle(op, i[0], t[0], a["diagonal"])],
    "Triu": lambda op, i, t, a, n: [_triangle(op, i[0], t[0], a["diagonal"])],
    "Pad": lambda op, i, t, a, n: [_pad(i[0], a)],
    "ReduceSum": lambda op, i, t, a, n: [_reduce(op, i[0], t[0], a)],
    "ReduceLogSumExp": lambda op, i, t, a, n: [_reduce(op, i[0], t[0], a)],
    "ReduceL2": lambda op, i, t, a, n: [_reduce(op, i[0], t[0], a)],
    "ReduceProd": lambda op, i, t, a, n: [_reduce(op, i[0], t[0], a)],
    "ArgMax": _arg_index, "ArgMin": _arg_index, "TopK": _ordered, "Sort": _ordered,
    "CumSum": lambda op, i, t, a, n: [_cumsum(i[0], _axis_len(t[0], a["axis"]), bool(a["exclusive"]))],
    "Cast": lambda op, i, t, a, n: [_cast(i[0], t[0].dtype, a["to"])],
    "Clip": lambda op, i, t, a, n: [_unary(op, i[0], a)],
    "Where": lambda op, i, t, a, n: [i[1].hull(i[2])],
    "Concat": lambda op, i, t, a, n: [_concat(i)],
    "Embedding": lambda op, i, t, a, n: [_make(i[0].lo, i[0].hi)],
    "ScaledDotProductAttention": lambda op, i, t, a, n: [_make(i[2].lo, i[2].hi)],
    "AvgPool": lambda op, i, t, a, n: [_avg_pool(i[0], a)],
    "Interpolate": lambda op, i, t, a, n: [TOP if a["mode"] == "bicubic" else _make(i[0].lo, i[0].hi)],
    "LayerNorm": lambda op, i, t, a, n: [_norm(op, i[0], t[0], a)],
    "RMSNorm": lambda op, i, t, a, n: [_norm(op, i[0], t[0], a)],
    "GroupNorm": lambda op, i, t, a, n: [_norm(op, i[0], t[0], a)],
    "InstanceNorm": lambda op, i, t, a, n: [_norm(op, i[0], t[0], a)],
    "PRelu": lambda op, i, t, a, n: [_prelu(i[0], i[1])],
}


def _concat(ins: list[Interval]) -> Interval:
    out = ins[0]
    for iv in ins[1:]:
        out = out.hull(iv, keep=True)
    return out


def _prelu(x: Interval, slope: Interval) -> Interval:
    pos = _make(max(x.lo, 0.0), max(x.hi, 0.0))
    if x.lo >= 0:
        return x
    return pos.hull(_times(_make(min(x.lo, 0.0), min(x.hi, 0.0)), slope))


def graph_intervals(graph: Graph) -> dict[str, Interval]:
    """Every tensor's interval in a concrete graph, its leaves drawn as value search draws them
    (inside the domains of all their consumers)."""
    from generators.ops import get_spec  # late: the registry imports the specs, which import ir

    values = {t: leaf_interval(graph.tensors[t].dtype) for t in graph.inputs + graph.weights}
    ranged: set[str] = set()  # index leaves: drawn in their range, whatever their dtype's span
    for n in graph.nodes:
        for i, dom in get_spec(n.op).domains([graph.tensors[t] for t in n.inputs], n.attrs).items():
            t = n.inputs[i]
            if t not in values:  # not a leaf
                continue
            narrow = leaf_interval(graph.tensors[t].dtype, dom)
            if isinstance(dom, tuple) and t not in ranged:
                ranged.add(t)
                values[t] = narrow
            else:
                values[t] = values[t].clip(narrow.lo, narrow.hi)
    for n in graph.topological_nodes():
        outs = transfer(n.op, [values[t] for t in n.inputs], [graph.tensors[t] for t in n.inputs], n.attrs,
                        [graph.tensors[t] for t in n.outputs])
        values.update(zip(n.outputs, outs))
    return values


def unreachable_domains(graph: Graph) -> list[str]:
    """"node: input i" for every domain the graph's intervals say no leaf values can satisfy."""
    from generators.ops import get_spec

    values = graph_intervals(graph)
    out = []
    for n in graph.nodes:
        for i, dom in get_spec(n.op).domains([graph.tensors[t] for t in n.inputs], n.attrs).items():
            if not reachable(values[n.inputs[i]], dom, graph.tensors[n.inputs[i]].dtype):
                out.append(f"{n.name}: input {i} ({dom})")
    return out
