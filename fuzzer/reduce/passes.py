"""The reducer's passes. Each proposes simpler candidates to the shrinker, biggest cuts first, and returns
whether one was accepted; `until_stuck` repeats a pass on the new best until it finds nothing.

Structural passes (pipelines, cut back, cut front, remove nodes) come first: they shrink the graph and
the set of pipelines, which makes every later predicate run cheaper. Then dimensions, attributes,
dtypes and leaf values are simplified. Edits that break a spec's rule never reach the predicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from fuzzer.reduce.shrinker import Candidate, Shrinker, graph_cost
from fuzzer.reduce.values_for import carry_values, evaluate_all, fit_values, values_ok
from generators import graph_edit as edit
from generators.dtypes import FLOATS, INTS
from generators.ir import Graph, GraphError, Node
from generators.values import Values

Pass = Callable[[Shrinker], bool]

# String attributes with a known simplest value (the spec's validation rejects it where it does not fit).
_SIMPLE_STRING_ATTRS = {"padding_mode": "zeros", "padding": "explicit"}
# Structural attributes that fix the meaning of the others (spatial rank, number of pad values): never edited.
_STRUCTURAL_ATTRS = frozenset({("*", "rank"), ("Pad", "k")})


def until_stuck(step: Pass) -> Pass:
    """Run `step` again on each new best until it accepts nothing; True when it accepted anything."""
    def run(sh: Shrinker) -> bool:
        made = False
        while step(sh):
            made = True
        return made
    run.__name__ = step.__name__
    return run


# -- helpers -------------------------------------------------------------------------------------------
def _env(sh: Shrinker) -> dict[str, np.ndarray]:
    """Every tensor of the best candidate (leaves and intermediates), computed once per best."""
    if "env" not in sh.memo:
        sh.memo["env"] = evaluate_all(sh.best.graph, sh.best.values)
    return sh.memo["env"]


def _try_graph(sh: Shrinker, g: Graph, values: Values | None = None, check_values: bool = True) -> bool:
    """Consider graph `g` with the best's pipelines and values carried over (or `values`)."""
    if graph_cost(g) > graph_cost(sh.best.graph):
        sh.stats.candidates += 1
        sh.stats.not_simpler += 1
        return False
    if values is None:
        if check_values:
            values = fit_values(g, _env(sh), seed=sh.stats.candidates)
            if values is None:
                sh.stats.candidates += 1
                sh.stats.invalid += 1
                return False
        else:
            values = carry_values(g, _env(sh))
    return sh.consider(Candidate(g, values, sh.best.pipelines))


def _attempt(sh: Shrinker, build: Callable[[], Graph], check_values: bool = True) -> bool:
    """Build an edited graph (a broken rule counts as an invalid candidate) and consider it."""
    try:
        g = build()
    except (GraphError, ValueError, KeyError, IndexError, TypeError):
        sh.stats.candidates += 1
        sh.stats.invalid += 1
        return False
    return _try_graph(sh, g, check_values=check_values)


def _leaf_kind(g: Graph, t: str) -> str:
    """A cut tensor computed from weights only stays a constant (a weight); else it becomes an input."""
    prod = g.producers()
    todo, seen = [t], set()
    while todo:
        x = todo.pop()
        if x in seen:
            continue
        seen.add(x)
        if x in prod:
            todo.extend(prod[x].inputs)
        elif x in g.inputs:
            return "input"
    return "weight"


