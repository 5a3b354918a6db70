"""Value search: inputs and weights that keep every node of the eager torch reference finite
and inside each op's value domain.

First domain-aware sampling of the leaves (a leaf feeding `log` is drawn positive,
an index leaf inside its range); when an intermediate still leaves its domain or
goes non-finite, a short gradient search moves the float leaves to fix it (after
NNSmith's proxy losses). When both fail the report says so; nothing is hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from generators.emit.torch_module import run_nodes
from generators.ir import Graph
from generators.lower_torch import LOWER
from generators.lowering import LoweringTable
from generators.ops import get_spec
from generators.ranges import DOMAIN_INTERVALS, EXP_LIMIT, INT_SPAN, NONZERO_EPS
from generators.spec import Domain

# One definition of the domains, shared with the generator's interval checks (generators.ranges).
_INT_SPAN = INT_SPAN
_EXP_LIMIT = EXP_LIMIT
_NONZERO_EPS = NONZERO_EPS


@dataclass
class Values:
    inputs: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]


@dataclass
class ValueReport:
    ok: bool
    method: str  # "sampled" | "searched" | "gave-up"
    samples: int
    search_steps: int
    problems: list[str] = field(default_factory=list)  # node: reason, when not ok


_INF = float("inf")
# Float domains as closed intervals; "nonzero" additionally keeps |x| >= _NONZERO_EPS.
_INTERVAL = DOMAIN_INTERVALS
# Sampling bands tried in turn: saturating and stepwise ops (hardtanh, ceil) have no gradient,
# so magnitude variety in the draws is what rescues them.
_BANDS = ((-3.0, 3.0), (-1.0, 1.0), (0.1, 1.0), (0.5, 2.0), (-0.5, 0.5), (1.0, 3.0))


@dataclass
class LeafDomain:
    """What every consumer of one leaf asks of its values, intersected."""

    lo: float = -_INF
    hi: float = _INF
    nonzero: bool = False
    index_range: tuple[int, int] | None = None

    def add(self, dom: Domain) -> None:
        if isinstance(dom, tuple) and dom[0] == "range":
            lo, hi = dom[1], dom[2]
            if self.index_range is not None:
                lo, hi = max(lo, self.index_range[0]), min(hi, self.index_range[1])
            self.index_range = (lo, hi)
            return
        lo, hi = _INTERVAL[dom]
        self.lo, self.hi = max(self.lo, lo), min(self.hi, hi)
        self.nonzero = self.nonzero or dom == "nonzero"

    def project(self, x: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Back into the domain. A "nonzero" value that stepped into the gap around 0 lands on the
        side it was heading to (given `prev`, its value before the step): snapping it back to where
        it came from would never let the search flip a sign."""
        if self.lo > -_INF or self.hi < _INF:
            x = x.clamp(self.lo if self.lo > -_INF else None, self.hi if self.hi < _INF else None)
        if self.nonzero:
            negative = x < 0 if prev is None else x < prev
            x = torch.where(x.abs() < _NONZERO_EPS, torch.where(negative, -_NONZERO_EPS, _NONZERO_EPS), x)
            if self.lo > -_INF or self.hi < _INF:  # the jump may not leave [lo, hi]
                x = x.clamp(self.lo if self.lo > -_INF else None, self.hi if self.hi < _INF else None)
        return x


def _leaf_domains(graph: Graph) -> dict[str, LeafDomain]:
    leaves = set(graph.inputs) | set(graph.weights)
    out: dict[str, LeafDomain] = {}
    for n in graph.nodes:
        spec = get_spec(n.op)
        for i, dom in spec.domains([graph.tensors[t] for t in n.inputs], n.attrs).items():
            t = n.inputs[i]
            if t in leaves:
                out.setdefault(t, LeafDomain()).add(dom)
    return out


def sample_leaf(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, dom: LeafDomain | None,
                band: tuple[float, float] = _BANDS[0]) -> np.ndarray:
    """One leaf drawn inside its domain (ranges for indices, sign-safe bands for floats)."""
    return np.asarray(_draw(rng, shape, dtype, dom or LeafDomain(), band), dtype=dtype)


def _draw(rng: np.random.Generator, shape: tuple[int, ...], dtype: str, dom: LeafDomain,
          band: tuple[float, float]) -> Any:
    if dom.index_range is not None:
        return rng.integers(dom.index_range[0], dom.index_range[1] + 1, size=shape)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in _INT_SPAN:
        span = _INT_SPAN[dtype]
        lo, hi = int(np.ceil(max(-span, dom.lo))), int(np.floor(min(span, dom.hi)))
        v = rng.integers(lo, max(lo, hi) + 1, size=shape)
        if dom.nonzero or dom.lo > 0:
            v = np.where(v == 0, 1, v)
        return v
    lo, hi = max(band[0], dom.lo), min(band[1], dom.hi)
    if lo >= hi:  # the band misses the domain: sample the domain clipped to the widest band
        lo, hi = max(_BANDS[0][0], dom.lo), min(_BANDS[0][1], dom.hi)
    v = rng.uniform(lo, hi, shape)
    if dom.nonzero:
        v = np.where(np.abs(v) < _NONZERO_EPS, np.where(v < 0, -1.0, 1.0) * rng.uniform(0.5, 2.0, shape), v)
    return v


