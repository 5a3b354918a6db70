"""The nightly view: which bugs are new since a previous run (or a previous night's store), which vanished.

A bug "vanished" only means something when the later runs tested a pipeline that showed it: each vanished
entry says whether any of its pipelines ran afterwards (`tested_after`). `parallax report --since` always
exits 0; a `parallax nightly` command decides its own exit status from `compare_runs`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzer.report.load import Bug, finding_pipelines, load_bugs
from fuzzer.report.store_read import StoreError, open_store, table_names


@dataclass
class SinceEntry:
    bug: Bug  # as the later side knows it (the earlier side for vanished bugs)
    count_before: int
    count_after: int
    tested_after: bool  # some pipeline that showed it ran after the baseline and was not scheduled to skip it
    skipped: list[str] = field(default_factory=list)  # "pipeline skips op" rows the scheduler keyed on this bug

    @property
    def why_untested(self) -> str:
        if self.tested_after:
            return ""
        if self.skipped:
            return "skipped by scheduling: " + "; ".join(self.skipped)
        return "none of its pipelines ran after the baseline"

    def to_json(self) -> dict[str, Any]:
        b = self.bug
        return {"signature": b.signature, "sig12": b.sig12, "symptom": b.symptom, "location": b.location,
                "component": b.component, "first_op": b.first_op, "message": b.headline,
                "pipelines": b.pipelines, "count_before": self.count_before, "count_after": self.count_after,
                "tested_after": self.tested_after, "why_untested": self.why_untested, "skipped": self.skipped,
                "smallest_dir": b.smallest_dir}


@dataclass
class SinceReport:
    baseline: str  # "run 3" or the other store's folder
    new: list[SinceEntry]
    vanished: list[SinceEntry]
    still: list[SinceEntry]
    cases_before: int
    cases_after: int
    pipelines_before: list[str]
    pipelines_after: list[str]

    @property
    def untested_vanished(self) -> list[SinceEntry]:
        """Vanished bugs that nothing after the baseline looked for: not evidence of a fix."""
        return [e for e in self.vanished if not e.tested_after]

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "cases_before": self.cases_before, "cases_after": self.cases_after,
                "pipelines_before": self.pipelines_before, "pipelines_after": self.pipelines_after,
                "pipelines_common": sorted(set(self.pipelines_before) & set(self.pipelines_after)),
                "new": [e.to_json() for e in self.new], "vanished": [e.to_json() for e in self.vanished],
                "still": [e.to_json() for e in self.still]}


def is_run_id(since: str | int) -> bool:
    return isinstance(since, int) or (isinstance(since, str) and since.strip().isdigit())


def compare_runs(store: Path, since: str | int) -> SinceReport:
    """Bugs of `store` (a campaign folder) new / vanished / still there relative to a baseline: a run id of the
    same store (runs after it against runs up to it) or another campaign folder (this store against that one).
    Raises StoreError for a bad store or an unknown run id."""
    if is_run_id(since):
        return _against_run(store, int(since))
    other = Path(since)
    return _against_store(store, other)


def _tested_pipelines(conn: sqlite3.Connection, campaign_config: dict[str, Any] | None = None) -> list[str]:
    """Pipelines that judged at least one case (the coverage table), else the ones the campaign was told to run."""
    if "coverage" in table_names(conn):
        names = sorted({r[0] for r in conn.execute("SELECT DISTINCT pipeline FROM coverage WHERE cases > 0")
                        if r[0]})
        if names:
            return names
    pipes = (campaign_config or {}).get("pipelines")
    if isinstance(pipes, str):
        pipes = [p.strip() for p in pipes.split(",")]
    return sorted(p for p in pipes or [] if isinstance(p, str) and p)


def _skips(conn: sqlite3.Connection) -> dict[str, list[tuple[str, str]]]:
    """Signature -> the (pipeline, op) pairs the scheduler skips because of it."""
    out: dict[str, list[tuple[str, str]]] = {}
    tables = table_names(conn)
    for table in ("skip_rules", "skips"):  # skip_rules: every rule; skips: one per (pipeline, op), older stores
        if table in tables:
            for pipe, op, sig in conn.execute(f"SELECT pipeline, op, signature FROM {table}"):
                if (pipe, op) not in out.get(sig, []):
                    out.setdefault(sig, []).append((pipe, op))
    return out


def _vanished(b: Bug, before: int, tested: set[str], skips: dict[str, list[tuple[str, str]]]) -> SinceEntry:
    """A bug not seen after the baseline, and whether anything looked for it: a pipeline that showed it ran,
    and the scheduler did not skip its graphs there because of this very bug."""
    skipped = skips.get(b.signature, [])
    skipped_pipes = {p for p, _ in skipped}
    looked = (set(b.pipelines) & tested) - skipped_pipes
    return SinceEntry(b, before, 0, bool(looked), [f"{p} skips {op}" for p, op in skipped])


def _config(conn: sqlite3.Connection) -> dict[str, Any]:
    row = conn.execute("SELECT config_json FROM campaign").fetchone()
    try:
        cfg = json.loads(row[0]) if row and row[0] else {}
    except ValueError:
        cfg = {}
    return cfg if isinstance(cfg, dict) else {}


def _against_run(store: Path, run_id: int) -> SinceReport:
    conn, out = open_store(store)
    try:
        runs = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id")]
        if run_id not in runs:
            known = f"{runs[0]}..{runs[-1]}" if runs else "none"
            raise StoreError(f"{out}: unknown run id {run_id} (runs in this store: {known})")
        before = dict(conn.execute("SELECT signature, COUNT(*) FROM findings WHERE run_id <= ? GROUP BY signature",
                                   (run_id,)).fetchall())
        after = dict(conn.execute("SELECT signature, COUNT(*) FROM findings WHERE run_id > ? GROUP BY signature",
                                  (run_id,)).fetchall())
        later_start = conn.execute("SELECT MIN(started) FROM runs WHERE id > ?", (run_id,)).fetchone()[0]
        cases_before = conn.execute("SELECT COUNT(*) FROM cases WHERE run_id <= ?", (run_id,)).fetchone()[0]
        cases_after = conn.execute("SELECT COUNT(*) FROM cases WHERE run_id > ?", (run_id,)).fetchone()[0]
        bugs = load_bugs(conn)
        after_pipes = finding_pipelines(conn, "WHERE run_id > ?", (run_id,))
        pipelines = _tested_pipelines(conn, _config(conn))
        skips = _skips(conn)
    except sqlite3.Error as e:
        raise StoreError(f"{out}: not a Parallax store ({e})") from None
    finally:
        conn.close()
    # The findings table holds every occurrence; signature times back it up should a writer keep fewer rows.
    tested = set(pipelines) if cases_after else set()
    new, vanished, still = [], [], []
    for b in bugs:
        n_before = before.get(b.signature, 0) or int(b.first_run is not None and b.first_run <= run_id)
        n_after = after.get(b.signature, 0) or int(later_start is not None and b.last_seen is not None
                                                    and b.last_seen >= later_start)
        if n_after and n_before:
            still.append(SinceEntry(b, n_before, n_after, True))
        elif n_after:
            b.pipelines = after_pipes.get(b.signature, b.pipelines)
            new.append(SinceEntry(b, 0, n_after, True))
        elif n_before:
            vanished.append(_vanished(b, n_before, tested, skips))
    return SinceReport(f"run {run_id}", new, vanished, still, cases_before, cases_after,
                       pipelines if cases_before else [], pipelines if cases_after else [])


def _read_side(location: Path) -> tuple[Path, list[Bug], int, list[str], dict[str, list[tuple[str, str]]]]:
    conn, out = open_store(location)
    try:
        return out, load_bugs(conn), conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0], \
            _tested_pipelines(conn, _config(conn)), _skips(conn)
    except sqlite3.Error as e:
        raise StoreError(f"{out}: not a Parallax store ({e})") from None
    finally:
        conn.close()


def _against_store(store: Path, other: Path) -> SinceReport:
    _, later, cases_after, pipes_after, skips = _read_side(store)
    try:
        other_out, earlier, cases_before, pipes_before, _ = _read_side(other)
    except StoreError as e:
        raise StoreError(f"--since: {e}") from None
    now = {b.signature: b for b in later}
    then = {b.signature: b for b in earlier}
    tested = set(pipes_after)
    new = [SinceEntry(b, 0, b.count, True) for b in later if b.signature not in then]
    still = [SinceEntry(b, then[b.signature].count, b.count, True) for b in later if b.signature in then]
    vanished = [_vanished(b, b.count, tested, skips) for b in earlier if b.signature not in now]
    return SinceReport(str(other_out), new, vanished, still, cases_before, cases_after, pipes_before, pipes_after)
