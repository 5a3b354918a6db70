"""The shrinker, after Hypothesis': one current value, one predicate, a cache, a strict order, passes.

The value is a `Candidate` (graph, leaf values, pipelines). A pass proposes simpler candidates and calls
`consider`; the first one that is strictly simpler than the current best and still shows the same bug
becomes the new best. Passes run again and again until none of them makes progress (a fixpoint), or
the time/attempt budget runs out, when the best so far is what comes back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fuzzer.reduce.values_for import values_digest
from generators.ir import Graph, GraphError
from generators.values import Values
from oracles.judge import Finding

# The "simpler" dtype order: float32 and int64 are what every converter handles first.
_DTYPE_COST = {"float32": 0, "int64": 1, "bool": 2, "int32": 3, "float64": 4, "float16": 5, "int8": 6}
# String attributes' simplest spellings (anything else costs 1).
SIMPLE_STRINGS = frozenset({"zeros", "explicit", "constant", "nearest", "none", "sum", "mean"})


@dataclass(frozen=True)
class Candidate:
    graph: Graph
    values: Values
    pipelines: tuple[str, ...]

    def key(self) -> tuple[str, str, tuple[str, ...]]:
        """The cache key: graph hash, values digest, pipeline set."""
        return (self.graph.content_hash(), values_digest(self.values), tuple(sorted(self.pipelines)))


def attr_cost(v: Any) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return abs(float(v)) + (0.5 if v < 0 else 0.0)
    if isinstance(v, str):
        return 0.0 if v in SIMPLE_STRINGS else 1.0
    if isinstance(v, (list, tuple)):
        return sum(attr_cost(x) for x in v)
    return 0.0


def value_cost(a: np.ndarray) -> int:
    """0 for zeros, 1 for ±1, 2 for small integers, 3 for other integers, 4 for the rest, summed."""
    if a.dtype.kind == "b":
        return int(a.sum())
    x = np.abs(a.astype(np.float64))
    integral = np.isfinite(x) & (x == np.round(x))
    cost = np.where(x == 0, 0, np.where(x == 1, 1, np.where(integral & (x <= 3), 2, np.where(integral, 3, 4))))
    return int(cost.sum())


def complexity(c: Candidate) -> tuple[float, ...]:
    """The strict "simpler than" order, compared lexicographically: fewer nodes, then fewer tensor
    elements, then lower ranks, then simpler attributes, then simpler dtypes, then fewer pipelines,
    then simpler leaf values."""
    vals = sum(value_cost(a) for a in {**c.values.inputs, **c.values.weights}.values())
    return graph_cost(c.graph) + (len(c.pipelines), vals)


def graph_cost(g: Graph) -> tuple[float, ...]:
    """The graph's part of `complexity`: nodes, elements, ranks, attributes, dtypes."""
    elems = sum(t.numel() for t in g.tensors.values())
    ranks = sum(t.rank for t in g.tensors.values())
    attrs = sum(attr_cost(v) for n in g.nodes for v in n.attrs.values())
    dtypes = sum(_DTYPE_COST.get(t.dtype, 7) for t in g.tensors.values())
    return (len(g.nodes), elems, ranks, attrs, dtypes)


class BudgetExhausted(Exception):
    """The time or attempt budget ran out: the shrinker stops and keeps the best so far."""


@dataclass
class ShrinkStats:
    candidates: int = 0  # proposed by the passes
    not_simpler: int = 0  # rejected by the order before anything ran
    invalid: int = 0  # broke a spec rule (never run)
    cache_hits: int = 0
    predicate_runs: int = 0
    accepted: int = 0
    accepted_by_pass: dict[str, int] = field(default_factory=dict)
    budget_exhausted: bool = False
    pass_errors: list[str] = field(default_factory=list)  # a pass that raised is reported and left out
    seconds: float = 0.0


Test = Callable[[Graph, Values, list[str]], Finding | None]


class Shrinker:
    """Holds the best candidate so far and the cache; passes call `consider`."""

    def __init__(self, initial: Candidate, finding: Finding, test: Test, budget_s: float | None = None,
                 max_runs: int | None = None, progress: Callable[[str], None] | None = None,
                 required_pipeline: str = "", controls: tuple[str, ...] = ()) -> None:
        self.best = initial
        self.required_pipeline = required_pipeline or initial.pipelines[0]  # never dropped
        # never dropped either: the pipelines the finding's blame is triangulated with (the predicate compares the
        # failure, not the blame, so without this the reduced case would lose what names its component)
        self.controls = tuple(p for p in controls if p in initial.pipelines and p != self.required_pipeline)
        self.finding = finding  # the target as the best candidate shows it
        self.test = test
        self.budget_s = budget_s
        self.max_runs = max_runs
        self.progress = progress or (lambda msg: None)
        self.stats = ShrinkStats()
        self.cache: dict[tuple[str, str, tuple[str, ...]], bool] = {initial.key(): True}
        self.pass_name = ""
        self._t0 = time.perf_counter()
        self._best_cost = complexity(initial)
        self.memo: dict[str, Any] = {}  # passes' per-best scratch (e.g. the evaluated intermediates)

    def out_of_budget(self) -> bool:
        over_time = self.budget_s is not None and time.perf_counter() - self._t0 >= self.budget_s
        over_runs = self.max_runs is not None and self.stats.predicate_runs >= self.max_runs
        return over_time or over_runs

    def simpler(self, c: Candidate) -> bool:
        return complexity(c) < self._best_cost

    def consider(self, c: Candidate) -> bool:
        """True when `c` is strictly simpler and shows the same bug: it becomes the best."""
        self.stats.candidates += 1
        cost = complexity(c)
        if not cost < self._best_cost:
            self.stats.not_simpler += 1
            return False
        key = c.key()
        if key in self.cache:
            self.stats.cache_hits += 1
            return False  # a hit that reproduced would already be the best (or not simpler)
        try:
            c.graph.validate()
        except GraphError:
            self.stats.invalid += 1
            self.cache[key] = False
            return False
        if self.out_of_budget():
            raise BudgetExhausted
        self.stats.predicate_runs += 1
        found = self.test(c.graph, c.values, list(c.pipelines))
        self.cache[key] = found is not None
        if found is None:
            return False
        self.best, self.finding, self._best_cost = c, found, cost
        self.memo.clear()
        self.stats.accepted += 1
        self.stats.accepted_by_pass[self.pass_name] = self.stats.accepted_by_pass.get(self.pass_name, 0) + 1
        self.progress(f"{self.pass_name}: {len(c.graph.nodes)} nodes, {cost[1]} elements, "
                      f"{len(c.pipelines)} pipelines ({self.stats.predicate_runs} runs)")
        return True

    def run(self, passes: list[tuple[str, Callable[[Shrinker], bool]]]) -> Candidate:
        """Every pass in turn, again and again, until a whole round changes nothing (or the budget ends)."""
        live = list(passes)
        try:
            changed = True
            while changed:
                changed = False
                for name, p in list(live):
                    self.pass_name = name
                    try:
                        changed = p(self) or changed
                    except BudgetExhausted:
                        raise
                    except Exception as e:  # a reducer bug must not cost the best so far: report, drop the pass
                        self.stats.pass_errors.append(f"{name}: {type(e).__name__}: {str(e)[:200]}")
                        self.progress(f"pass {name} failed and is left out: {type(e).__name__}: {e}")
                        live.remove((name, p))
        except BudgetExhausted:
            self.stats.budget_exhausted = True
            self.progress("budget exhausted: keeping the best so far")
        self.stats.seconds = time.perf_counter() - self._t0
        return self.best
