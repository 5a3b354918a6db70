"""Is a localised mismatch rounding noise amplified by a discontinuous or order-sensitive op?

The first diverging node's inputs agree with the reference within tolerance (it is the *first*). Two
legitimate ways its output can still differ:
- a discontinuous op (floor, round, comparisons, casts to int, argmax...) applied to inputs that differ
  by rounding: the numpy lowering of the op on the target's *own* inputs reproduces the target's output;
- an order-sensitive op (topk, sort, argmax) whose input has ties within tolerance: any order is right.
Either way the pipeline computed a correct function of what it was given; the finding is noise.
"""

from __future__ import annotations

import numpy as np

from generators.ir import Graph, Node
from generators.lower_numpy import LOWER
from generators.ops import get_spec
from oracles.compare import compare_outputs
from oracles.tolerance import Tolerance


def explain_as_noise(node: Node, graph: Graph, ref_env: dict[str, np.ndarray], got_env: dict[str, np.ndarray],
                     got_out: list[np.ndarray], tols: dict[str, Tolerance]) -> str:
    """'' when the divergence is not explained by noise, else the explanation."""
    if get_spec(node.op).tie_sensitive:
        for t in node.inputs:
            if _has_near_ties(ref_env[t], tols.get(t)):
                return f"{node.op}: its input {t} has ties within tolerance, so any order among them is right"
    if any(t not in got_env for t in node.inputs):
        return ""
    if all(np.array_equal(ref_env[t], got_env[t]) for t in node.inputs):
        return ""  # the same inputs: the op itself is wrong
    try:
        own = [np.asarray(o).astype(graph.tensors[n].dtype, copy=False)
               for n, o in zip(node.outputs, LOWER.call(node.op, [got_env[t] for t in node.inputs], node.attrs))]
    except Exception:  # noqa: BLE001 - the numpy judge can't evaluate it: no explanation
        return ""
    out_tols = [tols.get(n, Tolerance(0.0, 0.0)) for n in node.outputs]
    if not any(r.mismatch for r in compare_outputs(own, got_out, out_tols)):
        return (f"{node.op}: applied to the pipeline's own inputs (equal to the reference's within tolerance) "
                "it gives the pipeline's output: rounding amplified by a discontinuous op")
    return ""


def _has_near_ties(a: np.ndarray, tol: Tolerance | None) -> bool:
    flat = np.sort(np.asarray(a, dtype=np.float64).ravel())
    if flat.size < 2:
        return False
    gaps = np.diff(flat)
    slack = 0.0 if tol is None else tol.atol + tol.rtol * np.abs(flat[1:])
    return bool(np.any(gaps <= slack))
