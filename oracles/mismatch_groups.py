"""One root cause, one mismatch finding: a case's wrong outputs grouped across its pipelines before filing.

Each mismatching pipeline is blamed by triangulation (oracles.blame). Pipelines blamed on the same component
with the same mechanism are one finding (the optimiser named by the lowest level that shows it). Groups on the
two TVM frontends that compute the same wrong values are one TVM bug: what they share is TVM below its
frontends; both frontends stay listed as suspects. Different libraries that make the same mistake stay apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oracles.blame import blame_mismatch
from oracles.compare import CompareRecord, compare_outputs
from oracles.pipeline_id import PipelineId
from oracles.tolerance import Tolerance

MECHANISMS = ("dtype", "shape", "nan_inf", "semantic", "precision")
TVM_FRONTENDS = ("tvm onnx frontend", "tvm torch frontend")
TVM_SHARED = "tvm (below both frontends)"


def mechanism(records: list[CompareRecord]) -> str:
    """How the outputs differ: dtype or shape first, then NaN/Inf appearing, then the values' error class."""
    bad = [r for r in records if r.mismatch]
    if any(not r.dtype_equal for r in bad):
        return "dtype"
    if any(not r.shape_equal for r in bad):
        return "shape"
    if any(r.nan_inf_appeared or r.nan_inf_vanished for r in bad):
        return "nan_inf"
    return "semantic" if any(r.klass == "semantic" for r in bad) else "precision"


@dataclass
class MismatchGroup:
    pipelines: list[PipelineId]
    component: str
    why: str
    mechanism: str
    suspects: list[str] = field(default_factory=list)  # when triangulation cannot single one component out


def _group_key(component: str) -> str:
    """Optimiser blames differ only in the level: one group, named afterwards by its lowest level."""
    for prefix in ("onnxruntime optimizer", "tvm optimisation"):
        if component.startswith(prefix):
            return prefix
    return component


def group_mismatches(mismatched: list[PipelineId], records: dict[str, list[CompareRecord]],
                     wrong: dict[PipelineId, bool], outputs: dict[str, list[np.ndarray]],
                     tols: dict[str, list[Tolerance]]) -> list[MismatchGroup]:
    """`mismatched`: the pipelines whose outputs differ from their source's reference."""
    by_key: dict[tuple[str, str, str], MismatchGroup] = {}
    for pid in sorted(mismatched, key=lambda p: p.name):
        component, why = blame_mismatch(pid, wrong)
        mech = mechanism(records[pid.name])
        key = (pid.source, _group_key(component), mech)
        if key in by_key:
            by_key[key].pipelines.append(pid)
        else:
            by_key[key] = MismatchGroup([pid], component, why, mech)
    groups = list(by_key.values())
    for g in groups:
        if _group_key(g.component) != g.component:  # name the optimiser by the lowest level that shows the bug
            low = min(g.pipelines, key=lambda p: p.level_rank)
            g.component, _ = blame_mismatch(low, wrong)
    return _merge_tvm_frontends(groups, outputs, tols)


def _merge_tvm_frontends(groups: list[MismatchGroup], outputs: dict[str, list[np.ndarray]],
                         tols: dict[str, list[Tolerance]]) -> list[MismatchGroup]:
    out: list[MismatchGroup] = []
    for g in groups:
        twin = next((h for h in out if {h.component, g.component} == set(TVM_FRONTENDS)
                     and h.mechanism == g.mechanism and h.pipelines[0].source == g.pipelines[0].source
                     and _same_values(h.pipelines[0], g.pipelines[0], outputs, tols)), None)
        if twin is None:
            out.append(g)
            continue
        twin.suspects = sorted({twin.component, g.component})
        twin.component = TVM_SHARED
        twin.why = ("the same wrong values through both TVM frontends: the fault is in what they share "
                    f"(Relax ops, legalisation, codegen); suspects: {', '.join(twin.suspects)}")
        twin.pipelines += g.pipelines
    return out


def _same_values(a: PipelineId, b: PipelineId, outputs: dict[str, list[np.ndarray]],
                 tols: dict[str, list[Tolerance]]) -> bool:
    oa, ob = outputs.get(a.name), outputs.get(b.name)
    if oa is None or ob is None or len(oa) != len(ob):
        return False
    return not any(r.mismatch for r in compare_outputs(oa, ob, tols[a.source]))
