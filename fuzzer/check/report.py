"""A finished check as one JSON-ready dict: per pipeline its status, errors, classifier agreement and
timing; crashes by stage; slowdown tests across opt levels; the diagnoses of diverging conversions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fuzzer.check import metrics
from fuzzer.check.runner import Run
from oracles.outcome import Outcome
from oracles.pipeline_id import PipelineId


def _pid(name: str) -> PipelineId:
    from fuzzer.check.job import parse_pid

    return parse_pid(name)


def _status(o: Outcome, errors: dict[str, Any] | None) -> str:
    if o.skipped:
        return "skipped"
    if o.failure is not None:
        return f"crash:{o.failure.kind}" if o.failure.kind not in ("unsupported",) else "unsupported"
    if o.compile_only:
        return "compiled"
    if errors is None:
        return "no-output"
    return {"ok": "ok", "precision": "precision", "semantic": "MISMATCH"}[errors["class"]]


def build_report(run: Run, classifier: bool | None = None) -> dict[str, Any]:
    tols = metrics.tolerances(run.reference, run.reference64) if run.reference else []
    rows = []
    for name, o in run.outcomes.items():
        errors = agree = None
        if name in run.outputs:
            recs = metrics.records(run.reference, run.outputs[name], tols)
            errors = metrics.error_summary(recs)
            agree = metrics.classifier_agreement(run.reference, run.outputs[name]) if classifier is not False else None
        fail = o.failure
        rows.append({"pipeline": name, "status": _status(o, errors),
                     "failed_stage": fail.stage if fail else None,
                     "message": (fail.message.strip().splitlines() or [""])[0][:300] if fail else o.skipped,
                     "errors": errors, "classifier": agree, "timing": metrics.timing(o.run_times),
                     "stage_times": {k: round(v, 4) for k, v in o.stage_times.items()}})
    crashes = Counter(r["failed_stage"] for r in rows if r["failed_stage"] and r["status"] != "unsupported")
    gaps = Counter(r["failed_stage"] for r in rows if r["status"] == "unsupported")
    return {"model": run.spec.to_json(), "framework": run.framework, "inputs": {
                "count": len(run.inputs), "specs": run.input_specs},
            "reference": {"float64_twin": run.reference64 is not None},
            "converters": {c: ({"ok": True, "stage_times": run.converter_times.get(c, {})} if isinstance(m, bytes)
                               else {"ok": False, "failure": m.to_json()}) for c, m in run.converters.items()},
            "pipelines": rows, "crashes_by_stage": dict(crashes),
            "unsupported_by_stage": dict(gaps), "slowdowns": slowdowns(run),
            "diagnoses": run.diagnoses, "files": run.files,
            "seconds": round(run.seconds, 3), "sut_seconds": round(run.sut_seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in sorted(run.stage_seconds.items())}}


def slowdowns(run: Run) -> list[dict[str, Any]]:
    """Each opt level against the lowest level of the same route (source, converter, backend, device)."""
    groups: dict[tuple[str, str, str, str], list[PipelineId]] = {}
    for name, o in run.outcomes.items():
        pid = _pid(name)
        if pid.level and o.run_times:
            groups.setdefault((pid.source, pid.converter, pid.backend, pid.device), []).append(pid)
    out = []
    for pids in groups.values():
        pids.sort(key=lambda p: p.level_rank)
        low = pids[0]
        for high in pids[1:]:
            test = metrics.slowdown(high.name, low.name, run.outcomes[high.name].run_times,
                                    run.outcomes[low.name].run_times)
            out.append(test.to_json())
    return out
