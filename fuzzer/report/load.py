"""Read everything a report shows from a campaign store into plain dataclasses (no SQL past this module).

Rows are read with `SELECT *` and looked up by column name, so a store with extra columns still reads;
every figure comes from the store, nothing is estimated here.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fuzzer.campaign.store import describe_trigger
from fuzzer.report.store_read import StoreError, open_store, table_names


@dataclass
class Bug:
    """One distinct bug: one row of `signatures`, with where its smallest example lies."""

    signature: str
    symptom: str
    stage: str
    location: str
    component: str
    pipeline: str
    first_op: str
    message: str
    first_seen: float | None
    first_run: int | None
    last_seen: float | None
    count: int
    examples: int
    smallest_nodes: int | None
    smallest_dir: str | None  # relative to the campaign folder
    reduce_state: str | None
    reduced_dir: str | None
    pipelines: list[str] = field(default_factory=list)  # every pipeline any of its findings named

    @property
    def sig12(self) -> str:
        return hashlib.sha256(self.signature.encode()).hexdigest()[:12]

    @property
    def headline(self) -> str:
        """The first line of the message, short enough for a table cell."""
        first = (self.message or "").strip().splitlines()
        return first[0][:200] if first else ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sig12": self.sig12}


@dataclass
class GapRow:
    signature: str
    component: str
    op: str
    dtype: str
    message: str
    count: int
    first_seen: float | None


@dataclass
class SkipRow:
    """One scheduling skip rule: graphs whose node of `op` matches `trigger` mostly skip `pipeline`."""

    pipeline: str
    op: str
    signature: str
    reason: str
    since: float | None
    trigger: dict[str, Any] | None = None  # {"dtype", "out_dtype", "attrs"}; None: any node of the op
    skipped: int | None = None  # pipeline runs the rule saved; None: a store from before the count was kept
    sent: int | None = None  # matching cases sent to the pipeline anyway

    @property
    def trigger_text(self) -> str:
        return describe_trigger(self.op, self.trigger)

    @property
    def saved_text(self) -> str:
        if self.skipped is None:
            return "runs saved not counted (older store)"
        return f"saved {self.skipped} pipeline runs, sent {self.sent or 0} matching cases anyway"


@dataclass
class RunRow:
    id: int
    started: float | None
    ended: float | None
    resumed: bool
    engine: str
    workers: int | None
    host: str
    stop_reason: str | None
    versions: dict[str, Any]
    cases: int  # cases of this run in the `cases` table
    recycles: int = 0  # workers recycled for memory during this run

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


@dataclass
class Snapshot:
    time: float
    run_id: int
    cases: int
    findings: int
    bugs: int
    rss_mb: float | None


@dataclass
class OpSeqSummary:
    """Producer>consumer chains: how many distinct 2- and 3-chains, the most common, and the share of the
    ordered op-family pairs (families from `generators.ops`) that some graph contained."""

    distinct2: int
    distinct3: int
    total2: int
    total3: int
    top2: list[tuple[str, int]]
    top3: list[tuple[str, int]]
    families: int
    pairs_possible: int
    pair_share: float | None


@dataclass
class Coverage:
    """Judged cases per (op family, pipeline)."""

    ops: list[str]
    pipelines: list[str]
    cases: dict[tuple[str, str], int]
    untested_families: list[str]  # families the generator knows that no judged case contained

    def to_json(self) -> dict[str, Any]:
        return {"ops": self.ops, "pipelines": self.pipelines,
                "cells": [{"op": o, "pipeline": p, "cases": n} for (o, p), n in sorted(self.cases.items())],
                "untested_families": self.untested_families}


@dataclass
class ReportData:
    out: Path
    campaign: dict[str, Any]
    runs: list[RunRow]
    cases_total: int
    cases_by_status: dict[str, int]
    finding_rows: int
    bugs: list[Bug]
    gaps: list[GapRow]
    skips: list[SkipRow]
    snapshots: list[Snapshot]
    coverage: Coverage
    opseq: OpSeqSummary
    finding_times: list[float] = field(default_factory=list)  # every finding row's time, ascending
    flaky: list[dict[str, Any]] = field(default_factory=list)  # new findings a fresh worker did not reproduce
    pipelines_run: list[str] = field(default_factory=list)  # the latest run's pipelines
    pipelines_left_out: list[tuple[str, str]] = field(default_factory=list)  # and those it left out, with why

    def to_json(self) -> dict[str, Any]:
        return {"store": str(self.out), "campaign": self.campaign,
                "runs": [{**asdict(r), "seconds": r.seconds} for r in self.runs],
                "cases": {"total": self.cases_total, "by_status": self.cases_by_status},
                "finding_rows": self.finding_rows, "distinct_bugs": len(self.bugs),
                "bugs": [b.to_json() for b in self.bugs],
                "capability_gaps": [asdict(g) for g in self.gaps],
                "skips": [{**asdict(s), "trigger_text": s.trigger_text} for s in self.skips],
                "snapshots": [asdict(s) for s in self.snapshots],
                "throughput": [{"time": t, "run_id": r, "cases_per_s": v} for t, r, v in throughput(self.snapshots)],
                "coverage": self.coverage.to_json(), "opseq": asdict(self.opseq),
                "flaky": self.flaky,
                "pipelines": {"run": self.pipelines_run, "left_out": [list(x) for x in self.pipelines_left_out]}}


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sql, args)]


def _json(text: Any, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def load_report(location: Path) -> ReportData:
    """Everything a report shows, read from the store in `location` (a campaign folder or its db)."""
    conn, out = open_store(location)
    try:
        return _load(conn, out)
    except sqlite3.Error as e:
        raise StoreError(f"{out}: not a Parallax store ({e})") from None
    finally:
        conn.close()


def _load(conn: sqlite3.Connection, out: Path) -> ReportData:
    tables = table_names(conn)
    camp = _rows(conn, "SELECT * FROM campaign")
    campaign = dict(camp[0]) if camp else {}
    campaign["config"] = _json(campaign.pop("config_json", None), {})
    per_run = dict(conn.execute("SELECT run_id, COUNT(*) FROM cases GROUP BY run_id").fetchall())
    recycles = (dict(conn.execute("SELECT run_id, COUNT(*) FROM recycles GROUP BY run_id").fetchall())
                if "recycles" in tables else {})
    runs = [_run(r, per_run.get(r["id"], 0), recycles.get(r["id"], 0))
            for r in _rows(conn, "SELECT * FROM runs ORDER BY id")]
    by_status = dict(conn.execute("SELECT COALESCE(status, ''), COUNT(*) FROM cases GROUP BY 1").fetchall())
    finding_rows = conn.execute("SELECT COUNT(*) FROM findings").fetchone()[0]
    times = [r[0] for r in conn.execute("SELECT time FROM findings WHERE time IS NOT NULL ORDER BY time")]
    return ReportData(out, campaign, runs, sum(by_status.values()), by_status, finding_rows, load_bugs(conn),
                      _gaps(conn) if "gaps" in tables else [], _skips(conn, tables),
                      _snapshots(conn) if "snapshots" in tables else [], _coverage(conn, tables),
                      _opseq(conn, tables), times, _flaky(conn, tables), *_selection(conn, tables, runs))


def _flaky(conn: sqlite3.Connection, tables: set[str]) -> list[dict[str, Any]]:
    """Flaky findings grouped by signature: how often, and the first note (what the fresh worker saw)."""
    if "flaky" not in tables:
        return []
    rows = _rows(conn, "SELECT signature, symptom, stage, component, message, note, COUNT(*) AS count, "
                       "MIN(time) AS first_seen FROM flaky GROUP BY signature ORDER BY first_seen")
    return rows


def _selection(conn: sqlite3.Connection, tables: set[str],
               runs: list[RunRow]) -> tuple[list[str], list[tuple[str, str]]]:
    """The latest run's pipelines and the ones it left out with why (stores before run_pipelines: none)."""
    if "run_pipelines" not in tables or not runs:
        return [], []
    rows = _rows(conn, "SELECT pipeline, runs, reason FROM run_pipelines WHERE run_id = ? ORDER BY rowid",
                 (runs[-1].id,))
    return [r["pipeline"] for r in rows if r["runs"]], [(r["pipeline"], r["reason"]) for r in rows if not r["runs"]]