def _violation(x: torch.Tensor, dom: Domain) -> torch.Tensor:
    """A non-negative penalty that is zero exactly when x is inside dom (float tensors)."""
    x = x.float()
    if dom == "positive":
        return torch.relu(0.05 - x)
    if dom == "nonneg":
        return torch.relu(-x)
    if dom == "nonzero":
        return torch.relu(_NONZERO_EPS - x.abs())
    if dom == "unit":
        return torch.relu(x.abs() - 0.99)
    if dom == "exp_safe":
        return torch.relu(x - _EXP_LIMIT)
    if dom == "small":
        return torch.relu(x.abs() - 3.0)
    return torch.zeros_like(x)


def check_values(graph: Graph, env: dict[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
    """Problems (non-finite outputs, domain breaks) and a differentiable penalty for them."""
    problems, terms = _penalty_terms(graph, env)
    return problems, sum(terms, torch.zeros(()))


def _penalty_terms(graph: Graph, env: dict[str, torch.Tensor]) -> tuple[list[str], list[torch.Tensor]]:
    """Problems and one differentiable penalty term per problem (check_values sums them)."""
    problems: list[str] = []
    terms: list[torch.Tensor] = []
    for n in graph.nodes:
        spec = get_spec(n.op)
        for i, dom in spec.domains([graph.tensors[t] for t in n.inputs], n.attrs).items():
            x = env[n.inputs[i]]
            if isinstance(dom, tuple):
                lo, hi = dom[1], dom[2]
                if bool(((x < lo) | (x > hi)).any()):
                    problems.append(f"{n.name}: input {i} outside [{lo}, {hi}]")
                continue
            if not x.is_floating_point():
                if dom in ("positive", "nonzero") and bool((x == 0).any()):
                    problems.append(f"{n.name}: input {i} has zeros ({dom})")
                continue
            v = _violation(x, dom)
            if bool((v > 0).any()):
                problems.append(f"{n.name}: input {i} outside {dom}")
                if bool(torch.isfinite(x).all()):  # else NaN: the producer's own penalty comes first
                    terms.append(v.sum())
        for t in n.outputs:
            y = env[t]
            if y.is_floating_point() and not bool(torch.isfinite(y).all()):
                problems.append(f"{n.name}: non-finite output")
                # Inputs already non-finite are an upstream node's problem (it has its own penalty);
                # their NaN derivatives would otherwise wipe out the very gradient that fixes it.
                big = [env[s] for s in n.inputs if env[s].is_floating_point() and bool(torch.isfinite(env[s]).all())]
                terms += [(torch.relu(b.float().abs() - 1.0) ** 2).nan_to_num(0).sum() for b in big]
    return problems, terms


def _set_gradients(terms: list[torch.Tensor], params: list[torch.Tensor]) -> bool:
    """p.grad = the penalty's gradient. A term computed downstream of a NaN (say through a clamp
    that hides it) can carry NaN derivatives onto exactly the elements another term must move,
    and zeroing NaNs would freeze those: so such terms are left out whole. False: nothing to do."""
    live = [t for t in terms if t.requires_grad]
    if not live:
        return False
    total = torch.autograd.grad(sum(live), params, allow_unused=True, retain_graph=True)
    if not all(g is None or bool(torch.isfinite(g).all()) for g in total):
        kept = [torch.zeros_like(p) for p in params]
        useful = False
        for t in live:
            gs = torch.autograd.grad(t, params, allow_unused=True, retain_graph=True)
            if all(g is None or bool(torch.isfinite(g).all()) for g in gs):
                useful = True
                for acc, g in zip(kept, gs):
                    if g is not None:
                        acc += g
        total = tuple(kept) if useful else tuple(None if g is None else g.nan_to_num(0.0) for g in total)
    for p, g in zip(params, total):
        p.grad = None if g is None else g.detach()
    return True


def _straight_through(op: str, proxy: Any) -> Any:
    """Exact forward value, gradient of a smooth proxy (NNSmith's proxy derivatives): lets the
    search move leaves through floor/round/clip/relu/mod, whose true gradient is zero."""
    def lower(xs: list[torch.Tensor], attrs: dict[str, Any]) -> list[torch.Tensor]:
        with torch.no_grad():
            exact = LOWER.call(op, xs, attrs)
        smooth = proxy(xs, attrs)
        return [smooth + (e - smooth).detach() if e.is_floating_point() else e for e in exact]
    return lower


def _batch_norm_proxy(xs: list[torch.Tensor], attrs: dict[str, Any]) -> torch.Tensor:
    """Inference batch norm by its formula: torch's kernel has no gradient for the running stats."""
    x, mean, var = xs[:3]
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + attrs["eps"])
    rest = iter(xs[3:])
    if attrs.get("weight"):
        y = y * next(rest).reshape(shape)
    if attrs.get("bias"):
        y = y + next(rest).reshape(shape)
    return y


_PROXIES: dict[str, Any] = {
    **{op: (lambda xs, a: xs[0]) for op in ("Floor", "Ceil", "Round", "Clip", "Hardtanh", "Relu", "Relu6", "Mod")},
    "FloorDiv": lambda xs, a: xs[0] / xs[1],
    "Sign": lambda xs, a: torch.tanh(xs[0]),
    "BatchNorm": _batch_norm_proxy,
}
PROXY_LOWER = LoweringTable("torch-proxy")
PROXY_LOWER.update(LOWER)
for _op, _proxy in _PROXIES.items():
    PROXY_LOWER[_op] = _straight_through(_op, _proxy)


_SEARCH_EXTENSION = 4  # the search may run this many times `search_steps` while it makes progress
_PROGRESS = 0.01  # a relative penalty drop that counts as progress


def _run(graph: Graph, leaves: dict[str, torch.Tensor], table: LoweringTable = LOWER) -> dict[str, torch.Tensor]:
    order = graph.topological_nodes()
    return run_nodes(graph, order, leaves, lambda name: leaves[name], table)


def find_values(graph: Graph, seed: int, samples: int = 16, search_steps: int = 60) -> tuple[Values, ValueReport]:
    """Leaves for `graph` such that the eager torch run is finite and in-domain everywhere.

    The gradient search runs `search_steps` steps, and on (up to 4x as long) while its penalty
    still falls: a leaf that must travel far (a band of (1.7, 2.7) behind Log and Acos) gets there."""
    rng = np.random.default_rng(seed)
    doms = _leaf_domains(graph)
    leaves_names = graph.inputs + graph.weights
    problems: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    best: tuple[int, dict[str, np.ndarray]] | None = None
    for k in range(samples):
        # one band for all leaves first, then a band per leaf
        bands = {t: _BANDS[k] if k < len(_BANDS) else _BANDS[rng.integers(len(_BANDS))] for t in leaves_names}
        arrays = {t: sample_leaf(rng, graph.tensors[t].shape, graph.tensors[t].dtype, doms.get(t), bands[t])
                  for t in leaves_names}
        with torch.no_grad():
            try:
                env = _run(graph, {t: torch.from_numpy(a) for t, a in arrays.items()})
            except RuntimeError as e:  # e.g. integer division by zero inside the graph
                problems = [f"eager torch raised: {str(e).splitlines()[0][:200]}"]
                continue
            problems, _ = check_values(graph, env)
        if not problems:
            return _split(graph, arrays), ValueReport(True, "sampled", k + 1, 0)
        if best is None or len(problems) < best[0]:
            best = (len(problems), arrays)
    if best is not None:
        arrays = best[1]
    # projected gradient search on every float leaf, starting from the best sample
    params = {t: torch.tensor(a, dtype=torch.float64, requires_grad=True)
              for t, a in arrays.items() if a.dtype.kind == "f"}
    if not params:
        return _split(graph, arrays), ValueReport(False, "gave-up", samples, 0, problems)
    opt = torch.optim.Adam(list(params.values()), lr=0.2)
    best_penalty, improved_at, step = _INF, 0, 0
    for step in range(1, _SEARCH_EXTENSION * search_steps + 1):
        leaves = {t: (params[t].to(getattr(torch, graph.tensors[t].dtype)) if t in params
                      else torch.from_numpy(a)) for t, a in arrays.items()}
        try:
            env = _run(graph, leaves, PROXY_LOWER)
            problems, terms = _penalty_terms(graph, env)
            penalty = sum(terms, torch.zeros(()))
        except RuntimeError as e:
            problems = [f"eager torch raised: {str(e).splitlines()[0][:200]}"]
            break
        if not problems:
            arrays.update({t: p.detach().numpy().astype(graph.tensors[t].dtype) for t, p in params.items()})
            return _split(graph, arrays), ValueReport(True, "searched", samples, step)
        if float(penalty.detach()) < best_penalty * (1.0 - _PROGRESS):
            best_penalty, improved_at = float(penalty.detach()), step
        if step >= search_steps and step - improved_at > search_steps // 2:
            break
        opt.zero_grad()
        try:
            if not _set_gradients(terms, list(params.values())):
                break
        except RuntimeError:
            break
        before = {t: p.detach().clone() for t, p in params.items() if t in doms}
        opt.step()
        with torch.no_grad():
            for t, p in params.items():
                if t in doms:
                    p.copy_(doms[t].project(p, before[t]))
    return _split(graph, arrays), ValueReport(False, "gave-up", samples, step, problems)


def _split(graph: Graph, arrays: dict[str, Any]) -> Values:
    return Values({t: arrays[t] for t in graph.inputs}, {t: arrays[t] for t in graph.weights})
