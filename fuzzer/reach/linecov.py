"""Line and branch coverage (coverage.py) of the converters' and frontends' Python packages, per case.

In a worker, `CaseCoverage` measures one case at a time and appends the arcs that case reached for the first
time (in this worker) as one JSON line to its own file under a coverage folder, flushed and fsynced before the
worker reports the case done. A worker killed mid-case loses only that case: every earlier line is on disk,
and a line cut short by the kill is skipped by `read_arcs`. A respawned worker writes a new file (named by
its pid and start time), so nothing is ever overwritten; the parent merges all files (a union of arcs).

Arcs are plain JSON ([[from, to], ...] per absolute file path), so they cross the worker boundary as data and
merge without coverage's own data files. `package_report` turns merged arcs into line and branch coverage per
package with coverage.py's own analysis, counting every file of the package, imported or not.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

# Package label -> its path below an importable top-level package. Found without importing anything.
PACKAGES = {"tf2onnx": ("tf2onnx",), "torch.onnx": ("torch", "onnx"), "onnxscript": ("onnxscript",),
            "tvm.relax.frontend": ("tvm", "relax", "frontend"), "onnx.reference": ("onnx", "reference")}
Arcs = dict[str, set[tuple[int, int]]]


def package_dirs(packages: dict[str, tuple[str, ...]] | None = None) -> dict[str, str]:
    """Label -> source folder of each package that is installed (find_spec of a top-level name imports nothing)."""
    out: dict[str, str] = {}
    for label, parts in (packages or PACKAGES).items():
        spec = importlib.util.find_spec(parts[0])
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(list(spec.submodule_search_locations)[0]).joinpath(*parts[1:])
        if folder.is_dir():
            out[label] = str(folder.resolve())
    return out


def package_of(path: str, dirs: dict[str, str]) -> str | None:
    """The label of the package a measured file belongs to (the longest folder that holds it)."""
    best = None
    for label, folder in dirs.items():
        if path.startswith(folder + os.sep) and (best is None or len(folder) > len(dirs[best])):
            best = label
    return best


class CaseCoverage:
    """coverage.py around one case at a time in a worker; `save_case` appends that case's new arcs."""

    def __init__(self, folder: Path, dirs: dict[str, str] | None = None) -> None:
        self.dirs = dirs if dirs is not None else package_dirs()
        self.cov = _coverage(self.dirs)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"arcs-{os.getpid()}-{time.time_ns()}.jsonl"
        self.seen: Arcs = {}
        self.cases = 0

    def start(self) -> None:
        self.cov.start()

    def stop(self) -> Arcs:
        """Stop measuring and return the arcs no earlier case of this worker reached."""
        self.cov.stop()
        data = self.cov.get_data()
        new: Arcs = {}
        for f in data.measured_files():
            arcs = set(data.arcs(f) or ())
            fresh = arcs - self.seen.get(f, set())
            if fresh:
                new[f] = fresh
                self.seen.setdefault(f, set()).update(fresh)
        self.cov.erase()
        return new

    def save_case(self, new: Arcs, label: str = "") -> None:
        """Append one line and make it durable: after this returns, a kill cannot lose the case."""
        self.cases += 1
        line = json.dumps({"case": label, "n": self.cases, "arcs": arcs_json(new)}, separators=(",", ":"))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def arcs_json(arcs: Arcs) -> dict[str, list[list[int]]]:
    return {f: sorted([a, b] for a, b in pairs) for f, pairs in sorted(arcs.items())}


def merge_arcs(into: Arcs, more: dict[str, Any]) -> Arcs:
    for f, pairs in more.items():
        into.setdefault(f, set()).update((int(a), int(b)) for a, b in pairs)
    return into


def read_arcs(folder: Path) -> tuple[Arcs, int]:
    """The union of every worker file's arcs, and how many cases they hold. A last line cut short by a kill
    (no newline, or not JSON) is skipped."""
    merged: Arcs = {}
    cases = 0
    for path in sorted(folder.glob("arcs-*.jsonl")):
        for raw in path.read_bytes().split(b"\n"):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("arcs"), dict):
                merge_arcs(merged, rec["arcs"])
                cases += 1
    return merged, cases


def package_report(arcs: Arcs, dirs: dict[str, str] | None = None, html_dir: Path | None = None) -> dict[str, Any]:
    """Line and branch coverage per package: covered/total statements and branches over every Python file of the
    package (coverage.py's analysis; files never imported count as wholly missed). Optionally an HTML report."""
    dirs = dirs if dirs is not None else package_dirs()
    cov = _coverage(dirs)
    data = cov.get_data()
    data.add_arcs({f: sorted(pairs) for f, pairs in arcs.items() if package_of(f, dirs)})
    every = {str(p) for d in dirs.values() for p in Path(d).rglob("*.py")}
    data.touch_files(sorted(every - set(data.measured_files())))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        cov.json_report(outfile=str(out), ignore_errors=True)
        files = json.loads(out.read_text())["files"]
        if html_dir is not None:
            cov.html_report(directory=str(html_dir), ignore_errors=True)
    totals: dict[str, dict[str, int]] = {label: {"files": 0, "files_run": 0, "lines": 0, "lines_covered": 0,
                                                 "branches": 0, "branches_covered": 0} for label in dirs}
    for path, rec in files.items():
        label = package_of(str(Path(path).resolve()), dirs)
        if label is None:
            continue
        s = rec["summary"]
        t = totals[label]
        t["files"] += 1
        t["files_run"] += int(s["covered_lines"] > 0)
        t["lines"] += s["num_statements"]
        t["lines_covered"] += s["covered_lines"]
        t["branches"] += s.get("num_branches", 0)
        t["branches_covered"] += s.get("covered_branches", 0)
    return {label: {**t, "line_pct": _pct(t["lines_covered"], t["lines"]),
                    "branch_pct": _pct(t["branches_covered"], t["branches"])} for label, t in totals.items()}


def _coverage(dirs: dict[str, str]) -> Any:
    """Branch coverage of files under these folders. `include`, not `source`: with `source`, coverage.py walks
    every folder for never-imported files on each get_data (0.1 s a case); the report adds those files itself."""
    import coverage

    cov = coverage.Coverage(data_file=None, branch=True, include=[f"{d}/*" for d in dirs.values()],
                            config_file=False)
    cov.set_option("run:disable_warnings", ["no-data-collected", "module-not-measured"])
    return cov


def _pct(a: int, b: int) -> float:
    return round(100.0 * a / b, 2) if b else 0.0