def _run(r: dict[str, Any], cases: int, recycles: int = 0) -> RunRow:
    return RunRow(int(r["id"]), r.get("started"), r.get("ended"), bool(r.get("resumed")), r.get("engine") or "",
                  r.get("workers"), r.get("host") or "", r.get("stop_reason"), _json(r.get("versions_json"), {}),
                  cases, recycles)


def finding_pipelines(conn: sqlite3.Connection, where: str = "", args: tuple[Any, ...] = ()) -> dict[str, list[str]]:
    """Signature -> every pipeline its finding rows named (optionally only the rows matching `where`)."""
    out: dict[str, list[str]] = {}
    for sig, pj in conn.execute(f"SELECT signature, pipelines_json FROM findings {where}", args):
        seen = out.setdefault(sig, [])
        for p in _json(pj, []):
            if isinstance(p, str) and p not in seen:
                seen.append(p)
    return out


def load_bugs(conn: sqlite3.Connection) -> list[Bug]:
    """Every distinct bug, most frequent first."""
    pipes = finding_pipelines(conn)
    bugs = []
    for r in _rows(conn, "SELECT * FROM signatures"):
        sig = r["signature"]
        own = pipes.get(sig, [])
        if r.get("pipeline") and r["pipeline"] not in own:
            own = [r["pipeline"], *own]
        bugs.append(Bug(sig, r.get("symptom") or "", r.get("stage") or "", r.get("location") or "",
                        r.get("component") or "", r.get("pipeline") or "", r.get("first_op") or "",
                        r.get("message") or "", r.get("first_seen"), r.get("first_run"), r.get("last_seen"),
                        int(r.get("count") or 0), int(r.get("examples") or 0), r.get("smallest_nodes"),
                        r.get("smallest_dir"), r.get("reduce_state"), r.get("reduced_dir"), own))
    bugs.sort(key=lambda b: (-b.count, b.first_seen or 0.0, b.signature))
    return bugs


