"""Is a localised mismatch rounding noise amplified by a discontinuous or order-sensitive op?

The first diverging node's inputs agree with the reference within tolerance (it is the *first*). Four
legitimate ways its output can still differ:
- an order-sensitive op (topk, sort, argmax) whose input has ties within tolerance: any order is right;
- a discontinuous op applied to inputs that differ by rounding: the numpy lowering of the op on the
  target's *own* inputs reproduces the target's output;
- a decision (comparison, floor/ceil/round, float->int cast, sign, float floor-division/modulo) that flips
  only where its inputs sit within their tolerance of the decision boundary. This also covers a backend
  that fused the producer into the decision and decided on the unrounded value, so the visible (rounded)
  input equals the reference's exactly and only the decision differs. A graph leaf carries no upstream
  rounding, so a flip decided on leaves alone is a real bug;
- a normalisation whose outputs sit near zero: the mean is a reduction, and another summation order moves
  it by reduction-order rounding that the relative tolerance cannot absorb there (see NORM_SUM_K).
Either way the pipeline computed a correct function of what it was given; the finding is noise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from generators.ir import Graph, Node
from generators.lower_numpy import LOWER
from generators.ops import get_spec
from oracles.compare import compare_outputs
from oracles.tolerance import EPS, Tolerance, float_kind

COMPARISONS = ("Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual")
# Normalisations that centre by a reduced mean. RMSNorm does not centre: its rounding is relative
# (a rescaling), which the relative tolerance already absorbs even where the output is near zero.
CENTRING_NORMS = ("LayerNorm", "GroupNorm", "InstanceNorm", "BatchNorm")

# Absolute floor of a centring normalisation's output, per element, over the element's group (n values
# reduced, std = sqrt(var + eps_attr), eps the dtype's machine epsilon):
#     eps * max|x| / std * (NORM_SUM_K * sqrt(n) + NORM_FUSED_K) * |scale|
# Why these factors:
# - centring turns an error in the mean into the same absolute error in x - mean; dividing by std and
#   multiplying by the scale carries it to the output, where the relative tolerance is no help near zero;
# - the mean is a sum of n values. Summed one after another, the k-th addition rounds by up to eps/2 of
#   a partial sum ~k*|mean|, and those errors add like a random walk: the mean is off by about
#   eps * sqrt(n) * max|x| / 6 (one standard deviation; pairwise or blocked summation does better). Two
#   independent implementations differ by sqrt(2) times that; 5 standard deviations keep the tail out
#   of a campaign's many groups: NORM_SUM_K = 5 * sqrt(2) / 6 ~ 1.2;
# - the fused form x*rstd - mean*rstd (torch, XLA) rounds both products before they cancel:
#   NORM_FUSED_K = 2 (one eps * max|x| / std per product). It dominates for small n, e.g. BatchNorm in
#   inference, which reduces nothing (running statistics: n = 1, max|x| includes |running_mean|).
# Measured on the pinned stack (XLA against TF eager, 60 random float32 LayerNorm/GroupNorm/InstanceNorm
# cases with groups offset 1..1000 from zero): every difference stayed under 1/4.5 of this floor, while
# XLA went up to 7.5x over the tolerance derived from the float64 twin (tests/test_noise_comparisons.py).
# A wrong op (axis, eps, affine, groups) errs by
# O(1) * |scale|, far above the float32 floor (1.2e-7 * max|x|/std * (1.2 * sqrt(n) + 2)). For float16
# the floor is wide where max|x|/std is large: there the rounding of the mean really decides the result.
NORM_SUM_K = 1.2
NORM_FUSED_K = 2.0

Rule = Callable[[Node, Graph, dict[str, np.ndarray], dict[str, np.ndarray], list[np.ndarray],
                 dict[str, Tolerance]], str]


def explain_as_noise(node: Node, graph: Graph, ref_env: dict[str, np.ndarray], got_env: dict[str, np.ndarray],
                     got_out: list[np.ndarray], tols: dict[str, Tolerance]) -> str:
    """'' when the divergence is not explained by noise, else the explanation."""
    if get_spec(node.op).tie_sensitive:
        for t in node.inputs:
            if _has_near_ties(ref_env[t], tols.get(t)):
                return f"{node.op}: its input {t} has ties within tolerance, so any order among them is right"
    if any(t not in got_env or t not in ref_env for t in node.inputs):
        return ""
    if not _inputs_agree(node, set(graph.inputs) | set(graph.weights), ref_env, got_env, tols):
        return ""  # not the first diverging node after all: its inputs carry the difference
    rules: tuple[Rule, ...] = (_recomputed, _near_boundary, _norm_rounding)
    for rule in rules:
        why = rule(node, graph, ref_env, got_env, got_out, tols)
        if why:
            return why
    return ""


def _recomputed(node: Node, graph: Graph, ref_env: dict[str, np.ndarray], got_env: dict[str, np.ndarray],
                got_out: list[np.ndarray], tols: dict[str, Tolerance]) -> str:
    """The op on the pipeline's own (slightly different) inputs gives the pipeline's output."""
    if all(np.array_equal(ref_env[t], got_env[t]) for t in node.inputs):
        return ""  # the same inputs: this rule cannot tell; the boundary rules below may
    own = _own_outputs(node, graph, got_env)
    if own is None:
        return ""
    out_tols = [tols.get(n, Tolerance(0.0, 0.0)) for n in node.outputs]
    if not any(r.mismatch for r in compare_outputs(own, got_out, out_tols)):
        return (f"{node.op}: applied to the pipeline's own inputs (equal to the reference's within tolerance) "
                "it gives the pipeline's output: rounding amplified by a discontinuous op")
    return ""


# -- decisions near their boundary ------------------------------------------------------------------------
def _near_boundary(node: Node, graph: Graph, ref_env: dict[str, np.ndarray], got_env: dict[str, np.ndarray],
                   got_out: list[np.ndarray], tols: dict[str, Tolerance]) -> str:
    """Every flipped element of a decision lies where its inputs are within tolerance of the boundary."""
    leaves = set(graph.inputs) | set(graph.weights)
    if len(node.outputs) != 1 or len(got_out) != 1 or all(t in leaves for t in node.inputs):
        return ""  # decided on leaves alone: nothing upstream rounded, so a flip is the op's own
    xs = [np.asarray(ref_env[t]) for t in node.inputs]
    if not any(float_kind(str(x.dtype)) for x in xs):
        return ""
    ref, got = np.asarray(ref_env.get(node.outputs[0])), np.asarray(got_out[0])
    if ref.shape != got.shape or ref.dtype != got.dtype:
        return ""
    out_tol = tols.get(node.outputs[0], Tolerance(0.0, 0.0))
    jump = _abs_diff(ref, got)
    flipped = jump > out_tol.atol + out_tol.rtol * _abs(ref)
    if not flipped.any():
        return ""
    try:
        measured = _boundary(node, xs, [_slack(t, x, leaves, tols) for t, x in zip(node.inputs, xs)])
        if measured is None:
            return ""
        dist, slack, step = (np.broadcast_to(a, ref.shape) for a in measured)
    except ValueError:  # inputs that do not broadcast to the output: not a case this rule can judge
        return ""
    ok = (dist <= slack) & (slack > 0) & (jump <= step + out_tol.atol + out_tol.rtol * _abs(ref))
    if not ok[flipped].all():
        return ""
    worst = int(np.argmax(np.where(flipped, dist, -1.0)))
    return (f"{node.op}: {int(flipped.sum())} of {ref.size} elements flip, each where its inputs are within "
            f"their tolerance of the decision boundary (largest distance {float(dist.flat[worst]):.3g}, "
            f"tolerance there {float(slack.flat[worst]):.3g}): rounding upstream decides the side")


def _boundary(node: Node, xs: list[np.ndarray],
              slacks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(distance to the decision boundary, how far rounding may move the inputs there, the largest jump
    of the output across one boundary) element-wise in the output's shape; None: not a decision."""
    op = node.op
    with np.errstate(all="ignore"):
        if op in COMPARISONS:
            a, b = (x.astype(np.float64) for x in xs)
            return np.abs(a - b), slacks[0] + slacks[1], np.asarray(1.0)
        if op in ("FloorDiv", "Mod") and all(float_kind(str(x.dtype)) for x in xs):
            a, b = (x.astype(np.float64) for x in xs)
            q = a / b  # decided by q's side of an integer; rounding moves q by the inputs' slack
            q_slack = slacks[0] / np.abs(b) + np.abs(a) * slacks[1] / (b * b)
            return np.abs(q - np.rint(q)), q_slack, (np.asarray(1.0) if op == "FloorDiv" else np.abs(b))
        x = xs[0].astype(np.float64) if float_kind(str(xs[0].dtype)) else None
        if x is None:
            return None
        if op in ("Floor", "Ceil"):
            return np.abs(x - np.rint(x)), slacks[0], np.asarray(1.0)
        if op == "Round":
            return np.abs(x - (np.floor(x) + 0.5)), slacks[0], np.asarray(1.0)
        if op == "Sign":
            return np.abs(x), slacks[0], np.asarray(2.0)
        if op == "Cast" and node.attrs.get("to") == "bool":
            return np.abs(x), slacks[0], np.asarray(1.0)
        if op == "Cast" and not float_kind(str(node.attrs.get("to"))):
            return np.abs(x - np.rint(x)), slacks[0], np.asarray(1.0)  # truncation: boundaries at integers
    return None


