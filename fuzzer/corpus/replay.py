"""Re-check a corpus against the installed versions: each entry's own repro.py, then Parallax's judgement.

Per entry, one status:
* reproduces: repro.py prints REPRODUCED and (unless skipped) Parallax, re-running the entry's graph on
  the pipelines that judged it, still finds the bug with the same signature;
* fixed: repro.py prints NOT REPRODUCED: the pipeline now gives the expected result;
* changed-signature: the bug is still there but looks different: repro.py saw another failure, or
  Parallax's signature for it changed (another stage, component, first op or error text);
* error: repro.py itself broke (no verdict line, a traceback, its own timeout) or changed the entry.

Every entry is read and checked against its manifest before anything runs, so a corrupt corpus is reported
(EntryError) without running half of it. Nothing in the corpus is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fuzzer.corpus.entry import EntryError, read_entry
from generators.ir import Graph
from generators.values import Values

STATUSES = ("reproduces", "fixed", "changed-signature", "error")
VERDICTS = ("REPRODUCED", "NOT REPRODUCED")


@dataclass
class Entry:
    path: Path
    record: dict[str, Any]
    graph: Graph
    values: Values


@dataclass
class ReplayResult:
    entry: str
    pipeline: str
    status: str
    detail: str
    seconds: float
    signature: str
    new_signature: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def find_entries(folder: Path) -> list[Path]:
    """`folder` itself when it is an entry, else its subfolders that hold a finding.json, by name."""
    if not folder.is_dir():
        raise EntryError(f"{folder}: not a folder")
    if (folder / "finding.json").exists():
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "finding.json").exists())


def load_entries(folder: Path) -> list[Entry]:
    """Every entry read and verified; the first bad one raises EntryError."""
    return [Entry(p, *read_entry(p)) for p in find_entries(folder)]


def parse_verdict(stdout: str) -> tuple[str, str]:
    """(REPRODUCED | NOT REPRODUCED | "", the detail line after it) from a repro's output."""
    lines = stdout.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip() in VERDICTS:
            return lines[i].strip(), lines[i + 1].strip() if i + 1 < len(lines) else ""
    return "", ""


def repro_env(work: Path) -> dict[str, str]:
    """The caller's environment with library caches kept out of the entry and the repo."""
    from fuzzer.workers.workdir import worker_env

    return dict(os.environ, **worker_env(work), OMP_NUM_THREADS="1")