# -- pipelines -----------------------------------------------------------------------------------------
def drop_pipelines(sh: Shrinker) -> bool:
    """Fewer pipelines: the target's with the controls its blame needs first, then chunks of the rest, halving
    (ddmin). The controls are never dropped, so the reduced case is blamed as the original was."""
    primary = sh.required_pipeline
    kept = [primary, *sh.controls]
    made = False
    if len(sh.best.pipelines) > len(kept) and sh.consider(_with_pipelines(sh, kept)):
        return True
    others = sorted(p for p in sh.best.pipelines if p not in kept)
    size = max(1, len(others) // 2)
    while others:
        i = 0
        while i < len(others):
            chunk = set(others[i:i + size])
            keep = [p for p in sh.best.pipelines if p not in chunk]
            if sh.consider(_with_pipelines(sh, keep)):
                made = True
                others = sorted(p for p in sh.best.pipelines if p not in kept)
            else:
                i += size
        if size == 1:
            break
        size = max(1, size // 2)
    return made


def _with_pipelines(sh: Shrinker, pipelines: list[str]) -> Candidate:
    return Candidate(sh.best.graph, sh.best.values, tuple(sorted(pipelines)))


# -- cut the back: fewer outputs ------------------------------------------------------------------------
def cut_back(sh: Shrinker) -> bool:
    """Keep only the ancestors of a chosen output set: the first diverging tensor of a mismatch, then a
    bisection over topological prefixes (Polygraphy), then each tensor alone, fewest ancestors first."""
    g = sh.best.graph
    first = str(sh.finding.detail.get("first_tensor", ""))
    if first and first in g.producers() and [first] != g.outputs:
        if _attempt(sh, lambda: edit.keep_ancestors(g, [first]), check_values=False):
            return True
    n = len(g.nodes)
    lo, hi = 0, n - 2  # the prefix ending at node n-1 is the whole graph
    while lo <= hi:
        mid = (lo + hi) // 2
        if _attempt(sh, lambda: edit.keep_ancestors(g, edit.prefix_sinks(g, mid)), check_values=False):
            return True
        lo = mid + 1
    tensors = [t for node in g.topological_nodes() for t in node.outputs]
    by_size = sorted(tensors, key=lambda t: len(edit.ancestor_nodes(g, [t])))
    for t in by_size:
        if len(edit.ancestor_nodes(g, [t])) >= n:
            break
        if _attempt(sh, lambda: edit.keep_ancestors(g, [t]), check_values=False):
            return True
    return False


# -- cut the front: a prefix replaced by new leaves --------------------------------------------------------
def _frontier(g: Graph, k: int) -> list[str]:
    """Tensors computed by the first k+1 nodes that a later node reads."""
    order = g.topological_nodes()
    head = {t for node in order[:k + 1] for t in node.outputs}
    return list(dict.fromkeys(t for node in order[k + 1:] for t in node.inputs if t in head))


def cut_front(sh: Shrinker) -> bool:
    """Replace the first k+1 nodes by new leaves holding their values (numpy reference): bisect for the
    largest prefix that can go."""
    g = sh.best.graph
    lo, hi = 0, len(g.nodes) - 2
    while lo <= hi:
        mid = (lo + hi + 1) // 2
        cut = _frontier(g, mid)
        if cut and _attempt(sh, lambda: edit.make_leaves(g, {t: _leaf_kind(g, t) for t in cut})):
            return True
        hi = mid - 1
    return False


# -- remove single nodes --------------------------------------------------------------------------------
def _bypass(g: Graph, node: Node) -> dict[str, str] | None:
    """Each used output of `node` -> an existing tensor of the same type that does not depend on it (its own
    inputs first, then leaves, then other tensors), or None when one output has none."""
    cons = g.consumers()
    below = edit.descendant_tensors(g, node)
    leaves = g.inputs + g.weights
    pool = list(dict.fromkeys(node.inputs + leaves + [t for n in g.topological_nodes() for t in n.outputs]))
    subs: dict[str, str] = {}
    for t in node.outputs:
        if not cons.get(t) and t not in g.outputs:
            continue
        same = [s for s in pool if s not in below and g.tensors[s] == g.tensors[t]]
        if not same:
            return None
        subs[t] = same[0]
    return subs


def remove_nodes(sh: Shrinker) -> bool:
    """Delete one node: its consumers read a same-typed existing tensor (its own input first: a bypass), or,
    failing that, new leaves holding its outputs' values. Later nodes first (they tend to be off the bug's path)."""
    g = sh.best.graph
    if len(g.nodes) <= 1:
        return False
    for node in reversed(g.topological_nodes()):
        subs = _bypass(g, node)
        if subs is not None and _attempt(sh, lambda: edit.remove_node(g, node.name, subs)):
            return True
        used = [t for t in node.outputs if t in g.consumers() and g.consumers()[t]]
        if used and _attempt(sh, lambda: edit.make_leaves(g, {t: _leaf_kind(g, t) for t in used})):
            return True
    return False


# -- dimensions and ranks --------------------------------------------------------------------------------
def _leaf_shapes(g: Graph) -> dict[str, tuple[int, ...]]:
    return {t: g.tensors[t].shape for t in g.inputs + g.weights}


def _dim_edits(g: Graph) -> Iterator[dict[str, tuple[int, ...]]]:
    """Leaf-shape edits, biggest first: every dim of one size shrunk at once (coupled dims move together),
    then one leaf's dim alone, then size-1 axes dropped (rank down)."""
    shapes = _leaf_shapes(g)
    sizes = sorted({d for s in shapes.values() for d in s if d > 1}, reverse=True)
    for n in sizes:
        for m in dict.fromkeys((1, n // 2)):
            if 1 <= m < n:
                yield {t: tuple(m if d == n else d for d in s) for t, s in shapes.items() if n in s}
    for t, s in shapes.items():
        for a, n in enumerate(s):
            for m in dict.fromkeys((1, n // 2)):
                if 1 <= m < n:
                    yield {t: s[:a] + (m,) + s[a + 1:]}
    for t, s in shapes.items():
        for a, n in enumerate(s):
            if n == 1:
                yield {t: s[:a] + s[a + 1:]}
    ranks = sorted({len(s) for s in shapes.values() if s})
    for r in reversed(ranks):  # the leading unit axis of every leaf of rank r at once
        same = {t: s[1:] for t, s in shapes.items() if len(s) == r and s[0] == 1}
        if len(same) > 1:
            yield same


def shrink_dims(sh: Shrinker) -> bool:
    """Dimensions toward 1 and ranks down, where the specs still allow it; values sliced from the old ones."""
    g = sh.best.graph
    for shapes in _dim_edits(g):
        if _attempt(sh, lambda: edit.resize_leaves(g, shapes)):
            return True
    return False


# -- attributes ------------------------------------------------------------------------------------------
def _simpler_values(key: str, v: object) -> list[object]:
    if isinstance(v, bool):
        return [False] if v else []
    if isinstance(v, int):
        cands = [0, 1, v // 2, v - 1] if v > 0 else [0, 1, -v]
        return [c for c in dict.fromkeys(cands) if c != v and abs(c) <= abs(v)]
    if isinstance(v, float):
        return [c for c in dict.fromkeys((0.0, 1.0, float(round(v)))) if c != v and abs(c) <= abs(v)]
    if isinstance(v, str) and key in _SIMPLE_STRING_ATTRS and v != _SIMPLE_STRING_ATTRS[key]:
        return [_SIMPLE_STRING_ATTRS[key]]
    return []


def simplify_attrs(sh: Shrinker) -> bool:
    """Attributes toward 0/1/False (stride, dilation, padding, groups, kernel, axes...), only where the spec's
    rules still hold; a value that a leaf's dimension carries (a kernel size) moves that dimension with it."""
    g = sh.best.graph
    leaves = set(g.inputs) | set(g.weights)
    for node in g.nodes:
        for key, v in sorted(node.attrs.items()):
            if ("*", key) in _STRUCTURAL_ATTRS or (node.op, key) in _STRUCTURAL_ATTRS:
                continue
            for new in _simpler_values(key, v):
                if _attempt(sh, lambda: edit.set_attrs(g, node.name, {key: new})):
                    return True
                if isinstance(v, int) and not isinstance(v, bool) and v > 1:
                    coupled = {t: tuple(new if d == v else d for d in g.tensors[t].shape)
                               for t in node.inputs if t in leaves and v in g.tensors[t].shape}
                    if coupled and _attempt(sh, lambda: edit.set_attrs(g, node.name, {key: new}, coupled)):
                        return True
    return False


# -- dtypes ----------------------------------------------------------------------------------------------
def simplify_dtypes(sh: Shrinker) -> bool:
    """float16/float64 toward float32 and int8/int32 toward int64, all tensors of that dtype at once."""
    g = sh.best.graph
    present = sorted({t.dtype for t in g.tensors.values()})
    for d in present:
        to = "float32" if d in FLOATS else ("int64" if d in INTS else None)
        if to and to != d and _attempt(sh, lambda: edit.retype(g, d, to)):
            return True
    return False


# -- leaf values -----------------------------------------------------------------------------------------
def _value_edits(a: np.ndarray) -> list[np.ndarray]:
    if a.dtype.kind == "b":
        return [np.zeros_like(a)]
    out = [np.zeros_like(a), np.ones_like(a)]
    r = np.rint(a.astype(np.float64))
    out += [np.asarray(np.clip(r, -3, 3)).astype(a.dtype), np.asarray(r).astype(a.dtype)]
    return out


def simplify_values(sh: Shrinker) -> bool:
    """Leaf values toward zeros, ones and small integers, every leaf at once first, then one at a time, kept
    only while the reference stays finite and inside every op's domain."""
    best = sh.best
    names = list(best.values.inputs) + list(best.values.weights)

    def with_arrays(arrays: dict[str, np.ndarray]) -> Values:
        return Values({k: arrays.get(k, v) for k, v in best.values.inputs.items()},
                      {k: arrays.get(k, v) for k, v in best.values.weights.items()})

    leaves = {**best.values.inputs, **best.values.weights}
    rounded = {k: np.asarray(np.rint(a.astype(np.float64))).astype(a.dtype)
               for k, a in leaves.items() if a.dtype.kind == "f"}
    plans = [rounded] if rounded else []
    plans += [{k: e} for k in names for e in _value_edits(leaves[k])]
    for arrays in plans:
        if all(np.array_equal(a, leaves[k]) for k, a in arrays.items()):
            continue
        vals = with_arrays(arrays)
        cand = Candidate(best.graph, vals, best.pipelines)
        if not sh.simpler(cand):
            sh.stats.candidates += 1
            sh.stats.not_simpler += 1
            continue
        if not values_ok(best.graph, vals):
            sh.stats.candidates += 1
            sh.stats.invalid += 1
            continue
        if sh.consider(cand):
            return True
    return False


DEFAULT_PASSES: list[tuple[str, Pass]] = [
    ("drop_pipelines", until_stuck(drop_pipelines)),
    ("cut_back", until_stuck(cut_back)),
    ("cut_front", until_stuck(cut_front)),
    ("remove_nodes", until_stuck(remove_nodes)),
    ("shrink_dims", until_stuck(shrink_dims)),
    ("simplify_attrs", until_stuck(simplify_attrs)),
    ("simplify_dtypes", until_stuck(simplify_dtypes)),
    ("simplify_values", until_stuck(simplify_values)),
]
