"""The campaign store: one SQLite database (WAL) plus the example files of every finding signature.

Layout and schema are the contract in DESIGN (shared with `parallax report`): OUT/parallax.db,
OUT/findings/<sig12>/<case_idx>/ (at most K examples per signature), OUT/events.jsonl.

Crash safety: a judged case is one transaction. Its example folders are written under
OUT/findings/.tmp-* and renamed into place *before* the transaction commits, so a kill -9 can only
leave folders without rows, never rows without folders; opening the store sweeps those leftovers.
Only one thread writes (the campaign's main thread); a lock file keeps a second campaign out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
DB_NAME = "parallax.db"
LOCK_NAME = ".parallax.lock"
EVENTS_NAME = "events.jsonl"
FINDINGS_DIR = "findings"
TMP_PREFIX = ".tmp-"
DEFAULT_EXAMPLES = 5
SQLITE_MAGIC = b"SQLite format 3\x00"
CASE_STATUSES = ("judged", "invalid", "harness_error")
REDUCE_STATES = ("queued", "running", "done", "failed")

SCHEMA = """
CREATE TABLE campaign  (id INTEGER PRIMARY KEY CHECK (id = 1), created REAL, seed INTEGER, nodes INTEGER,
                        config_json TEXT, next_case INTEGER);
CREATE TABLE runs      (id INTEGER PRIMARY KEY, started REAL, ended REAL, resumed INTEGER, engine TEXT,
                        workers INTEGER, versions_json TEXT, host TEXT, stop_reason TEXT);
CREATE TABLE cases     (idx INTEGER PRIMARY KEY, run_id INTEGER, seed INTEGER, finished REAL, seconds REAL,
                        nodes INTEGER, ops_json TEXT, pipelines INTEGER, findings INTEGER,
                        status TEXT, error TEXT);
CREATE TABLE signatures(signature TEXT PRIMARY KEY, symptom TEXT, stage TEXT, location TEXT, component TEXT,
                        pipeline TEXT, first_op TEXT, message TEXT, first_seen REAL, first_run INTEGER,
                        last_seen REAL, count INTEGER, examples INTEGER, smallest_nodes INTEGER,
                        smallest_dir TEXT, reduce_state TEXT, reduced_dir TEXT);
CREATE TABLE findings  (id INTEGER PRIMARY KEY, signature TEXT, case_idx INTEGER, run_id INTEGER, time REAL,
                        symptom TEXT, stage TEXT, component TEXT, pipelines_json TEXT, nodes INTEGER,
                        new INTEGER, dir TEXT);
CREATE TABLE gaps      (signature TEXT PRIMARY KEY, component TEXT, op TEXT, dtype TEXT, message TEXT,
                        count INTEGER, first_seen REAL, entry_json TEXT);
CREATE TABLE coverage  (op TEXT, pipeline TEXT, cases INTEGER, PRIMARY KEY (op, pipeline));
CREATE TABLE opseq     (seq TEXT PRIMARY KEY, count INTEGER);
CREATE TABLE snapshots (time REAL, run_id INTEGER, cases INTEGER, findings INTEGER, bugs INTEGER, rss_mb REAL);
CREATE TABLE skips     (pipeline TEXT, op TEXT, signature TEXT, reason TEXT, since REAL, PRIMARY KEY (pipeline, op));
CREATE INDEX findings_by_signature ON findings(signature);
CREATE INDEX findings_by_case ON findings(case_idx);
"""
# Tables added after schema version 1 shipped: created on open too, so an older store gains them (additive only).
ADDED_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_pipelines(run_id INTEGER, pipeline TEXT, runs INTEGER, reason TEXT,
                                          PRIMARY KEY (run_id, pipeline));
CREATE TABLE IF NOT EXISTS recycles (time REAL, run_id INTEGER, worker TEXT, case_idx INTEGER, rss_mb REAL,
                                     baseline_mb REAL);
CREATE TABLE IF NOT EXISTS flaky    (time REAL, run_id INTEGER, case_idx INTEGER, signature TEXT, symptom TEXT,
                                     stage TEXT, component TEXT, pipelines_json TEXT, message TEXT, note TEXT);
CREATE TABLE IF NOT EXISTS skip_rules(pipeline TEXT, signature TEXT, op TEXT, trigger_json TEXT, reason TEXT,
                                      since REAL, skipped INTEGER DEFAULT 0, sent INTEGER DEFAULT 0,
                                      PRIMARY KEY (pipeline, signature))
"""
# Skip rules of a store from before triggers (the `skips` table alone) become op-wide rules in `skip_rules`, so that
# their runs saved are counted too; `skips` keeps one row per (pipeline, op) for readers that know only it.
_SKIPS_FORWARD = ("INSERT OR IGNORE INTO skip_rules (pipeline, signature, op, trigger_json, reason, since, skipped, "
                  "sent) SELECT pipeline, signature, op, NULL, reason, since, 0, 0 FROM skips")


