"""The campaign loop: hand case indices to an engine, store what comes back, until time is up or told to stop.

Case idx i is generated from seed campaign.seed + i, so a campaign is one deterministic stream that
--resume continues (indices stored already are skipped, those in flight at a kill are redone). The
engine (LocalEngine here, a Ray engine elsewhere) does the work; this module's main thread is the only
writer of the store, one transaction per finished case, and the only one that talks to the display.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fuzzer.campaign.background_reduce import BackgroundReducer
from fuzzer.campaign.known import KnownSignatures
from fuzzer.campaign.memory import campaign_rss_mb
from fuzzer.campaign.scheduler import Scheduler, SharedGapBook, SkipRule
from fuzzer.campaign.store import CaseRecord, EventLog, FindingRecord, GapRecord, Store, StoredFinding
from fuzzer.versions import stack_versions
from generators.ir import Graph
from generators.values import Values
from oracles.pipeline_id import PipelineError, parse_pipeline

SNAPSHOT_EVERY_S = 10.0
POLL_S = 0.25
STOP_JOIN_S = 30.0  # how long abandoned drivers may take to notice (a killed worker returns at once)
_generation_lock = threading.Lock()  # z3's default context is not thread-safe: one graph at a time per process


# ----- what engines exchange with the loop ----------------------------------------------------------
@dataclass(frozen=True)
class CaseTask:
    idx: int
    seed: int
    nodes: int


@dataclass
class CaseOutcome:
    """A finished case as an engine hands it back (result is a fuzzer.case.runner.CaseResult when judged)."""

    task: CaseTask
    status: str  # judged | invalid | harness_error
    seconds: float
    graph: Graph | None = None
    values: Values | None = None
    result: Any = None
    ran: list[str] = field(default_factory=list)  # pipeline names that ran the case
    skipped: dict[str, str] = field(default_factory=dict)  # pipeline -> why not (skip rules)
    error: str = ""
    worker: str = ""
    restarts: int = 0  # that worker's restarts so far
    recycle: Recycle | None = None  # the worker was recycled for memory after this case


@dataclass(frozen=True)
class Recycle:
    """A worker restarted between cases because its resident memory outgrew its warm baseline."""

    rss_mb: float
    baseline_mb: float


@dataclass
class WorkerHealth:
    name: str
    state: str = "starting"  # starting | generating | running | idle | stopped | failed
    case: int | None = None
    restarts: int = 0
    cases: int = 0
    pid: int | None = None
    error: str = ""  # why it failed to start, when state is "failed"


class Engine(Protocol):
    """Runs cases somewhere (local processes, Ray actors). The contract the campaign relies on:

    - start(claim): begin; `claim()` is thread-safe and gives the next CaseTask, or None when there is no
      more work (stop requested, --max-cases reached). A task becomes a case with `make_case(task)` (an
      InvalidCase is an outcome with status "invalid") and runs on the pipelines `Scheduler.plan(graph)` allows,
      through a CaseRunner sharing one GapBook.
    - results(timeout_s): finished cases, called only from the campaign's main thread (the store writer).
    - stop(abandon): no new claims; with abandon, cases in flight are dropped and never returned.
    - finished(): True once no outcome can come any more (every driver has ended).
    - health() for the display; worker_pids() for the memory snapshots (None where a worker is remote).
    """

    name: str

    def start(self, claim: Callable[[], CaseTask | None]) -> None: ...

    def results(self, timeout_s: float) -> list[CaseOutcome]: ...

    def finished(self) -> bool: ...

    def health(self) -> list[WorkerHealth]: ...

    def worker_pids(self) -> list[int | None]: ...

    def stop(self, abandon: bool) -> None: ...

    def close(self) -> None: ...


class InvalidCase(Exception):
    """Generation could not give a usable case (recorded with status 'invalid', never run)."""


def make_case(task: CaseTask) -> tuple[Graph, Values]:
    """The graph and values of case `task` (deterministic in task.seed); InvalidCase when unusable."""
    from generators.generate import GenConfig, generate
    from generators.values import find_values

    with _generation_lock:
        try:
            graph, _ = generate(task.seed, GenConfig(nodes=task.nodes))
            values, report = find_values(graph, task.seed)
        except Exception as e:  # noqa: BLE001 - a generator bug is an invalid case, not the end of the campaign
            first = (str(e).splitlines() or [""])[0][:300]
            raise InvalidCase(f"generation failed: {type(e).__name__}: {first}") from None
    if not report.ok:
        raise InvalidCase(f"value search gave up: {'; '.join(report.problems[:3])[:300]}")
    return graph, values


# ----- the loop -------------------------------------------------------------------------------------
@dataclass
class CampaignSettings:
    time_s: float | None = None  # None: until stopped
    max_cases: int | None = None  # cases finished in this run
    workers: int = 1
    resumed: bool = False
    left_out: list[tuple[str, str]] = field(default_factory=list)  # pipelines not run, each with why


@dataclass
class LiveStats:
    """What the display shows; updated by the main thread only."""

    out: Path
    started: float
    deadline: float | None
    workers: list[WorkerHealth] = field(default_factory=list)
    cases: int = 0  # finished in this run (any status)
    judged: int = 0
    invalid: int = 0
    harness_errors: int = 0
    by_symptom: Counter = field(default_factory=Counter)  # (symptom, "new"|"dup") -> findings
    by_component: Counter = field(default_factory=Counter)
    new_bugs: list[StoredFinding] = field(default_factory=list)
    total_bugs: int = 0  # distinct signatures in the whole campaign
    gaps: int = 0
    skips: list[SkipRule] = field(default_factory=list)
    rss_mb: float = 0.0
    recycles: int = 0  # workers recycled for memory in this run
    flaky: int = 0  # new findings a fresh worker did not reproduce (not bugs)
    stopping: str = ""

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> float:
        return self.cases / self.elapsed() if self.elapsed() > 0 else 0.0


@dataclass
class RunSummary:
    run_id: int
    reason: str
    stats: LiveStats
    seconds: float


class Campaign:
    def __init__(self, store: Store, engine: Engine, scheduler: Scheduler, gaps: SharedGapBook, events: EventLog,
                 settings: CampaignSettings, display: Any = None,
                 on_new_signature: Callable[[StoredFinding], None] | None = None,
                 reducer: BackgroundReducer | None = None, known: KnownSignatures | None = None) -> None:
        self.store = store
        self.reducer = reducer  # reduces queued signatures in the background, with its own worker
        self.engine = engine
        self.scheduler = scheduler
        self.gaps = gaps
        self.events = events
        self.settings = settings
        self.display = display
        self.on_new_signature = on_new_signature  # hook for a reducer; new signatures are also queued in the store
        self.known = known  # the engines' view of the filed signatures, kept up to date here
        camp = store.campaign()
        self.seed = camp.seed
        self.nodes = camp.nodes
        self.versions = stack_versions()
        self._claim_lock = threading.Lock()
        self._next = camp.next_case
        self._claimed = 0
        self._stop_reason = ""
        self._abandon = False
        self._restarts: dict[str, int] = {}
        now = time.monotonic()
        self.stats = LiveStats(store.out, now, now + settings.time_s if settings.time_s else None)

    # ----- called from signal handlers (main thread) and driver threads --------------------------------
    def request_stop(self, reason: str, abandon: bool = False) -> None:
        """Stop claiming cases; `abandon` also gives up the cases in flight (else they finish first)."""
        if not self._stop_reason:
            self._stop_reason = reason
        self._abandon = self._abandon or abandon
        self.stats.stopping = self._stop_reason + (" (abandoning cases in flight)" if self._abandon else
                                                   " (finishing cases in flight; again to abandon)")

    def claim(self) -> CaseTask | None:
        with self._claim_lock:
            if self._stop_reason:
                return None
            if self.settings.max_cases is not None and self._claimed >= self.settings.max_cases:
                return None
            while self.store.is_done(self._next):
                self._next += 1
            task = CaseTask(self._next, self.seed + self._next, self.nodes)
            self._next += 1
            self._claimed += 1
            return task

    # ----- the main thread ----------------------------------------------------------------------------
    def run(self) -> RunSummary:
        s = self.settings
        run_id = self.store.start_run(self.engine.name, s.workers, self.versions, socket.gethostname(), s.resumed)
        self.run_id = run_id
        self.stats.total_bugs = self.store.totals()["bugs"]
        self.stats.gaps = len(self.store.gap_rows())
        self.stats.skips = self.scheduler.rules
        pipelines = [p.name for p in self.scheduler.pipelines]
        self.store.record_selection(run_id, pipelines, s.left_out)
        self.events.emit("run_start", run_id=run_id, resumed=s.resumed, engine=self.engine.name, workers=s.workers,
                         seed=self.seed, nodes=self.nodes, next_case=self.store.next_case,
                         pipelines=pipelines, left_out=[list(x) for x in s.left_out], versions=self.versions,
                         time_s=s.time_s, max_cases=s.max_cases)
        reason = "error"
        next_snapshot = time.monotonic()
        try:
            self.engine.start(self.claim)
            if self.reducer is not None:
                self.reducer.start()
            while True:
                if self.reducer is not None:
                    self._reduced(self.reducer.pump(self.store))
                for outcome in self.engine.results(POLL_S):
                    if self._abandon:
                        break  # the store must not see results of a run that was told to drop its work
                    self._record(outcome)
                now = time.monotonic()
                if self.stats.deadline is not None and now >= self.stats.deadline:
                    self.request_stop("time", abandon=True)
                if s.max_cases is not None and self.stats.cases >= s.max_cases:
                    self.request_stop("max_cases")
                if self._stop_reason:
                    self.engine.stop(self._abandon)
                    if self._abandon:
                        break
                if self.engine.finished():
                    for outcome in [] if self._abandon else self.engine.results(0):
                        self._record(outcome)
                    if not self._stop_reason:  # the drivers ended on their own: out of cases, or none could run
                        out_of_cases = s.max_cases is not None and self._claimed >= s.max_cases
                        self.request_stop("max_cases" if out_of_cases else "workers_failed")
                    break
                if now >= next_snapshot:
                    self._snapshot()
                    next_snapshot = now + SNAPSHOT_EVERY_S
                self.stats.workers = self.engine.health()
                if self.display is not None:
                    self.display.update(self.stats)
            reason = self._stop_reason
        except BaseException as e:
            reason = f"error: {type(e).__name__}: {e}"[:300]
            self._abandon = True
            raise
        finally:
            self._snapshot()  # before the workers go, so the memory of the whole campaign is measured
            self.engine.stop(self._abandon)
            self.engine.close()
            if self.reducer is not None:
                self._reduced(self.reducer.stop(self.store))
            self.stats.workers = self.engine.health()
            self.store.end_run(run_id, reason)
            self.events.emit("run_end", run_id=run_id, reason=reason, cases=self.stats.cases,
                             recycles=self.stats.recycles, seconds=round(self.stats.elapsed(), 3),
                             skips=[r.__dict__ for r in self.stats.skips])
        return RunSummary(run_id, reason, self.stats, self.stats.elapsed())

    def _reduced(self, done: list[Any]) -> None:
        for d in done:
            self.events.emit("reduced", signature=d.signature, state=d.state, dir=d.reduced_dir, note=d.note,
                             seconds=round(d.seconds, 3))

    def _snapshot(self) -> None:
        pids = self.engine.worker_pids() + ([self.reducer.worker.pid] if self.reducer is not None else [])
        self.stats.rss_mb = campaign_rss_mb(pids)
        totals = self.store.snapshot(self.run_id, round(self.stats.rss_mb, 1))
        self.stats.total_bugs = totals["bugs"]

    def _record(self, o: CaseOutcome) -> None:
        rec = CaseRecord(o.task.idx, o.task.seed, o.status, o.seconds, o.graph, o.values, list(o.ran),
                         error=o.error, extra={"versions": self.versions, "campaign_seed": self.seed,
                                               "nodes_wanted": self.nodes})
        result = o.result
        if o.status == "judged" and result is not None:
            rec.findings = [FindingRecord(f.to_json(), _models(f.pipelines, result.artefacts))
                            for f in result.verdict.findings]
            for g in result.verdict.gaps:
                snap = self.gaps.snapshot(g.signature)
                if snap is not None:
                    rec.gaps.append(GapRecord(g.signature, snap["component"], snap["op"], snap["dtype"],
                                              snap["message"], snap["entry"]))
        if o.graph is not None:  # runs the skip rules saved, or sent anyway, counted in the case's transaction
            rec.rule_hits = [(h.pipeline, h.signature, h.sent) for h in self.scheduler.hits(o.graph, o.ran, o.skipped)]
        stored = self.store.record_case(self.run_id, rec)
        if self.known is not None:
            self.known.add([f.signature for f in stored])
        flaky = [f.to_json() for f in result.verdict.flaky] if o.status == "judged" and result is not None else []
        if flaky:
            self.stats.flaky += len(flaky)
            self.store.record_flaky(self.run_id, o.task.idx, flaky)
            for f in flaky:
                self.events.emit("flaky", signature=f["signature"], symptom=f["symptom"], component=f["component"],
                                 pipelines=f["pipelines"], case=o.task.idx, note=f["detail"].get("flaky", ""))
        st = self.stats
        st.cases += 1
        st.judged += o.status == "judged"
        st.invalid += o.status == "invalid"
        st.harness_errors += o.status == "harness_error"
        self.events.emit("case", idx=o.task.idx, seed=o.task.seed, status=o.status, seconds=round(o.seconds, 3),
                         findings=len(stored), worker=o.worker, pipelines=len(o.ran), skipped=len(o.skipped),
                         **({"error": o.error[:500]} if o.error else {}))
        self._worker_events(o)
        for f in stored:
            tag = "new" if f.new else "dup"
            st.by_symptom[(f.symptom, tag)] += 1
            st.by_component[(f.component, tag)] += 1
            if f.new:
                st.new_bugs.append(f)
                st.total_bugs += 1
            self.events.emit("finding", signature=f.signature, new=f.new, symptom=f.symptom, component=f.component,
                             stage=f.stage, pipelines=f.pipelines, dir=f.dir, case=o.task.idx)
            if f.new and self.on_new_signature is not None:
                self.on_new_signature(f)
        if rec.gaps:
            st.gaps = len(self.store.gap_rows())
        if o.graph is not None and o.status == "judged":
            for f in rec.findings:
                for rule in self.scheduler.observe(o.task.idx, o.graph, f.finding):
                    if self.store.add_skip(rule.pipeline, rule.op, rule.signature, rule.reason, rule.trigger_json()):
                        st.skips = [r for r in st.skips if (r.pipeline, r.signature) != (rule.pipeline, rule.signature)]
                        st.skips.append(rule)
                        self.events.emit("skip", pipeline=rule.pipeline, op=rule.op, signature=rule.signature,
                                         reason=rule.reason, trigger=rule.trigger_json())

    def _worker_events(self, o: CaseOutcome) -> None:
        if not o.worker:
            return
        before = self._restarts.get(o.worker, 0)
        if o.restarts > before:
            self.events.emit("worker", worker=o.worker, kind="restart", restarts=o.restarts, case=o.task.idx)
        self._restarts[o.worker] = o.restarts
        crashes = sorted({oc.failure.kind for oc in (o.result.outcomes.values() if o.result else [])
                          if oc.failure is not None and oc.failure.kind in ("segfault", "abort", "timeout", "oom")})
        if crashes:
            self.events.emit("worker", worker=o.worker, kind="crash", crashes=crashes, case=o.task.idx)
        if o.recycle is not None:
            self.stats.recycles += 1
            self.store.record_recycle(self.run_id, o.worker, o.task.idx, o.recycle.rss_mb, o.recycle.baseline_mb)
            self.events.emit("worker", worker=o.worker, kind="recycle", case=o.task.idx,
                             rss_mb=round(o.recycle.rss_mb, 1), baseline_mb=round(o.recycle.baseline_mb, 1))


def _models(pipelines: list[str], artefacts: dict[str, bytes]) -> dict[str, bytes]:
    """The ONNX models of the converters a finding's pipelines went through, by file name."""
    out: dict[str, bytes] = {}
    for name in pipelines:
        try:
            pid = parse_pipeline(name)
        except PipelineError:
            continue  # e.g. "torch>reference"
        key = f"{pid.source}>{pid.converter}"
        if pid.converter and key in artefacts:
            out[f"model.{pid.converter.replace(':', '_')}.onnx"] = artefacts[key]
    return out
