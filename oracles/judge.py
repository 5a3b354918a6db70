"""Outcomes of one case → findings (symptom, stage, blame, signature) and capability gaps.

Knows nothing of the frameworks: it reads numpy arrays, timings and failures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oracles.blame import SOURCE_NAMES, blame_failure
from oracles.compare import CompareRecord, compare_outputs
from oracles.crash_groups import CrashGroup, group_crashes
from oracles.mismatch_groups import MismatchGroup, group_mismatches
from oracles.outcome import Failure, Outcome
from oracles.pipeline_id import PipelineId, parse_pipeline
from oracles.signature import crash_signature, gap_signature, mismatch_signature
from oracles.taxonomy import location_for, symptom_for_failure
from oracles.tolerance import Tolerance, derive_tolerance
from oracles.unsupported import unsupported_ops


@dataclass
class Reference:
    """The eager source on CPU (and its float64 twin's outputs, when the graph has floats)."""

    source: str
    outputs: list[np.ndarray] | None
    outputs64: list[np.ndarray] | None = None
    failure: Failure | None = None
    seconds: float = 0.0  # time inside the eager framework (both runs)

    def tolerances(self) -> list[Tolerance]:
        assert self.outputs is not None
        wide = self.outputs64 or [None] * len(self.outputs)
        return [derive_tolerance(r, w, str(r.dtype)) for r, w in zip(self.outputs, wide)]


@dataclass
class Finding:
    symptom: str  # oracles.taxonomy.SYMPTOMS
    stage: str
    location: str
    component: str
    pipelines: list[str]
    kind: str  # failure kind, or the mismatch class (precision / semantic), or "slowdown"
    signature: str
    message: str = ""
    why: str = ""  # the triangulation that named the component
    first_op: str = ""  # mismatches: the first op whose output diverges ("" until localised)
    culprit: str = ""  # e.g. the TVM pass whose disabling makes the bug vanish
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Finding:
        return cls(**d)


@dataclass
class Gap:
    """A clean "not supported" error: a capability gap of a component, never counted as a bug."""

    component: str
    op: str
    signature: str
    pipelines: list[str]
    message: str


@dataclass
class Verdict:
    findings: list[Finding]
    gaps: list[Gap]
    records: dict[str, list[CompareRecord]]  # per pipeline with outputs
    mismatched: list[str]  # pipelines whose outputs differ (before grouping)
    noise: list[Finding] = field(default_factory=list)  # mismatches later explained as rounding/tie noise
    flaky: list[Finding] = field(default_factory=list)  # new findings a fresh worker did not reproduce


def judge_case(refs: dict[str, Reference], outcomes: dict[str, Outcome]) -> Verdict:
    """Findings grouped before blame: one per root cause, however many pipelines show it (see
    oracles.crash_groups and oracles.mismatch_groups); clean "not supported" errors become gaps, one per op."""
    pids = {name: parse_pipeline(name) for name in outcomes}
    records: dict[str, list[CompareRecord]] = {}
    wrong: dict[PipelineId, bool] = {}
    tols = {s: r.tolerances() for s, r in refs.items() if r.outputs is not None}
    for name, o in outcomes.items():
        ref = refs.get(pids[name].source)
        if o.outputs is None or ref is None or ref.outputs is None:
            continue
        records[name] = compare_outputs(ref.outputs, o.outputs, tols[ref.source])
        wrong[pids[name]] = any(r.mismatch for r in records[name])
    gaps = [g for name, o in sorted(outcomes.items()) if o.failure is not None and not o.skipped
            and o.failure.kind == "unsupported" for g in _gaps(pids[name], o.failure)]
    findings = [_crash(g) for g in group_crashes(outcomes, pids)]
    odd = _source_is_odd_one_out(tols, outcomes, wrong)
    outputs = {n: o.outputs for n, o in outcomes.items() if o.outputs is not None}
    mismatched = [p for p, bad in wrong.items() if bad]
    for g in group_mismatches(mismatched, records, wrong, outputs, tols):
        f = _mismatch(g, records)
        src = g.pipelines[0].source
        # the source defines dtypes: a dtype difference is never the source's fault
        if odd.get(src) and g.mechanism != "dtype":
            f.component, f.why = SOURCE_NAMES[src], "every other implementation agrees among themselves"
            resign(f)
        findings.append(f)
    return Verdict(group_findings(findings), _group_gaps(gaps), records, sorted(p.name for p in mismatched))


def _crash(g: CrashGroup) -> Finding:
    f = g.failure
    rejected = g.symptom_stage == "check" and g.key.stage != "check"  # consumers rejected the exported model
    symptom = "invalid_model" if rejected else symptom_for_failure(f.kind, f.stage)
    location = location_for("export", g.component) if rejected else location_for(f.stage, g.component)
    by = g.component if rejected else g.key.raiser
    return Finding(symptom, f.stage, location, g.component, [p.name for p in g.pipelines], f.kind, g.signature,
                   message=f"{f.exc_type}: {f.message}" if f.exc_type else f.message, why=g.why,
                   detail={"exc_type": f.exc_type, "error": f.message, "raiser": by})


def _mismatch(g: MismatchGroup, records: dict[str, list[CompareRecord]]) -> Finding:
    pid = g.pipelines[0]
    recs = records[pid.name]
    detail: dict[str, Any] = {"records": [r.to_json() for r in recs]}
    if g.suspects:
        detail["suspects"] = list(g.suspects)
    return Finding("wrong_output", "run", location_for("run", g.component), g.component,
                   [p.name for p in g.pipelines], g.mechanism, mismatch_signature(g.component, "run", "", g.mechanism),
                   message=mismatch_message(recs), why=g.why, detail=detail)


def mismatch_message(recs: list[CompareRecord]) -> str:
    """The worst output's difference in one line: shape/dtype first, then NaN/Inf, then the numbers."""
    bad = [r for r in recs if r.mismatch]
    for r in bad:
        if not r.shape_equal or not r.dtype_equal:
            return (f"output {r.output_index}: got {r.got_dtype}{list(r.got_shape or ())}, "
                    f"expected {r.ref_dtype}{list(r.ref_shape or ())}")
    for r in bad:
        if r.nan_inf_appeared:
            return f"output {r.output_index}: {r.nan_inf_appeared} NaN/Inf where the reference is finite"
    worst = max(bad, key=lambda r: _finite(r.max_abs))
    text = f"output {worst.output_index}: max abs {_finite(worst.max_abs):.3g}"
    if worst.max_rel is not None:
        text += f", max rel {worst.max_rel:.3g}"
    if worst.share_over_tol is not None:
        text += f", {worst.share_over_tol:.1%} over tolerance (atol {worst.atol:.3g}, rtol {worst.rtol:.3g})"
    if worst.argmax_agree is not None:
        text += f", argmax agrees on {worst.argmax_agree:.0%} of rows"
    return text + (f"; {worst.note}" if worst.note else "")


def _finite(x: float | None) -> float:
    return x if x is not None and np.isfinite(x) else 1e300


def _gaps(pid: PipelineId, f: Failure) -> list[Gap]:
    """One gap per op the message names (a list of unsupported ops is several gaps), keyed by component and op
    so that the same declined op is one gap whatever else its message lists."""
    component = blame_failure(pid, f.stage, None)
    message = f"{f.exc_type}: {f.message}".strip(": ")
    ops = unsupported_ops(f.message)
    if not ops:
        return [Gap(component, "", crash_signature(component, f.stage, f.kind, f.exc_type, f.message), [pid.name],
                    message)]
    return [Gap(component, op, gap_signature(component, f.stage, f.exc_type, f.message, op), [pid.name], message)
            for op in ops]


def _source_is_odd_one_out(tols: dict[str, list[Tolerance]], outcomes: dict[str, Outcome],
                           wrong: dict[PipelineId, bool]) -> dict[str, bool]:
    """The eager source is the odd one out when ≥3 pipelines on ≥2 independent paths (different converters,
    or a converter and a direct backend) all disagree with it and agree with each other."""
    out: dict[str, bool] = {}
    for src, src_tols in tols.items():
        ran = [p for p in wrong if p.source == src]
        if len(ran) < 3 or not all(wrong[p] for p in ran):
            continue
        if len({p.converter or p.backend for p in ran}) < 2:  # consumers of one exported model are one vote
            continue
        first = outcomes[ran[0].name].outputs
        out[src] = all(not any(r.mismatch for r in compare_outputs(first, outcomes[p.name].outputs, src_tols))
                       for p in ran[1:])
    return out


def group_findings(findings: list[Finding]) -> list[Finding]:
    """One finding per (signature): a converter bug seen by nine consumers is one bug."""
    by_sig: dict[str, Finding] = {}
    for f in findings:
        if f.signature in by_sig:
            by_sig[f.signature].pipelines.extend(p for p in f.pipelines if p not in by_sig[f.signature].pipelines)
        else:
            by_sig[f.signature] = f
    return list(by_sig.values())


def _group_gaps(gaps: list[Gap]) -> list[Gap]:
    by_sig: dict[str, Gap] = {}
    for g in gaps:
        if g.signature in by_sig:
            by_sig[g.signature].pipelines.extend(g.pipelines)
        else:
            by_sig[g.signature] = g
    return list(by_sig.values())


def set_first_op(f: Finding, op: str) -> None:
    """Localisation found the first diverging op: it becomes part of the mismatch signature."""
    f.first_op = op
    resign(f)


def resign(f: Finding) -> None:
    """Recompute the signature after a follow-up refined the component or the first diverging op."""
    if f.symptom == "wrong_output":
        f.signature = mismatch_signature(f.component, f.stage, f.first_op, f.kind)
    elif f.symptom != "slowdown":  # a crash is known by what raised it, never by who is blamed
        f.signature = crash_signature(f.detail.get("raiser", f.component), f.stage, f.kind,
                                      f.detail.get("exc_type", ""), f.detail.get("error", f.message))


def tolerance_pairs(tols: list[Tolerance]) -> list[list[float]]:
    return [[t.atol, t.rtol] for t in tols]


def reference_failure_finding(ref: Reference) -> Finding | None:
    """The eager source itself failed: the generator promised a valid graph, so the source is at fault."""
    if ref.failure is None:
        return None
    f = ref.failure
    component = SOURCE_NAMES[ref.source]
    return Finding(symptom_for_failure(f.kind, f.stage), "reference", location_for("reference", component),
                   component, [f"{ref.source}>reference"], f.kind,
                   crash_signature(component, "reference", f.kind, f.exc_type, f.message),
                   message=f"{f.exc_type}: {f.message}" if f.exc_type else f.message)