class StoreError(Exception):
    """The folder or database is not a usable Parallax store (reported as one line, exit 2)."""


def sig12(signature: str) -> str:
    """The folder name of a signature: first 12 hex digits of its sha256."""
    return hashlib.sha256(signature.encode()).hexdigest()[:12]


@dataclass
class CampaignRow:
    created: float
    seed: int
    nodes: int
    config: dict[str, Any]
    next_case: int


@dataclass
class FindingRecord:
    """One finding of a case as the store wants it: the judge's Finding as JSON, plus model files."""

    finding: dict[str, Any]  # oracles.judge.Finding.to_json()
    models: dict[str, bytes] = field(default_factory=dict)  # file name (model.<conv>.onnx) -> bytes


@dataclass
class GapRecord:
    signature: str
    component: str
    op: str
    dtype: str
    message: str
    entry: dict[str, Any]  # the GapBook entry (path, candidates, op hint) so --resume can rebuild it


@dataclass
class CaseRecord:
    """Everything the store keeps of one case; graph/values are None when generation failed."""

    idx: int
    seed: int
    status: str  # CASE_STATUSES
    seconds: float
    graph: Any = None  # generators.ir.Graph
    values: Any = None  # generators.values.Values
    pipelines: list[str] = field(default_factory=list)  # pipelines that ran the case (not skipped)
    findings: list[FindingRecord] = field(default_factory=list)
    gaps: list[GapRecord] = field(default_factory=list)
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # added to finding.json (versions, campaign seed)
    rule_hits: list[tuple[str, str, bool]] = field(default_factory=list)  # (pipeline, signature, sent anyway)


@dataclass
class StoredFinding:
    signature: str
    new: bool
    dir: str | None  # relative to OUT, None beyond K examples
    symptom: str
    component: str
    stage: str
    message: str
    pipelines: list[str]
    first_op: str = ""


def graph_ops(graph: Any) -> dict[str, int]:
    """Op kind -> how many nodes of the graph use it (the cases.ops_json value)."""
    ops: dict[str, int] = {}
    for n in graph.nodes:
        ops[n.op] = ops.get(n.op, 0) + 1
    return dict(sorted(ops.items()))


def op_chains(graph: Any) -> set[str]:
    """Producer>consumer op-kind chains of length 2 and 3 ("Conv>Relu", "Conv>Relu>Add") in the graph."""
    producer = {out: n for n in graph.nodes for out in n.outputs}
    chains: set[str] = set()
    for n in graph.nodes:
        for a in {producer[t].name: producer[t] for t in n.inputs if t in producer}.values():
            chains.add(f"{a.op}>{n.op}")
            for b in {producer[t].name: producer[t] for t in a.inputs if t in producer}.values():
                chains.add(f"{b.op}>{a.op}>{n.op}")
    return chains


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item") and callable(o.item):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def describe_trigger(op: str, trigger: dict[str, Any] | None) -> str:
    """A skip rule's trigger (its JSON form, None: the whole op) for people, e.g. `ReduceMin float16
    keepdims=false axes=[1]`: the op, its dtype (in->out where they differ), the attribute values."""
    trigger = trigger or {}
    parts = [op]
    dt, out_dt = trigger.get("dtype"), trigger.get("out_dtype")
    if dt and out_dt and dt != out_dt:
        parts.append(f"{dt}->{out_dt}")
    elif dt or out_dt:
        parts.append(dt or f"->{out_dt}")
    for name, value in sorted((trigger.get("attrs") or {}).items()):
        parts.append(f"{name}={json.dumps(value, sort_keys=True, separators=(',', ':'), default=str)}")
    if len(parts) == 1:
        parts.append("(any dtype and attributes)")
    return " ".join(parts)


