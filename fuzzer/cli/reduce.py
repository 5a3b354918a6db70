"""`parallax reduce CASE [--out DIR]`: shrink a case to the smallest one that still shows the same bug.

CASE is a case folder (`parallax gen --out`, or a campaign finding with its finding.json). DIR gets a
case folder (graph.json, inputs.npz, weights.npz, case.json) plus finding.json (the finding as the
reduced case shows it, and the pipelines needed) and reduce.json (what the reducer did). CASE is only
read. Exit 0: reduced; 1: the bug does not reproduce; 2: bad input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from fuzzer.cli.arg_types import comma_names, positive_float, positive_int
from fuzzer.cli.errors import UsageError

EXIT_DOES_NOT_REPRODUCE = 1


def add_parser(sub: Any) -> None:
    r = sub.add_parser("reduce", help="shrink a case to the smallest one that shows the same bug")
    r.add_argument("case_dir", help="a case folder (from `parallax gen --out` or a campaign finding)")
    r.add_argument("--out", help="folder for the reduced case (default: CASE-reduced beside CASE)")
    r.add_argument("--pipelines", type=comma_names, help="comma-separated pipelines to find and show the bug with "
                   "(default: those in CASE/finding.json, else every available one)")
    r.add_argument("--signature", help="reduce the finding with this signature (or prefix) instead of the first "
                   "(CASE is then run afresh, even when it has a finding.json)")
    r.add_argument("--budget", type=positive_float, default=600.0, help="seconds allowed for the reduction "
                   "(the best so far is written when it runs out)")
    r.add_argument("--max-runs", type=positive_int, help="at most this many predicate runs")
    r.add_argument("--stage-timeout", type=positive_float, default=120.0, help="seconds allowed per stage")
    r.add_argument("--memory-mb", type=positive_int, default=8192, help="worker memory limit (resident MiB)")
    r.add_argument("--work-dir", default=".work", help="worker logs and library caches")
    r.add_argument("--corpus-entry", action="store_true",
                   help="also write the corpus entry (repro.py, report.md, ONNX test data) into OUT/entry")
    r.add_argument("--json", action="store_true", help="print reduce.json instead of the summary")
    r.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    r.set_defaults(run=run_reduce)


def read_finding(folder: Path) -> dict[str, Any] | None:
    """CASE/finding.json, if any: a Finding's JSON (optionally under "finding"), maybe with "pipelines_needed"."""
    path = folder / "finding.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: not valid JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("finding"), dict):
        data = {**data["finding"], **{k: v for k, v in data.items() if k != "finding"}}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    missing = [k for k in ("signature", "symptom", "stage", "pipelines") if k not in data]
    if missing:
        raise UsageError(f"{path}: missing {', '.join(missing)}")
    if not isinstance(data["pipelines"], list) or not all(isinstance(p, str) for p in data["pipelines"]):
        raise UsageError(f"{path}: 'pipelines' must be a list of pipeline names")
    return data


def finding_from_json(d: dict[str, Any]) -> Any:
    """A Finding from finding.json, tolerant of fields added or left out by whoever wrote it."""
    from oracles.judge import Finding

    detail = d.get("detail") if isinstance(d.get("detail"), dict) else {}
    return Finding(str(d["symptom"]), str(d["stage"]), str(d.get("location", "")), str(d.get("component", "")),
                   list(d["pipelines"]), str(d.get("kind", "")), str(d["signature"]),
                   message=str(d.get("message", "")), why=str(d.get("why", "")), first_op=str(d.get("first_op", "")),
                   culprit=str(d.get("culprit", "")), detail=detail)


def _out_folder(case: Path, out: str | None) -> Path:
    dest = Path(out) if out else case.parent / f"{case.name}-reduced"
    c, d = case.resolve(), dest.resolve()
    if d == c or c in d.parents:
        raise UsageError(f"{dest}: the output must not be the case folder or inside it (CASE is never modified)")
    if d.exists() and not d.is_dir():
        raise UsageError(f"{dest}: exists and is not a folder")
    if d.is_dir() and any(d.iterdir()) and not (d / "reduce.json").exists():
        raise UsageError(f"{dest}: exists, is not empty and is not a reduce output; choose another --out")
    return dest


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _dump(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, default=_json_default) + "\n").encode()


def run_reduce(args: argparse.Namespace) -> int:
    from fuzzer.case.files import CaseError, read_case
    from fuzzer.reduce import DoesNotReproduce, find_target, reduce_case
    from fuzzer.targets.registry import default_pipelines, resolve
    from fuzzer.workers.pool import Limits, Worker
    from fuzzer.workers.workdir import prepare, worker_env
    from oracles.pipeline_id import PipelineError

    case = Path(args.case_dir)
    if not case.is_dir():
        raise UsageError(f"{case}: not a folder (expected a case folder with graph.json, inputs.npz, weights.npz)")
    try:
        graph, values = read_case(case)
    except CaseError as e:
        raise UsageError(str(e)) from None
    recorded = read_finding(case)
    out = _out_folder(case, args.out)
    try:
        chosen = [p.name for p in resolve(list(args.pipelines))] if args.pipelines else None
        available = [p.name for p in default_pipelines()]
        if recorded is not None:
            resolve(list(recorded["pipelines"]) + list(recorded.get("pipelines_needed") or []))
    except (PipelineError, ValueError) as e:
        raise UsageError(str(e)) from None
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"reduce: {msg}", file=sys.stderr, flush=True))
    work = prepare(Path(args.work_dir))
    limits = Limits(stage_timeout_s=args.stage_timeout, memory_mb=args.memory_mb)
    with Worker("fuzzer.targets.job:run_job", limits, work / "logs", worker_env(work)) as worker:
        try:
            if recorded is None or args.signature:
                pipes = chosen or available
                say(f"looking for a finding over {len(pipes)} pipeline(s)")
                target = find_target(graph, values, worker, pipes, args.signature, args.stage_timeout)
                say(f"target: {target.signature} on {target.pipeline}")
                result = reduce_case(graph, values, target, worker, args.budget, say, args.max_runs,
                                     args.stage_timeout)
            else:
                result = _reduce_recorded(graph, values, recorded, chosen, available, worker, args, say)
        except DoesNotReproduce as e:
            print(f"parallax: {e}", file=sys.stderr)
            return EXIT_DOES_NOT_REPRODUCE
    stats = dict(result.stats, case=str(case), out=str(out))
    try:
        write_reduced(out, str(case), graph, result, stats)
    except OSError as e:
        raise UsageError(f"{out}: cannot write ({e})") from None
    if args.corpus_entry:
        note = write_corpus_entry(out, result, args.stage_timeout, args.memory_mb)
        if note:
            print(f"parallax: {note}", file=sys.stderr)
    if args.json:
        print(_dump(stats).decode(), end="")
    else:
        print_summary(stats, result.finding.to_json(), result.pipelines)
    return 0


