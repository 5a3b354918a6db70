"""The operator-spec contract: one declarative spec per operator family.

A spec imports neither torch nor TF. It states, for a random `Plan` (input
ranks and dtypes, structural attributes, numeric attribute domains), the
validity constraints and the output shapes as functions that run on ints and on
z3 terms alike (see `generators.symbolic`), plus an optional backward rule.
Framework code lives in the lowerings (`generators/lower_*`), keyed by name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from generators.ir import GraphError, TensorType
from generators.symbolic import Cond, Dim

Shape = tuple  # of Dim

# Value domains a spec may ask of an input (value search honours them):
#   positive (>0), nonneg (>=0), nonzero (|x| bounded away from 0), unit (|x| < 1),
#   exp_safe (x small enough that exp/sinh/cosh stay finite in float16), small (|x| <= 3),
#   or a tuple ("range", lo, hi): integers in [lo, hi] inclusive (indices; only for leaf inputs).
DOMAINS = ("positive", "nonneg", "nonzero", "unit", "exp_safe", "small")
Domain = Any  # str from DOMAINS or ("range", lo, hi)


@dataclass
class Plan:
    """One concrete choice of how to instantiate a spec, before shapes are solved.

    in_ranks/in_dtypes: one entry per input. attrs: structural attributes (fixed
    Python values: axes, modes, equations). int_attrs: numeric attributes that z3
    solves, name -> inclusive (lo, hi). fresh: input positions that must be new
    leaves ("weight" for parameters such as a conv kernel, "leaf" for either).
    domains: input position -> value domain from DOMAINS.
    """

    in_ranks: list[int]
    in_dtypes: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    int_attrs: dict[str, tuple[int, int]] = field(default_factory=dict)
    fresh: dict[int, str] = field(default_factory=dict)


class OpSpec:
    """Base of all specs. Subclasses set `name` and implement `plan` and `infer`."""

    name: str = ""
    # The primary dtypes this spec is generated for (every one is conformance-tested).
    dtypes: tuple[str, ...] = ()
    # Outputs hold indices (or values) whose order among equal inputs is unspecified.
    tie_sensitive: ClassVar[bool] = False

    def plan(self, rng: random.Random, dtype: str) -> Plan:
        """A random instantiation whose primary dtype is `dtype` (one of `self.dtypes`)."""
        raise NotImplementedError

    def requires(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Cond]:
        """Validity constraints, attribute ranges included (validate() relies on them)."""
        return []

    def infer(self, shapes: list[Shape], attrs: dict[str, Any]) -> list[Shape]:
        raise NotImplementedError

    def backward(self, out: Shape, attrs: dict[str, Any], in_ranks: list[int]) -> list[Shape] | None:
        """Input shapes (as expressions of `out`) that yield `out`, or None to let z3 solve."""
        return None

    def propose(self, rng: random.Random, shapes: list[tuple[int, ...]], attrs: dict[str, Any]
                ) -> dict[str, int] | None:
        """Optional: int_attrs values likely to fit these concrete input shapes (e.g. a reshape
        target that factorises the element count). Saves a z3 call; None means no idea."""
        return None

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        """Output dtypes, or None when the input dtypes are not allowed."""
        raise NotImplementedError

    def domains(self, ins: list[TensorType], attrs: dict[str, Any]) -> dict[int, Domain]:
        """Input position -> value domain that keeps this op finite and defined (see DOMAINS)."""
        return {}

    # -- concrete check used by Graph.validate --------------------------------------
    def check(self, ins: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        dts = self.out_dtypes([t.dtype for t in ins], attrs)
        if dts is None:
            raise GraphError(f"{self.name}: input dtypes {[t.dtype for t in ins]} not allowed")
        shapes = [t.shape for t in ins]
        try:
            ok = all(bool(c) for c in self.requires(shapes, attrs))
            outs = self.infer(shapes, attrs) if ok else None
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError) as e:
            raise GraphError(f"{self.name}: bad attributes or ranks: {type(e).__name__}: {e}") from None
        if outs is None:
            raise GraphError(f"{self.name}: constraints not met for shapes {shapes} attrs {attrs}")
        if len(outs) != len(dts):
            raise GraphError(f"{self.name}: {len(outs)} output shapes but {len(dts)} dtypes")
        try:
            return [TensorType(tuple(int(d) for d in s), dt) for s, dt in zip(outs, dts)]
        except GraphError as e:
            raise GraphError(f"{self.name}: {e}") from None


class Homogeneous(OpSpec):
    """Specs whose inputs all share one dtype T from `dtypes`, with outputs T (or `out_dtype`)."""

    out_dtype: ClassVar[str | None] = None  # fixed output dtype (bool for comparisons)
    n_outputs: ClassVar[int] = 1

    def out_dtypes(self, in_dtypes: list[str], attrs: dict[str, Any]) -> list[str] | None:
        if not in_dtypes or len(set(in_dtypes)) != 1 or in_dtypes[0] not in self.dtypes:
            return None
        return [self.out_dtype or in_dtypes[0]] * self.n_outputs


# Rank distribution: mostly 2-4, with scalars and rank 5 kept in play.
_RANK_WEIGHTS = {0: 4, 1: 12, 2: 22, 3: 24, 4: 26, 5: 12}


def pick_rank(rng: random.Random, lo: int = 0, hi: int = 5) -> int:
    ranks = [r for r in _RANK_WEIGHTS if lo <= r <= hi]
    return rng.choices(ranks, weights=[_RANK_WEIGHTS[r] for r in ranks])[0]


def pick_axis(rng: random.Random, rank: int) -> int:
    """An axis of a rank>=1 tensor, negative about half the time (a bug-hider)."""
    a = rng.randrange(rank)
    return a - rank if rng.random() < 0.5 else a


def same_shape(shape: Shape) -> list[Shape]:
    return [tuple(shape)]


def dims_ge(shape: Shape, lo: Dim) -> list[Cond]:
    return [d >= lo for d in shape]