def run_repro(entry: Entry, timeout_s: float, env: dict[str, str]) -> tuple[str, str]:
    """Run the entry's repro.py (isolated mode, cwd = the entry) and map its verdict to a status."""
    try:
        proc = subprocess.run([sys.executable, "-I", "repro.py"], cwd=entry.path, env=env, capture_output=True,
                              text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return "error", f"repro.py ran over {timeout_s:.0f} s"
    verdict, detail = parse_verdict(proc.stdout)
    if verdict == "REPRODUCED" and proc.returncode == 0:
        return "reproduces", detail
    if verdict == "NOT REPRODUCED" and proc.returncode == 1:
        return ("changed-signature" if detail.startswith("different failure") else "fixed"), detail
    tail = (proc.stderr.strip().splitlines() or [""])[-1][:200]
    return "error", f"repro.py exited with {proc.returncode} and no verdict: {tail}"


def still_same(entry: Entry, runner: Any) -> tuple[str, str, str, Any]:
    """Parallax's own judgement of the entry's graph on its judging pipelines: (status, new signature, note, the
    finding on the entry's pipeline or None)."""
    from fuzzer.targets.registry import resolve

    rec = entry.record
    try:
        pipelines = resolve(list(rec["judge_pipelines"]))
    except ValueError as e:
        return "error", "", f"cannot run the judging pipelines: {e}", None
    result = runner.run_case(entry.graph, entry.values, pipelines)
    mine = [f for f in result.verdict.findings if rec["pipeline"] in f.pipelines]
    if not mine:
        return ("changed-signature", "", "repro.py reproduces, but Parallax no longer finds a bug on this pipeline",
                None)
    same = [f for f in mine if f.signature == rec["signature"]]
    if same:
        return "reproduces", rec["signature"], "", same[0]
    return "changed-signature", mine[0].signature, f"signature now {mine[0].signature}", mine[0]


def judged_with_controls(entry: Entry, runner: Any) -> tuple[Any, list[str]]:
    """The entry's finding as Parallax judges it now with the blame's controls added to its judging pipelines
    (the unoptimised consumers of its model, the lowest level of its backend): (finding or None, pipelines)."""
    from fuzzer.reduce import control_pipelines
    from fuzzer.targets.registry import default_pipelines, resolve

    rec = entry.record
    available = [p.name for p in default_pipelines()]
    names = list(dict.fromkeys(list(rec["judge_pipelines"]) + control_pipelines([rec["pipeline"]], available)))
    result = runner.run_case(entry.graph, entry.values, resolve(names))
    mine = [f for f in result.verdict.findings if rec["pipeline"] in f.pipelines]
    return (mine[0] if mine else None), names


def accept_signature(entry: Entry, finding: Any, judge_pipelines: list[str]) -> None:
    """Re-file an entry whose repro.py still reproduces under the signature Parallax gives it now (after a change
    to how failures are identified or blamed): finding.json's identity fields and judging pipelines, and
    report.md's signature line; every other file, and the manifest's check of them, stays as it was."""
    from fuzzer.case.files import atomic_write

    rec = dict(entry.record, judge_pipelines=list(judge_pipelines))
    old = rec["signature"]
    for key in ("signature", "component", "location", "kind", "why"):
        rec[key] = getattr(finding, key)
    report = entry.path / "report.md"
    if "report.md" in rec["files"] and report.is_file():
        atomic_write(report, report.read_text().replace(old, finding.signature).encode())
        rec["files"] = dict(rec["files"], **{"report.md": hashlib.sha256(report.read_bytes()).hexdigest()})
    atomic_write(entry.path / "finding.json", (json.dumps(rec, indent=1) + "\n").encode())


def replay(entries: list[Entry], timeout_s: float, work: Path, check_signature: bool = True,
           accept: bool = False) -> list[ReplayResult]:
    """Each entry's repro, then (for those that reproduce) Parallax's signature check in one worker; with
    `accept`, an entry whose repro reproduces but whose signature changed is re-filed under the new one."""
    from fuzzer.case.runner import CaseRunner, RunSettings
    from fuzzer.workers.workdir import prepare, worker_env
    from fuzzer.workers.pool import Limits, Worker

    work = prepare(work)
    env = repro_env(work)
    results: list[ReplayResult] = []
    for e in entries:
        t0 = time.perf_counter()
        before = _snapshot(e.path)
        status, detail = run_repro(e, timeout_s, env)
        if _snapshot(e.path) != before:
            status, detail = "error", "repro.py changed files in the entry"
        results.append(ReplayResult(e.path.name, e.record["pipeline"], status, detail,
                                    time.perf_counter() - t0, e.record["signature"]))
    deep = [(e, r) for e, r in zip(entries, results) if r.status == "reproduces"] if check_signature else []
    if deep:
        stage_timeout = max(float(e.record.get("timeout_s", 120.0)) for e, _ in deep)
        with Worker("fuzzer.targets.job:run_job", Limits(stage_timeout_s=stage_timeout), work / "logs",
                    worker_env(work)) as worker:
            runner = CaseRunner(worker, RunSettings(repeats=1, stage_timeout_s=stage_timeout, localise=True,
                                                    confirm_slowdowns=False, bisect_passes=False))
            for e, r in deep:
                t0 = time.perf_counter()
                status, new, note, finding = still_same(e, runner)
                r.seconds += time.perf_counter() - t0
                r.new_signature = new
                if status == "changed-signature" and accept and finding is not None:
                    finding, names = judged_with_controls(e, runner)
                    if finding is not None:
                        accept_signature(e, finding, names)
                        status, note = "reproduces", f"re-filed: signature was {e.record['signature']}"
                if status != "reproduces" or note:
                    r.status, r.detail = status, note
    return results


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
