"""Precision of the bug list: is each row a real, distinct bug that a maintainer would accept as-is?

Runs a real campaign (`parallax fuzz`, the default pipelines unless --pipelines), then reads its bug list the
way a maintainer would, mechanically:
- reproduces: each bug's smallest stored example is re-run in a brand-new worker process (its own interpreter)
  through the pipelines that case ran; the bug reproduces when a finding with the same signature comes back;
- rows sharing a message: crash-like rows (crash, invalid model, hang, oom) whose normalised error message and
  stage equal another row's: one root cause filed twice;
- rows matching an idiom: rows whose error is a library's own "not supported" wording (oracles.unsupported):
  a documented limitation filed as a bug.
Targets: every row reproduces; 0 rows share a message; 0 rows match an idiom.

    .venv/bin/python bench/precision.py --time 30m [--workers 2] [--out DIR] [--pipelines ...]
    .venv/bin/python bench/precision.py --out DIR --no-campaign      # judge an existing campaign's list

The rows go to stderr, one line each (signature, component, symptom, reproduces, message), for reading by
hand; the result is one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzzer.case.files import read_case  # noqa: E402
from fuzzer.case.runner import CaseRunner, RunSettings  # noqa: E402
from fuzzer.cli.arg_types import parse_duration  # noqa: E402
from fuzzer.reduce import control_pipelines  # noqa: E402
from fuzzer.report.load import load_report  # noqa: E402
from fuzzer.targets.registry import resolve  # noqa: E402
from fuzzer.workers.pool import Limits, Worker  # noqa: E402
from fuzzer.workers.workdir import prepare, worker_env  # noqa: E402
from oracles.signature import normalise_message  # noqa: E402
from oracles.unsupported import is_unsupported  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CRASH_LIKE = ("crash", "invalid_model", "hang", "oom")


def run_campaign(out: Path, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "fuzzer.cli", "fuzz", "--out", str(out), "--time", args.time, "--workers",
           str(args.workers), "--quiet", "--reduce-budget", str(args.reduce_budget), "--work-dir", str(args.work)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.pipelines:
        cmd += ["--pipelines", args.pipelines]
    t0 = time.monotonic()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    print(r.stdout[-3000:], file=sys.stderr)
    if r.returncode != 0:
        print(r.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"precision: the campaign failed (exit {r.returncode})")
    return time.monotonic() - t0


def reproduces_fresh(example: Path, signature: str, work: Path) -> tuple[bool, str]:
    """Re-run the example in a brand-new worker through the finding's pipelines and the controls its blame
    needs (the unoptimised consumers of its model, the lowest level of its backend), taken from the pipelines
    its case ran: same signature again?"""
    info = json.loads((example / "finding.json").read_text())
    graph, values = read_case(example)
    ran = list(info.get("case_pipelines") or info["pipelines"])
    try:
        pipelines = resolve(control_pipelines(list(info["pipelines"]), ran))
    except ValueError as e:
        return False, f"cannot run its pipelines: {e}"
    slow = info.get("symptom") == "slowdown"
    with Worker("fuzzer.targets.job:run_job", Limits(stage_timeout_s=120), work / "logs", worker_env(work)) as w:
        result = CaseRunner(w, RunSettings(repeats=10 if slow else 1, confirm_slowdowns=slow,
                                           bisect_passes=False)).run_case(graph, values, pipelines)
    sigs = [f.signature for f in result.verdict.findings]
    if signature in sigs:
        return True, ""
    return False, f"got {len(sigs)} other findings: {', '.join(s[:60] for s in sigs[:3])}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", default="30m", help="campaign length (90s, 30m, 1h)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pipelines", help="comma-separated (default: the campaign's default selection)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--out", help="campaign folder (default: a new temp folder under .work/)")
    ap.add_argument("--no-campaign", action="store_true", help="judge the campaign already in --out")
    ap.add_argument("--reduce-budget", type=float, default=0.0, help="background reduction per bug (default off)")
    ap.add_argument("--work", default=str(REPO / ".work"))
    args = ap.parse_args()
    parse_duration(args.time)
    work = prepare(Path(args.work))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="precision-", dir=work)) / "campaign"
    seconds = None if args.no_campaign else run_campaign(out, args)
    data = load_report(out)
    pool = ThreadPoolExecutor(max(1, args.workers))  # each check starts its own fresh worker process
    rows: list[dict[str, Any]] = []
    checks = {b.signature: pool.submit(reproduces_fresh, out / b.smallest_dir, b.signature, work)
              for b in data.bugs if b.smallest_dir}
    for b in data.bugs:
        ok, why = checks[b.signature].result() if b.signature in checks else (False, "no example kept")
        parts = b.signature.split("|")
        exc_type = parts[4] if parts[0] == "crash" and len(parts) > 4 else ""
        rows.append({"sig12": b.sig12, "signature": b.signature, "symptom": b.symptom, "stage": b.stage,
                     "component": b.component, "count": b.count, "reproduces": ok, "why_not": why,
                     "message": b.message, "normalised": normalise_message(b.message or ""),
                     "idiom": b.symptom in CRASH_LIKE and is_unsupported(exc_type, b.message or "")})
        print(json.dumps({k: (v[:300] if isinstance(v, str) else v) for k, v in rows[-1].items()}), file=sys.stderr,
              flush=True)
    shared = Counter((r["stage"], r["normalised"]) for r in rows if r["symptom"] in CRASH_LIKE and r["normalised"])
    sharing = [r["sig12"] for r in rows if r["symptom"] in CRASH_LIKE and shared[(r["stage"], r["normalised"])] > 1]
    reproduced = sum(r["reproduces"] for r in rows)
    print(json.dumps({
        "bench": "precision", "campaign_seconds": round(seconds, 1) if seconds else None, "store": str(out),
        "cases": data.cases_total, "distinct_bugs": len(rows), "flaky_kept_apart": len(data.flaky),
        "gaps": len(data.gaps), "reproduces_fresh": {r["sig12"]: r["reproduces"] for r in rows},
        "reproduced_share": round(reproduced / len(rows), 3) if rows else None,
        "rows_sharing_a_message": len(sharing), "sharing": sharing,
        "rows_matching_an_idiom": sum(r["idiom"] for r in rows),
        "by_component": dict(Counter(r["component"] for r in rows)),
        "targets": {"reproduced_share": 1.0, "rows_sharing_a_message": 0, "rows_matching_an_idiom": 0}}))


if __name__ == "__main__":
    main()
