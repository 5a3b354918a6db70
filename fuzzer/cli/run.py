"""`parallax run CASE_DIR`: one case through the pipelines, judged, as a table or JSON.

`run` exits 0 when no pipeline shows a bug, 1 when there are findings, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fuzzer.cli.arg_types import comma_names, positive_float, positive_int
from fuzzer.cli.errors import UsageError
from fuzzer.targets.registry import default_pipelines, resolve
from fuzzer.workers.workdir import prepare, worker_env
from oracles.outcome import Outcome
from oracles.pipeline_id import PipelineError


def add_parser(sub: Any) -> None:
    r = sub.add_parser("run", help="run one case through the pipelines and judge it (exit 1 when it finds bugs)")
    r.add_argument("case_dir", help="a case folder from `parallax gen --out`")
    r.add_argument("--pipelines", type=comma_names, help="comma-separated pipelines (default: every available one; "
                   "see `parallax targets`)")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    r.add_argument("--repeats", type=positive_int, default=10, help="timed runs per optimisation level")
    r.add_argument("--stage-timeout", type=positive_float, default=120.0, help="seconds allowed per stage")
    r.add_argument("--memory-mb", type=positive_int, default=8192, help="worker memory limit (resident MiB)")
    r.add_argument("--work-dir", default=".work", help="worker logs and library caches")
    r.set_defaults(run=run_case_command)


def run_case_command(args: argparse.Namespace) -> int:
    from fuzzer.case.files import CaseError, read_case
    from fuzzer.case.runner import CaseRunner, RunSettings
    from fuzzer.workers.pool import Limits, Worker

    folder = Path(args.case_dir)
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder (expected a case from `parallax gen --out`)")
    try:
        graph, values = read_case(folder)
    except CaseError as e:
        raise UsageError(str(e)) from None
    try:
        pipelines = resolve(list(args.pipelines)) if args.pipelines else default_pipelines()
    except (PipelineError, ValueError) as e:
        raise UsageError(str(e)) from None
    work = prepare(Path(args.work_dir))
    settings = RunSettings(repeats=args.repeats, stage_timeout_s=args.stage_timeout)
    limits = Limits(stage_timeout_s=args.stage_timeout, memory_mb=args.memory_mb)
    with Worker("fuzzer.targets.job:run_job", limits, work / "logs", worker_env(work)) as worker:
        result = CaseRunner(worker, settings).run_case(graph, values, pipelines)
    report = case_report(folder, result)
    if args.json:
        print(json.dumps(report, indent=1, default=_json_default))
    else:
        print_report(report)
    return 1 if report["findings"] else 0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def outcome_label(o: Outcome, mismatched: bool) -> str:
    if o.skipped:
        return "skipped"
    if o.failure is not None:
        return o.failure.kind
    if o.compile_only:
        return "compiled"
    return "MISMATCH" if mismatched else "ok"


def case_report(folder: Path, result: Any) -> dict[str, Any]:
    v = result.verdict
    rows = []
    for name, o in sorted(result.outcomes.items()):
        recs = v.records.get(name, [])
        finite = [r.max_abs for r in recs if r.max_abs is not None and np.isfinite(r.max_abs)]
        rows.append({"pipeline": name, "stage": o.stage_reached(), "outcome": outcome_label(o, name in v.mismatched),
                     "max_abs_error": max(finite) if finite else None,
                     "seconds": round(sum(o.stage_times.values()), 4),
                     "message": (o.failure.message.splitlines() or [""])[0][:160] if o.failure else o.skipped})
    refs = {s: ("ok" if r.failure is None else f"{r.failure.kind}: {r.failure.message[:120]}")
            for s, r in result.references.items()}
    return {"case": str(folder), "references": refs, "pipelines": rows,
            "findings": [f.to_json() for f in v.findings],
            "capability_gaps": [g.__dict__ for g in v.gaps], "notes": result.followup_notes,
            "seconds": round(result.seconds, 3), "worker_seconds": round(result.worker_seconds, 3)}


def print_report(report: dict[str, Any]) -> None:
    rows = report["pipelines"]
    w = max([len(r["pipeline"]) for r in rows] + [8])
    print(f"{'pipeline':<{w}}  {'stage':<9}  {'outcome':<12}  {'max error':>10}  {'time s':>7}")
    for r in rows:
        err = "" if r["max_abs_error"] is None else f"{r['max_abs_error']:.3g}"
        print(f"{r['pipeline']:<{w}}  {r['stage']:<9}  {r['outcome']:<12}  {err:>10}  {r['seconds']:>7.3f}"
              + (f"  {r['message']}" if r["message"] and r["outcome"] not in ("ok", "MISMATCH") else ""))
    for src, state in report["references"].items():
        if state != "ok":
            print(f"reference {src}: {state}")
    print()
    if not report["findings"]:
        print("no findings")
    for f in report["findings"]:
        print(f"FINDING {f['symptom']} at {f['stage']} ({f['location']}), blamed on {f['component']}"
              + (f", first diverging op {f['first_op']}" if f["first_op"] else "")
              + (f", pass {f['culprit']}" if f["culprit"] else ""))
        print(f"  pipelines: {', '.join(f['pipelines'])}")
        print(f"  {f['message'].splitlines()[0][:200] if f['message'] else ''}")
        if f["why"]:
            print(f"  why: {f['why']}")
        print(f"  signature: {f['signature']}")
    for g in report["capability_gaps"]:
        print(f"capability gap (not a bug): {g['component']} {g['op'] or ''}: {g['message'].splitlines()[0][:160]}")
    for n in report["notes"]:
        print(f"note: {n}")
    print(f"{report['seconds']:.2f} s ({report['worker_seconds']:.2f} s in workers)", file=sys.stderr)