def _reduce_recorded(graph: Any, values: Any, recorded: dict[str, Any], chosen: list[str] | None,
                     available: list[str], worker: Any, args: argparse.Namespace, say: Any) -> Any:
    """A finding.json names the target. Try a compact pipeline set first (the finding's pipelines and the
    controls of its blame), then the full set it may have been judged with."""
    from fuzzer.reduce import DoesNotReproduce, ReductionTarget, control_pipelines, reduce_case

    finding = finding_from_json(recorded)
    needed = list(recorded.get("pipelines_needed") or [])
    if chosen or needed:
        tries = [chosen or needed]
    else:
        compact = control_pipelines(finding.pipelines, available)
        tries = [compact] + ([available] if set(available) - set(compact) else [])
    last: Exception | None = None
    for pipes in tries:
        try:
            target = ReductionTarget.from_finding(finding, sorted(set(pipes) | set(finding.pipelines)))
        except ValueError as e:
            raise UsageError(str(e)) from None
        say(f"target: {target.signature} on {target.pipeline} ({len(target.pipelines)} pipelines)")
        try:
            return reduce_case(graph, values, target, worker, args.budget, say, args.max_runs, args.stage_timeout)
        except DoesNotReproduce as e:
            last = e
            say(f"{e}; widening the pipeline set" if pipes is not tries[-1] else str(e))
    assert last is not None
    raise last


def write_reduced(out: Path, reduced_from: str, original: Any, result: Any, stats: dict[str, Any]) -> None:
    """The reduced case folder: graph.json, inputs.npz, weights.npz, case.json, finding.json, reduce.json."""
    from fuzzer.case.files import atomic_write, write_case

    meta = {"reduced_from": reduced_from, "hash": original.content_hash(), "reduced_hash": result.graph.content_hash(),
            "nodes": len(result.graph.nodes), "signature": result.finding.signature}
    write_case(out, result.graph, result.values, meta)
    atomic_write(out / "finding.json", _dump(dict(result.finding.to_json(), pipelines_needed=result.pipelines)))
    atomic_write(out / "reduce.json", _dump(stats))


def write_corpus_entry(out: Path, result: Any, timeout_s: float = 120.0, memory_mb: int = 8192) -> str:
    """The corpus entry hook: `fuzzer.corpus.entry.write_entry` (the corpus issue's module), into OUT/entry.

    Called as write_entry(out_dir, graph, values, finding, result, pipeline=..., timeout_s=..., memory_mb=...)
    with the run that showed the finding on the reduced case as `result`. Returns a note for the user when
    no entry was written ("" when it was)."""
    try:
        mod = importlib.import_module("fuzzer.corpus.entry")
    except ModuleNotFoundError:
        return "no corpus entry written: fuzzer.corpus.entry is not installed"
    write_entry = getattr(mod, "write_entry", None)
    if write_entry is None:
        return "no corpus entry written: fuzzer.corpus.entry has no write_entry"
    if result.evidence is None:
        return "no corpus entry written: no run of the reduced case to take the models from"
    # ---- CORPUS ENTRY CALL SITE ----
    try:
        write_entry(out / "entry", result.graph, result.values, result.finding, result.evidence,
                    pipeline=result.stats.get("pipeline"), timeout_s=timeout_s, memory_mb=memory_mb)
    except Exception as e:  # the reduced case is already written: report, do not lose it
        return f"corpus entry not written: {type(e).__name__}: {e}"
    return ""


def print_summary(stats: dict[str, Any], finding: dict[str, Any], pipelines: list[str]) -> None:
    print(f"reduced {stats['nodes_before']} -> {stats['nodes_after']} nodes, "
          f"{stats['elements_before']} -> {stats['elements_after']} elements, "
          f"{stats['pipelines_before']} -> {stats['pipelines_after']} pipelines")
    print(f"{stats['candidates_tried']} candidates tried, {stats['predicate_runs']} predicate runs, "
          f"{stats['cache_hits']} cache hits, {stats['invalid_candidates']} invalid, {stats['seconds']:.1f} s"
          + (" (budget exhausted: best so far)" if stats["budget_exhausted"] else ""))
    print(f"FINDING {finding['symptom']} at {finding['stage']}, blamed on {finding['component']}"
          + (f", first diverging op {finding['first_op']}" if finding.get("first_op") else ""))
    print(f"  signature: {finding['signature']}")
    print(f"  pipelines needed: {', '.join(pipelines)}")
    print(f"  written to {stats['out']}")
