"""The campaign parent's side of `--coverage`: one JSON line per judged case under OUT/coverage/.

`append_case` turns a case's graph and the "reach" event of fuzzer/reach/covered_job.py into a one-case Tally
line and appends it to OUT/coverage/reach-<pid>.jsonl (one writer per file; a line cut short by a kill is
skipped on reading). `parallax coverage OUT` then reads these lines and the workers' arcs-*.jsonl files from
the same folder (fuzzer/reach/inputs.py) instead of replaying.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from fuzzer.reach.inputs import RECORDED_DIR
from fuzzer.reach.tally import Tally
from generators.ir import Graph


def coverage_folder(out: Path) -> Path:
    """Where a campaign's workers and parent write coverage (pass it as the job's "coverage_dir")."""
    return out / RECORDED_DIR


def case_line(graph: Graph, reach_event: dict[str, Any] | None, failed_routes: set[str] = frozenset()) -> dict:
    tally = Tally()
    tally.add_graph(graph)
    for route, keys in ((reach_event or {}).get("routes") or {}).items():
        tally.add_route(route, "failed" if route in failed_routes else "ok", keys)
    return tally.to_json()


def append_case(out: Path, line: dict[str, Any]) -> None:
    """One line per case, stamped with the time it was recorded ("t"), so a report can draw reach over time."""
    line = {**line, "t": round(time.time(), 3)}
    folder = coverage_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"reach-{os.getpid()}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)


def reach_over_time(folder: Path, registries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Cumulative reach after each recorded case, oldest first: [{"t", "cases", component: reached}, ...]
    (`registries` is component -> fuzzer.reach.excluded.registry_info; excluded keys do not count)."""
    lines: list[dict[str, Any]] = []
    for path in sorted(folder.glob("reach-*.jsonl")):
        for raw in path.read_bytes().split(b"\n"):
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and "t" in rec:
                lines.append(rec)
    wanted = {c: set(info["keys"]) - set(info["excluded"]) for c, info in registries.items()}
    reached: dict[str, set[str]] = {c: set() for c in wanted}
    points = []
    for n, rec in enumerate(sorted(lines, key=lambda r: r["t"]), 1):
        for c, by_route in rec.get("keys", {}).items():
            if c in reached:
                for keys in by_route.values():
                    reached[c].update(k for k in keys if k in wanted[c])
        points.append({"t": rec["t"], "cases": n, **{c: len(ks) for c, ks in reached.items()}})
    return points