def _gaps(conn: sqlite3.Connection) -> list[GapRow]:
    rows = _rows(conn, "SELECT * FROM gaps ORDER BY count DESC, signature")
    return [GapRow(r["signature"], r.get("component") or "", r.get("op") or "", r.get("dtype") or "",
                   r.get("message") or "", int(r.get("count") or 0), r.get("first_seen")) for r in rows]


def skips_saved(skips: list[SkipRow]) -> str:
    """What all the skip rules together saved, for the section's heading ("" when nothing was counted)."""
    counted = [s for s in skips if s.skipped is not None]
    if not counted:
        return ""
    return (f"{sum(s.skipped or 0 for s in counted)} pipeline runs saved, "
            f"{sum(s.sent or 0 for s in counted)} matching cases sent anyway")


def _skips(conn: sqlite3.Connection, tables: set[str]) -> list[SkipRow]:
    """Skip rules with their triggers and counts (`skip_rules`); a store from before them has `skips` only."""
    table = "skip_rules" if "skip_rules" in tables else "skips" if "skips" in tables else ""
    if not table:
        return []
    rows = _rows(conn, f"SELECT * FROM {table} ORDER BY pipeline, op, signature")
    return [SkipRow(r.get("pipeline") or "", r.get("op") or "", r.get("signature") or "", r.get("reason") or "",
                    r.get("since"), _json(r.get("trigger_json"), None),
                    *((int(r.get("skipped") or 0), int(r.get("sent") or 0)) if table == "skip_rules" else ()))
            for r in rows]


def _snapshots(conn: sqlite3.Connection) -> list[Snapshot]:
    rows = _rows(conn, "SELECT * FROM snapshots WHERE time IS NOT NULL ORDER BY time")
    return [Snapshot(float(r["time"]), int(r.get("run_id") or 0), int(r.get("cases") or 0),
                     int(r.get("findings") or 0), int(r.get("bugs") or 0), r.get("rss_mb")) for r in rows]


def throughput(snaps: list[Snapshot]) -> list[tuple[float, int, float]]:
    """(time, run id, cases/s since the previous snapshot of the same run): a restart never counts as speed."""
    out = []
    prev: dict[int, Snapshot] = {}
    for s in snaps:
        p = prev.get(s.run_id)
        if p is not None and s.time > p.time:
            out.append((s.time, s.run_id, max(0, s.cases - p.cases) / (s.time - p.time)))
        prev[s.run_id] = s
    return out


def known_families() -> list[str]:
    """The op families the generator knows (what `parallax ops` lists)."""
    from generators.ops import REGISTRY
    return sorted(REGISTRY)


def _coverage(conn: sqlite3.Connection, tables: set[str]) -> Coverage:
    cells: dict[tuple[str, str], int] = {}
    if "coverage" in tables:
        for op, pipe, n in conn.execute("SELECT op, pipeline, cases FROM coverage"):
            if op is not None and pipe is not None and n:
                cells[(op, pipe)] = cells.get((op, pipe), 0) + int(n)
    ops = sorted({o for o, _ in cells})
    pipelines = sorted({p for _, p in cells})
    untested = [f for f in known_families() if f not in set(ops)]
    return Coverage(ops, pipelines, cells, untested)


def _opseq(conn: sqlite3.Connection, tables: set[str]) -> OpSeqSummary:
    chains: Counter[str] = Counter()
    if "opseq" in tables:
        for seq, n in conn.execute("SELECT seq, count FROM opseq"):
            if seq:
                chains[seq] += int(n or 0)
    two = Counter({s: n for s, n in chains.items() if s.count(">") == 1})
    three = Counter({s: n for s, n in chains.items() if s.count(">") == 2})
    families = set(known_families())
    pairs_seen = {s for s in two if all(part in families for part in s.split(">"))}
    possible = len(families) ** 2
    return OpSeqSummary(len(two), len(three), sum(two.values()), sum(three.values()), two.most_common(10),
                        three.most_common(10), len(families), possible,
                        len(pairs_seen) / possible if possible else None)

