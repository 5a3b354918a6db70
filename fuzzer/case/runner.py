"""Run one case through many pipelines in an isolated worker, and judge it.

The worker may die at any stage; the pipeline in flight then gets a segfault/abort/timeout/oom
failure, the worker is respawned, and the remaining pipelines continue in a new job (reusing the
converted ONNX bytes, which came back as artefacts). Follow-ups refine the verdict: localising the
first diverging op of a mismatch, confirming a slowdown with a second measurement, and naming the
TVM pass at fault.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fuzzer.case.followups import bisect_tvm_passes, confirm_new_findings, confirm_slowdowns, localise_mismatches
from fuzzer.case.gap_book import GapBook, graph_pairs
from fuzzer.case.settings import RunSettings
from fuzzer.targets.arrays import pack_dict, unpack_list
from fuzzer.workers.pool import Event, Worker
from generators.ir import Graph
from generators.values import Values
from oracles.judge import Reference, Verdict, judge_case, reference_failure_finding
from oracles.outcome import Failure, Outcome
from oracles.pipeline_id import PipelineId, parse_pipeline

JOB_HANDLER = "fuzzer.targets.job:run_job"


@dataclass
class CaseResult:
    references: dict[str, Reference]
    outcomes: dict[str, Outcome]
    artefacts: dict[str, bytes]  # "source>converter" -> ONNX bytes
    verdict: Verdict
    seconds: float
    worker_seconds: float  # time spent waiting on workers (the systems under test and their IPC)
    sut_seconds: float  # of which the worker measured inside the systems under test (all jobs, follow-ups too)
    followup_notes: list[str] = field(default_factory=list)


class CaseRunner:
    def __init__(self, worker: Worker, settings: RunSettings | None = None, gaps: GapBook | None = None,
                 known: Callable[[str], bool] | None = None) -> None:
        self.worker = worker
        self.settings = settings or RunSettings()
        self.gaps = gaps  # capability gaps fed back across cases (None: every pipeline runs every case)
        # signatures already filed; a new one is confirmed in a fresh worker first (None: no confirmation)
        self.known = known
        self.worker_seconds = 0.0
        self.sut_seconds = 0.0

    # -- one job, surviving worker deaths -----------------------------------------------------------
    def submit(self, request: dict[str, Any], blobs: dict[str, bytes]) -> tuple[list[Event], Any]:
        events: list[Event] = []
        t0 = time.perf_counter()
        result = self.worker.run(request, blobs, events.append)
        self.worker_seconds += time.perf_counter() - t0
        for ev in events:  # time the worker measured inside systems under test
            self.sut_seconds += sum(ev.header.get("stage_times", {}).values())
            if ev.event == "timing":  # a confirmation measurement: its runs are outside any stage
                self.sut_seconds += sum(ev.header.get("run_times", []))
        return events, result

    def fresh_worker(self) -> None:
        """The next job starts in a new worker process (confirmations must not see this one's state)."""
        self.worker.recycle()

    def run_source(self, graph: Graph, values: Values, source: str, pipelines: list[str],
                   reference: bool = True) -> tuple[Reference | None, dict[str, Outcome], dict[str, bytes]]:
        base = {"op": "case", "graph": graph.wire(), "source": source, "repeats": self.settings.repeats,
                "stage_timeout_s": self.settings.stage_timeout_s}
        blobs = {"inputs": pack_dict(values.inputs), "weights": pack_dict(values.weights)}
        outcomes: dict[str, Outcome] = {}
        models: dict[str, bytes] = {}
        passed_check: set[str] = set()
        ref: Reference | None = None
        todo = list(pipelines)
        want_ref = reference
        while todo or want_ref:
            request = dict(base, pipelines=todo, reference=want_ref)
            job_blobs = dict(blobs, **{f"model:{c}": m for c, m in models.items() if c in passed_check})
            events, result = self.submit(request, job_blobs)
            for ev in events:
                if ev.event == "reference":
                    ref = _reference(source, ev)
                    want_ref = False
                elif ev.event == "artefact":
                    models[ev.header["converter"]] = ev.blobs["model"]
                elif ev.event == "outcome":
                    o = Outcome.from_meta_json(ev.header, unpack_list(ev.blobs["outputs"])
                                               if "outputs" in ev.blobs else None)
                    outcomes[o.pipeline] = o
                    if o.failure is None or o.failure.stage not in ("export", "check"):
                        passed_check.add(parse_pipeline(o.pipeline).converter)
            todo = [p for p in todo if p not in outcomes]
            if result.completed:
                if result.error is not None:  # the handler itself raised: a harness bug, not a finding
                    raise RuntimeError(f"worker job failed: {result.error.get('exc_type')}: "
                                       f"{result.error.get('message')}")
                break
            stage = result.last_stage or {}
            failure = Failure(stage.get("stage") or "run", result.crash_kind, "", result.detail)
            crashed = stage.get("pipeline", "")
            if want_ref and (crashed.endswith(">reference") or not crashed):
                ref = Reference(source, None, None, Failure("reference", result.crash_kind, "", result.detail))
                for p in todo:
                    outcomes[p] = Outcome(p, skipped="the eager reference crashed")
                return ref, outcomes, models
            if crashed not in todo:
                raise RuntimeError(f"worker died outside any pipeline stage: {result.detail}")
            outcomes[crashed] = Outcome(crashed, failure=failure)
            cpid = parse_pipeline(crashed)
            if failure.stage in ("export", "check"):  # the converter died: every consumer shares its failure
                for p in todo:
                    q = parse_pipeline(p)
                    if p != crashed and q.converter == cpid.converter:
                        outcomes[p] = Outcome(p, failure=failure)
            elif cpid.converter:
                passed_check.add(cpid.converter)
            todo = [p for p in todo if p not in outcomes]
        return ref, outcomes, models

    # -- the case ------------------------------------------------------------------------------------
    def run_case(self, graph: Graph, values: Values, pipelines: list[PipelineId]) -> CaseResult:
        t0 = time.perf_counter()
        self.worker_seconds = 0.0
        self.sut_seconds = 0.0
        refs: dict[str, Reference] = {}
        outcomes: dict[str, Outcome] = {}
        artefacts: dict[str, bytes] = {}
        if self.gaps is not None:
            pairs = graph_pairs(graph)
            for p in pipelines:
                why = self.gaps.skip_reason(p, pairs)
                if why:
                    outcomes[p.name] = Outcome(p.name, skipped=why)
        for source in sorted({p.source for p in pipelines}):
            names = [p.name for p in pipelines if p.source == source and p.name not in outcomes]
            if not names:
                continue
            ref, outs, models = self.run_source(graph, values, source, names)
            if ref is not None:
                refs[source] = ref
            outcomes.update(outs)
            artefacts.update({f"{source}>{c}": m for c, m in models.items()})
        verdict = judge_case(refs, outcomes)
        if self.gaps is not None:
            for gap in verdict.gaps:
                self.gaps.record(gap, graph)
        for ref in refs.values():
            f = reference_failure_finding(ref)
            if f is not None:
                verdict.findings.append(f)
        notes: list[str] = []
        s = self.settings
        if s.localise:
            notes += localise_mismatches(self, graph, values, verdict)
        if s.confirm_slowdowns:
            notes += confirm_slowdowns(self, graph, values, outcomes, verdict)
        if s.bisect_passes:
            notes += bisect_tvm_passes(self, graph, values, refs, artefacts, verdict)
        if self.known is not None:
            notes += confirm_new_findings(self, graph, values, outcomes, refs, verdict, self.known)
        return CaseResult(refs, outcomes, artefacts, verdict, time.perf_counter() - t0, self.worker_seconds,
                          self.sut_seconds, notes)


def _reference(source: str, ev: Event) -> Reference:
    f = ev.header.get("failure")
    seconds = sum(ev.header.get("stage_times", {}).values())
    if f:
        return Reference(source, None, None, Failure.from_json(f), seconds)
    outs = unpack_list(ev.blobs["outputs"])
    wide = unpack_list(ev.blobs["outputs64"]) if "outputs64" in ev.blobs else None
    return Reference(source, outs, wide, None, seconds)