def _slack(name: str, x: np.ndarray, leaves: set[str], tols: dict[str, Tolerance]) -> np.ndarray:
    """How far rounding upstream may have moved `x` (its tolerance); 0 for leaves and exact tensors."""
    tol = tols.get(name)
    if name in leaves or tol is None or not float_kind(str(x.dtype)):
        return np.zeros(x.shape)
    return tol.atol + tol.rtol * _abs(x)


def _inputs_agree(node: Node, leaves: set[str], ref_env: dict[str, np.ndarray], got_env: dict[str, np.ndarray],
                  tols: dict[str, Tolerance]) -> bool:
    """The premise of the rules after the tie rule: the node's inputs in the pipeline equal the reference's
    within tolerance (leaves: exactly)."""
    for t in node.inputs:
        ref, got = np.asarray(ref_env[t]), np.asarray(got_env[t])
        tol = Tolerance(0.0, 0.0) if t in leaves else tols.get(t, Tolerance(0.0, 0.0))
        if compare_outputs([ref], [got], [tol])[0].mismatch:
            return False
    return True


# -- normalisations near zero ------------------------------------------------------------------------------
def _norm_rounding(node: Node, graph: Graph, ref_env: dict[str, np.ndarray], got_env: dict[str, np.ndarray],
                   got_out: list[np.ndarray], tols: dict[str, Tolerance]) -> str:
    """Every element within the output tolerance plus the reduction-order floor (NORM_SUM_K) of the reference,
    or of the op recomputed on the pipeline's own inputs."""
    if node.op not in CENTRING_NORMS or len(got_out) != 1:
        return ""
    xs = [np.asarray(ref_env[t]) for t in node.inputs]
    if not float_kind(str(xs[0].dtype)):
        return ""
    floor, n = _norm_floor(node, xs)
    got = np.asarray(got_out[0])
    out_tol = tols.get(node.outputs[0], Tolerance(0.0, 0.0))
    own = _own_outputs(node, graph, got_env)
    for cand in [np.asarray(ref_env.get(node.outputs[0]))] + ([own[0]] if own else []):
        if cand.shape != got.shape or cand.dtype != got.dtype:
            continue
        within = _abs_diff(cand, got) <= out_tol.atol + out_tol.rtol * _abs(cand) + floor
        if within.all():
            return (f"{node.op}: every element is within the reduction-order rounding of the mean of the reference "
                    f"(eps*max|x|/std*({NORM_SUM_K:g}*sqrt(n)+{NORM_FUSED_K:g}), n = {n} values per group; at most "
                    f"{float(floor.max()):.3g}), which centring leaves where the output is near zero")
    return ""


