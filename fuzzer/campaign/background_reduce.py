"""Reduce every new signature while the campaign runs, so a night's bugs arrive already small.

One thread with its own isolated Worker (the campaign's workers are never borrowed) reduces one queued
signature at a time within a time budget, from the smallest example the store kept. The reduced case,
its finding and, where a standalone repro can be made, the corpus entry are written to
`OUT/reduced/<sig12>/` (built in a temporary folder, then renamed). Only the campaign's main thread
touches SQLite: it calls `pump(store)` on every turn of its loop, which records finished reductions and
hands over the next queued signature. A kill -9 leaves at most a signature in state 'running' and maybe
a finished folder without its state: on the next start those are queued again and redone.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzzer.campaign.store import Store, sig12
from fuzzer.workers.pool import Limits, Worker

REDUCED_DIR = "reduced"
LOOK_EVERY_S = 2.0  # how often an idle reducer asks the store for queued signatures


@dataclass
class ReduceJob:
    signature: str
    example: Path  # a finding folder of the store (graph.json, inputs.npz, weights.npz, finding.json)


@dataclass
class ReduceDone:
    signature: str
    state: str  # "done" | "failed"
    reduced_dir: str | None  # relative to OUT
    note: str  # nodes before -> after and time, or why it failed
    seconds: float


class BackgroundReducer:
    def __init__(self, out: Path, pipelines: list[str], limits: Limits, log_dir: Path, env: dict[str, str] | None,
                 budget_s: float = 120.0) -> None:
        self.out = out
        self.pipelines = pipelines  # the campaign's pipelines: a target's controls come from these
        self.budget_s = budget_s
        self.worker = Worker("fuzzer.targets.job:run_job", limits, log_dir, env, name="reducer")
        self._jobs: queue.Queue[ReduceJob | None] = queue.Queue()
        self._done: queue.Queue[ReduceDone] = queue.Queue()
        self._busy: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reducer", daemon=True)
        self.finished: list[ReduceDone] = []
        self._requeued = False
        self._next_look = 0.0

    def start(self) -> None:
        self._thread.start()

    # ----- main thread ---------------------------------------------------------------------------------
    def pump(self, store: Store) -> list[ReduceDone]:
        """Record finished reductions and start the next queued one; returns what finished this turn."""
        if not self._requeued:  # a previous run killed mid-reduction left these behind
            for sig in store.signatures_in_state("running"):
                store.set_reduce_state(sig, "queued")
            self._requeued = True
        done = self._collect(store)
        now = time.monotonic()
        if self._busy is None and not self._stop.is_set() and (done or now >= self._next_look):
            self._next_look = now + LOOK_EVERY_S  # the campaign loop turns every 0.2 s: query the queue less
            for sig in store.queued_signatures():
                example = store.smallest_example(sig)
                if example is None:  # no example kept on disk: nothing to reduce
                    store.set_reduce_state(sig, "failed")
                    continue
                store.set_reduce_state(sig, "running")
                self._busy = sig
                self._jobs.put(ReduceJob(sig, self.out / example))
                break
        return done

    def stop(self, store: Store | None = None) -> list[ReduceDone]:
        """Abandon the reduction in flight (its signature goes back to the queue) and end the thread;
        returns the reductions that finished meanwhile."""
        self._stop.set()
        self._jobs.put(None)
        pid = self.worker.pid
        self.worker.close()
        if pid is not None:
            self._thread.join(10.0)
        if store is None:
            return []
        done = self._collect(store)
        if self._busy is not None:
            store.set_reduce_state(self._busy, "queued")
            self._busy = None
        return done

    def _collect(self, store: Store) -> list[ReduceDone]:
        done: list[ReduceDone] = []
        while True:
            try:
                d = self._done.get_nowait()
            except queue.Empty:
                break
            store.set_reduce_state(d.signature, d.state, d.reduced_dir)
            if d.signature == self._busy:
                self._busy = None
            done.append(d)
        self.finished += done
        return done

    # ----- the reducer thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            job = self._jobs.get()
            if job is None or self._stop.is_set():
                return
            t0 = time.monotonic()
            try:
                rel, note = self._reduce(job)
                d = ReduceDone(job.signature, "done", rel, note, time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001 - a failed reduction is recorded, never fatal to the campaign
                if self._stop.is_set():
                    return  # abandoned: the main thread puts it back in the queue
                d = ReduceDone(job.signature, "failed", None, f"{type(e).__name__}: {e}"[:300],
                               time.monotonic() - t0)
            self._done.put(d)

    def _reduce(self, job: ReduceJob) -> tuple[str, str]:
        from fuzzer.case.files import read_case
        from fuzzer.cli.reduce import finding_from_json, read_finding, write_corpus_entry, write_reduced
        from fuzzer.reduce import ReductionTarget, control_pipelines, reduce_case

        graph, values = read_case(job.example)
        recorded = read_finding(job.example)
        if recorded is None:
            raise FileNotFoundError(f"{job.example}/finding.json")
        finding = finding_from_json(recorded)
        pipes = control_pipelines(finding.pipelines, self.pipelines)
        target = ReductionTarget.from_finding(finding, sorted(set(pipes) | set(finding.pipelines)))
        result = reduce_case(graph, values, target, self.worker, self.budget_s)
        rel = f"{REDUCED_DIR}/{sig12(job.signature)}"
        final = self.out / rel
        tmp = final.with_name(f".tmp-{final.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_reduced(tmp, str(job.example.relative_to(self.out)), graph, result, result.stats)
        note = write_corpus_entry(tmp, result)
        entry_note = f"; {note}" if note else "; corpus entry written"
        if final.exists():  # a reduction redone after a kill between the rename and the state's commit
            shutil.rmtree(final)
        tmp.rename(final)
        s = result.stats
        return rel, f"{s['nodes_before']} -> {s['nodes_after']} nodes in {s['seconds']:.0f} s{entry_note}"


def make_reducer(budget_s: float, out: Path, pipelines: list[Any], limits: Limits, work: Path,
                 env: dict[str, str]) -> BackgroundReducer | None:
    """The campaign's background reducer, or None when `--reduce-budget 0` turned it off."""
    if budget_s <= 0:
        return None
    return BackgroundReducer(out, [p.name for p in pipelines], limits, work / "logs", env, budget_s=budget_s)


def reduction_line(reducer: BackgroundReducer) -> str:
    done = [d for d in reducer.finished if d.state == "done"]
    failed = len(reducer.finished) - len(done)
    return (f"background reduction: {len(done)} bugs reduced" + (f", {failed} failed" if failed else "")
            + (f" (in {reducer.out / REDUCED_DIR})" if done else "") + "; the rest stay queued for the next run")