def check_database(path: Path) -> None:
    """Raise StoreError unless `path` is an intact Parallax database; reads only, never writes."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise StoreError(f"{path}: not a Parallax store (cannot read: {e.strerror})") from None
    if head != SQLITE_MAGIC:
        raise StoreError(f"{path}: not a Parallax store (not an SQLite database)")
    # No -wal/-shm beside it (closed cleanly): open immutable, which creates no side files at all.
    side = any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm"))
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro" + ("" if side else "&immutable=1"), uri=True,
                              timeout=30)
    except sqlite3.Error as e:
        raise StoreError(f"{path}: not a Parallax store ({e})") from None
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise StoreError(f"{path}: not a Parallax store (schema version {version}, expected {SCHEMA_VERSION})")
        rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        if rows != ["ok"]:
            raise StoreError(f"{path}: not a Parallax store (integrity check failed: {'; '.join(rows[:3])[:200]})")
        if con.execute("SELECT count(*) FROM campaign").fetchone()[0] != 1:
            raise StoreError(f"{path}: not a Parallax store (no campaign row)")
    except sqlite3.Error as e:
        raise StoreError(f"{path}: not a Parallax store ({e})") from None
    finally:
        con.close()


def check_out_folder(out: Path) -> bool:
    """Whether `out` holds a store already (validated); raise StoreError when it cannot be one."""
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out}: exists and is not a folder")
    db = out / DB_NAME
    if db.exists() or db.is_symlink():
        if not db.is_file():
            raise StoreError(f"{db}: not a Parallax store (not a regular file)")
        check_database(db)
        return True
    return False


class Store:
    """An open store. Use `Store.create` for a new campaign and `Store.open` to resume one."""

    def __init__(self, out: Path, con: sqlite3.Connection, lock_fd: int, examples: int) -> None:
        self.out = out
        self.con = con
        self.examples_cap = examples
        self._lock_fd = lock_fd
        self._done: set[int] = {r[0] for r in con.execute("SELECT idx FROM cases")}
        self._next_case = int(con.execute("SELECT next_case FROM campaign").fetchone()[0])

    # ----- opening -----------------------------------------------------------------------------------
    @classmethod
    def create(cls, out: Path, seed: int, nodes: int, config: dict[str, Any],
               examples: int = DEFAULT_EXAMPLES) -> Store:
        """A new store in `out` (created if needed); StoreError if one is there already."""
        if check_out_folder(out):
            raise StoreError(f"{out}: already holds a campaign store (use --resume to continue it)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{out}: cannot create the output folder ({e.strerror})") from None
        lock_fd = _lock(out)
        try:
            db = out / DB_NAME
            db.unlink(missing_ok=True)  # none was there (checked above, under no lock): a racing creator lost
            con = _connect(db)
            with _transaction(con):
                for stmt in (SCHEMA + ";" + ADDED_SCHEMA).split(";"):
                    if stmt.strip():
                        con.execute(stmt)
                con.execute("INSERT INTO campaign VALUES (1, ?, ?, ?, ?, 0)", (time.time(), seed, nodes, _json(config)))
                con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            os.close(lock_fd)
            raise
        (out / FINDINGS_DIR).mkdir(exist_ok=True)
        return cls(out, con, lock_fd, examples)

    @classmethod
    def open(cls, out: Path, examples: int = DEFAULT_EXAMPLES) -> Store:
        """An existing store (validated first, untouched if invalid); sweeps what a kill -9 left behind."""
        if not check_out_folder(out):
            raise StoreError(f"{out}: no campaign store to resume (run without --resume to start one)")
        lock_fd = _lock(out)
        try:
            con = _connect(out / DB_NAME)
        except BaseException:
            os.close(lock_fd)
            raise
        try:
            with _transaction(con):
                for stmt in ADDED_SCHEMA.split(";"):
                    if stmt.strip():
                        con.execute(stmt)
                con.execute(_SKIPS_FORWARD)
        except BaseException:
            con.close()
            os.close(lock_fd)
            raise
        store = cls(out, con, lock_fd, examples)
        store.sweep()
        return store

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.con.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sweep(self) -> list[str]:
        """Delete temporary folders and example folders that have no finding row (the case in flight at a kill)."""
        root = self.out / FINDINGS_DIR
        root.mkdir(exist_ok=True)
        keep = {r[0] for r in self.con.execute("SELECT dir FROM findings WHERE dir IS NOT NULL")}
        removed: list[str] = []
        for sig_dir in sorted(root.iterdir()):
            if sig_dir.name.startswith(TMP_PREFIX) or not sig_dir.is_dir():
                _remove(sig_dir)
                removed.append(str(sig_dir.relative_to(self.out)))
                continue
            for case_dir in sorted(sig_dir.iterdir()):
                rel = str(case_dir.relative_to(self.out))
                if rel not in keep:
                    _remove(case_dir)
                    removed.append(rel)
            if not any(sig_dir.iterdir()):
                sig_dir.rmdir()
        return removed

    # ----- reading ---------------------------------------------------------------------------------
    def campaign(self) -> CampaignRow:
        created, seed, nodes, config, nxt = self.con.execute(
            "SELECT created, seed, nodes, config_json, next_case FROM campaign").fetchone()
        return CampaignRow(created, seed, nodes, json.loads(config or "{}"), nxt)

    def is_done(self, idx: int) -> bool:
        return idx in self._done

    @property
    def next_case(self) -> int:
        return self._next_case

    def totals(self) -> dict[str, int]:
        """Cumulative counts: cases judged, all cases, finding rows, distinct signatures."""
        judged, cases = self.con.execute(
            "SELECT coalesce(sum(status = 'judged'), 0), count(*) FROM cases").fetchone()
        findings = self.con.execute("SELECT count(*) FROM findings").fetchone()[0]
        bugs = self.con.execute("SELECT count(*) FROM signatures").fetchone()[0]
        return {"judged": judged, "cases": cases, "findings": findings, "bugs": bugs}

    def gap_rows(self) -> list[dict[str, Any]]:
        cur = self.con.execute("SELECT signature, component, op, dtype, message, count, first_seen, entry_json "
                               "FROM gaps ORDER BY first_seen")
        return [dict(zip(("signature", "component", "op", "dtype", "message", "count", "first_seen"), r[:7]),
                     entry=json.loads(r[7] or "{}")) for r in cur]

    def skip_rows(self) -> list[dict[str, Any]]:
        """Every skip rule, oldest first, with its trigger (None: the whole op) and runs skipped / sent anyway."""
        cols = ("pipeline", "op", "signature", "reason", "since", "skipped", "sent")
        cur = self.con.execute(f"SELECT {', '.join(cols)}, trigger_json FROM skip_rules ORDER BY since, rowid")
        return [dict(zip(cols, r[:-1]), trigger=json.loads(r[-1]) if r[-1] else None) for r in cur]

    def signature_rows(self, run_id: int | None = None) -> list[dict[str, Any]]:
        cols = ("signature", "symptom", "component", "count", "first_run", "examples", "smallest_dir", "message")
        cur = self.con.execute(f"SELECT {', '.join(cols)} FROM signatures ORDER BY first_seen")
        rows = [dict(zip(cols, r)) for r in cur]
        return rows if run_id is None else [r for r in rows if r["first_run"] == run_id]

    # ----- the reducer's queue (consumed by a later component) ----------------------------------------
    def queued_signatures(self) -> list[str]:
        """New signatures waiting for reduction, oldest first."""
        return [r[0] for r in self.con.execute(
            "SELECT signature FROM signatures WHERE reduce_state = 'queued' ORDER BY first_seen")]

    def signatures_in_state(self, state: str) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT signature FROM signatures WHERE reduce_state = ?", (state,))]

    def smallest_example(self, signature: str) -> str | None:
        """The folder (relative to OUT) of the smallest example kept on disk, if any."""
        row = self.con.execute("SELECT smallest_dir FROM signatures WHERE signature = ?", (signature,)).fetchone()
        return row[0] if row and row[0] else None

    def set_reduce_state(self, signature: str, state: str, reduced_dir: str | None = None) -> None:
        if state not in REDUCE_STATES:
            raise ValueError(f"unknown reduce state {state!r}")
        with _transaction(self.con):
            self.con.execute("UPDATE signatures SET reduce_state = ?, reduced_dir = coalesce(?, reduced_dir) "
                             "WHERE signature = ?", (state, reduced_dir, signature))

    # ----- writing ---------------------------------------------------------------------------------
    def start_run(self, engine: str, workers: int, versions: dict[str, str], host: str, resumed: bool) -> int:
        with _transaction(self.con):
            cur = self.con.execute("INSERT INTO runs (started, resumed, engine, workers, versions_json, host) "
                                   "VALUES (?, ?, ?, ?, ?, ?)",
                                   (time.time(), int(resumed), engine, workers, _json(versions), host))
        return int(cur.lastrowid)

    def record_selection(self, run_id: int, run: list[str], left_out: list[tuple[str, str]]) -> None:
        """Which pipelines this run runs, and each one it leaves out with the reason (for the report)."""
        with _transaction(self.con):
            self.con.executemany("INSERT OR REPLACE INTO run_pipelines VALUES (?, ?, 1, '')",
                                 [(run_id, name) for name in run])
            self.con.executemany("INSERT OR REPLACE INTO run_pipelines VALUES (?, ?, 0, ?)",
                                 [(run_id, name, why) for name, why in left_out])

    def record_flaky(self, run_id: int, case_idx: int, findings: list[dict[str, Any]]) -> None:
        """Findings a fresh worker did not reproduce: kept apart, never a signature (so never a bug)."""
        with _transaction(self.con):
            self.con.executemany("INSERT INTO flaky VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 [(time.time(), run_id, case_idx, f["signature"], f["symptom"], f["stage"],
                                   f["component"], _json(f["pipelines"]), f.get("message", "")[:4000],
                                   f.get("detail", {}).get("flaky", "")) for f in findings])

    def record_recycle(self, run_id: int, worker: str, case_idx: int, rss_mb: float, baseline_mb: float) -> None:
        with _transaction(self.con):
            self.con.execute("INSERT INTO recycles VALUES (?, ?, ?, ?, ?, ?)",
                             (time.time(), run_id, worker, case_idx, rss_mb, baseline_mb))

    def end_run(self, run_id: int, reason: str) -> None:
        with _transaction(self.con):
            self.con.execute("UPDATE runs SET ended = ?, stop_reason = ? WHERE id = ?", (time.time(), reason, run_id))

    def snapshot(self, run_id: int, rss_mb: float) -> dict[str, int]:
        t = self.totals()
        with _transaction(self.con):
            self.con.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                             (time.time(), run_id, t["judged"], t["findings"], t["bugs"], rss_mb))
        return t

    def add_skip(self, pipeline: str, op: str, signature: str, reason: str,
                 trigger: dict[str, Any] | None = None) -> bool:
        """Record a scheduling skip rule, or its widened trigger; False when the store had it already as it is."""
        now = time.time()
        trig = _json(trigger) if trigger is not None else None
        with _transaction(self.con):
            cur = self.con.execute(
                "INSERT INTO skip_rules VALUES (?, ?, ?, ?, ?, ?, 0, 0) ON CONFLICT(pipeline, signature) DO UPDATE SET "
                "op = excluded.op, trigger_json = excluded.trigger_json, reason = excluded.reason "
                "WHERE op IS NOT excluded.op OR trigger_json IS NOT excluded.trigger_json",
                (pipeline, signature, op, trig, reason, now))
            self.con.execute("INSERT OR IGNORE INTO skips VALUES (?, ?, ?, ?, ?)",
                             (pipeline, op, signature, reason, now))
        return cur.rowcount == 1

    def record_case(self, run_id: int, rec: CaseRecord) -> list[StoredFinding]:
        """Store one finished case in one transaction (example folders renamed into place just before)."""
        if rec.status not in CASE_STATUSES:
            raise ValueError(f"unknown case status {rec.status!r}")
        if rec.idx in self._done:
            raise ValueError(f"case {rec.idx} is stored already")
        now = time.time()
        nodes = len(rec.graph.nodes) if rec.graph is not None else None
        placed: list[tuple[dict[str, Any], str | None, bool]] = []  # (finding, dir, new)
        try:
            for fr in _one_per_signature(rec.findings):
                sig = fr.finding["signature"]
                row = self.con.execute("SELECT examples FROM signatures WHERE signature = ?", (sig,)).fetchone()
                new = row is None
                folder = None
                if (new or row[0] < self.examples_cap) and rec.graph is not None:
                    folder = self._write_example(rec, fr)
                placed.append((fr.finding, folder, new))
            with _transaction(self.con):
                self._insert_case(run_id, rec, now, nodes)
                stored = [self._insert_finding(run_id, rec, f, folder, new, now, nodes) for f, folder, new in placed]
                if rec.status == "judged" and rec.graph is not None:
                    self._count_coverage(rec)
                self.con.executemany("UPDATE skip_rules SET skipped = skipped + ?, sent = sent + ? "
                                     "WHERE pipeline = ? AND signature = ?",
                                     [(int(not sent), int(sent), p, sig) for p, sig, sent in rec.rule_hits])
                for g in rec.gaps:
                    self.con.execute(
                        "INSERT INTO gaps VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT(signature) DO UPDATE SET "
                        "count = count + 1, op = excluded.op, dtype = excluded.dtype, entry_json = excluded.entry_json",
                        (g.signature, g.component, g.op, g.dtype, g.message, now, _json(g.entry)))
                nxt = self._next_case
                while nxt in self._done or nxt == rec.idx:
                    nxt += 1
                self.con.execute("UPDATE campaign SET next_case = ?", (nxt,))
        except BaseException:
            for _, folder, _ in placed:  # not committed: the folders must not outlive the transaction
                if folder is not None:
                    _remove(self.out / folder)
            raise
        self._done.add(rec.idx)
        self._next_case = nxt
        return stored

    def _write_example(self, rec: CaseRecord, fr: FindingRecord) -> str:
        from fuzzer.case.files import atomic_write, write_case

        sig = fr.finding["signature"]
        root = self.out / FINDINGS_DIR
        tmp = root / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        meta = {"case_idx": rec.idx, "seed": rec.seed, "nodes": len(rec.graph.nodes),
                "hash": rec.graph.content_hash(), **rec.extra}
        write_case(tmp, rec.graph, rec.values, meta)
        info = {**fr.finding, "case_idx": rec.idx, "seed": rec.seed, "case_pipelines": list(rec.pipelines),
                **rec.extra}
        atomic_write(tmp / "finding.json", (json.dumps(info, sort_keys=True, indent=1,
                                                       default=_json_default) + "\n").encode())
        for name, data in fr.models.items():
            atomic_write(tmp / name, data)
        rel = f"{FINDINGS_DIR}/{sig12(sig)}/{rec.idx}"
        final = self.out / rel
        final.parent.mkdir(exist_ok=True)
        if final.exists():  # an orphan of an interrupted earlier attempt at this case (no row points to it)
            _remove(final)
        os.rename(tmp, final)
        return rel

    def _insert_case(self, run_id: int, rec: CaseRecord, now: float, nodes: int | None) -> None:
        ops = _json(graph_ops(rec.graph)) if rec.graph is not None else None
        self.con.execute("INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (rec.idx, run_id, rec.seed, now, rec.seconds, nodes, ops, len(rec.pipelines),
                          len({f.finding["signature"] for f in rec.findings}), rec.status, rec.error or None))

    def _insert_finding(self, run_id: int, rec: CaseRecord, f: dict[str, Any], folder: str | None, new: bool,
                        now: float, nodes: int | None) -> StoredFinding:
        sig = f["signature"]
        pipelines = list(f.get("pipelines", []))
        if new:
            self.con.execute(
                "INSERT INTO signatures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, 'queued', NULL)",
                (sig, f.get("symptom"), f.get("stage"), f.get("location"), f.get("component"),
                 pipelines[0] if pipelines else None, f.get("first_op") or None, f.get("message"), now, run_id, now,
                 int(folder is not None), nodes if folder else None, folder))
        else:
            self.con.execute(
                "UPDATE signatures SET last_seen = ?, count = count + 1, examples = examples + ?, "
                "smallest_nodes = CASE WHEN ? IS NOT NULL AND (smallest_nodes IS NULL OR ? < smallest_nodes) "
                "THEN ? ELSE smallest_nodes END, "
                "smallest_dir = CASE WHEN ? IS NOT NULL AND (smallest_nodes IS NULL OR ? < smallest_nodes) "
                "THEN ? ELSE smallest_dir END WHERE signature = ?",
                (now, int(folder is not None), folder, nodes, nodes, folder, nodes, folder, sig))
        self.con.execute("INSERT INTO findings (signature, case_idx, run_id, time, symptom, stage, component, "
                         "pipelines_json, nodes, new, dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (sig, rec.idx, run_id, now, f.get("symptom"), f.get("stage"), f.get("component"),
                          _json(pipelines), nodes, int(new), folder))
        return StoredFinding(sig, new, folder, f.get("symptom", ""), f.get("component", ""), f.get("stage", ""),
                             f.get("message", ""), pipelines, f.get("first_op", ""))

    def _count_coverage(self, rec: CaseRecord) -> None:
        ops = graph_ops(rec.graph)
        self.con.executemany("INSERT INTO coverage VALUES (?, ?, 1) ON CONFLICT(op, pipeline) DO UPDATE SET "
                             "cases = cases + 1", [(op, p) for op in ops for p in rec.pipelines])
        self.con.executemany("INSERT INTO opseq VALUES (?, 1) ON CONFLICT(seq) DO UPDATE SET count = count + 1",
                             [(s,) for s in sorted(op_chains(rec.graph))])


def _one_per_signature(findings: list[FindingRecord]) -> list[FindingRecord]:
    """Follow-ups can refine two findings of one case into the same signature: one bug, its pipelines merged."""
    by_sig: dict[str, FindingRecord] = {}
    for fr in findings:
        sig = fr.finding["signature"]
        if sig not in by_sig:
            by_sig[sig] = FindingRecord(dict(fr.finding, pipelines=list(fr.finding.get("pipelines", []))),
                                        dict(fr.models))
            continue
        kept = by_sig[sig]
        kept.finding["pipelines"] += [p for p in fr.finding.get("pipelines", []) if p not in kept.finding["pipelines"]]
        kept.models.update({k: v for k, v in fr.models.items() if k not in kept.models})
    return list(by_sig.values())


class EventLog:
    """OUT/events.jsonl: one JSON object per line, appended with a single write (a kill leaves at most one
    partial last line, which the next open cuts off)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _trim_partial_line(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"t": round(time.time(), 3), "event": event, **fields}, default=_json_default) + "\n"
        os.write(self._fd, line.encode())

    def close(self) -> None:
        os.close(self._fd)


def _trim_partial_line(path: Path) -> None:
    try:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            data_start = max(0, size - (1 << 20))
            f.seek(data_start)
            tail = f.read()
            cut = tail.rfind(b"\n")
            f.truncate(data_start + cut + 1 if cut >= 0 else data_start)
    except FileNotFoundError:
        return


def _connect(db: Path) -> sqlite3.Connection:
    try:
        con = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA foreign_keys=OFF")
    except sqlite3.Error as e:
        raise StoreError(f"{db}: cannot open the store ({e})") from None
    return con


@contextlib.contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _lock(out: Path) -> int:
    """An exclusive lock on OUT for the lifetime of the store: two campaigns never write one store."""
    try:
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreError(f"{out}: cannot write in the output folder ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(f"{out}: another campaign is using this store right now") from None
    return fd


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