def _norm_floor(node: Node, xs: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """The per-element absolute floor of NORM_SUM_K's comment, in x's shape, and the group size n."""
    a = node.attrs
    x = xs[0].astype(np.float64)
    r = x.ndim
    eps = EPS[float_kind(str(xs[0].dtype))]
    if node.op == "BatchNorm":
        mean, var = _channel(xs[1], r), _channel(xs[2], r)
        n, big, std = 1, np.maximum(np.abs(x), np.abs(mean)), np.sqrt(var + a["eps"])
        params = xs[3:]
    else:
        if node.op == "LayerNorm":
            grouped, axes = x, tuple(range(r - a["num_dims"], r))
        elif node.op == "GroupNorm":
            grouped = x.reshape((x.shape[0], a["num_groups"], x.shape[1] // a["num_groups"]) + x.shape[2:])
            axes = tuple(range(2, r + 1))
        else:  # InstanceNorm
            grouped, axes = x, tuple(range(2, r))
        n = int(np.prod([grouped.shape[i] for i in axes]))
        big = np.broadcast_to(np.abs(grouped).max(axis=axes, keepdims=True), grouped.shape).reshape(x.shape)
        std = np.broadcast_to(np.sqrt(grouped.var(axis=axes, keepdims=True) + a["eps"]),
                              grouped.shape).reshape(x.shape)
        params = xs[1:]
    scale = np.asarray(1.0)
    if a.get("weight") and params:
        w = params[0].astype(np.float64)
        scale = np.abs(w if node.op == "LayerNorm" else _channel(w, r))
    return eps * big / std * (NORM_SUM_K * np.sqrt(n) + NORM_FUSED_K) * scale, n


def _channel(p: np.ndarray, rank: int) -> np.ndarray:
    return p.astype(np.float64).reshape([1, -1] + [1] * (rank - 2))


# -- helpers -----------------------------------------------------------------------------------------------
def _own_outputs(node: Node, graph: Graph, got_env: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    """The numpy lowering of the node on the pipeline's own inputs (None: the numpy judge can't)."""
    try:
        return [np.asarray(o).astype(graph.tensors[n].dtype, copy=False)
                for n, o in zip(node.outputs, LOWER.call(node.op, [got_env[t] for t in node.inputs], node.attrs))]
    except Exception:  # noqa: BLE001 - the numpy judge can't evaluate it: no explanation
        return None


def _abs(a: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(a).astype(np.float64))


def _abs_diff(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """|got - ref| in float64; 0 where both are NaN or the same infinity, inf where only one is finite."""
    r, g = np.asarray(ref).astype(np.float64), np.asarray(got).astype(np.float64)
    with np.errstate(invalid="ignore"):
        d = np.abs(g - r)
    same = (r == g) | (np.isnan(r) & np.isnan(g))
    return np.where(same, 0.0, np.where(np.isnan(d), np.inf, d))


def _has_near_ties(a: np.ndarray, tol: Tolerance | None) -> bool:
    flat = np.sort(np.asarray(a, dtype=np.float64).ravel())
    if flat.size < 2:
        return False
    gaps = np.diff(flat)
    slack = 0.0 if tol is None else tol.atol + tol.rtol * np.abs(flat[1:])
    return bool(np.any(gaps <= slack))
