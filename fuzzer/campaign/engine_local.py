"""The local engine: N driver threads, each owning one isolated Worker process and a CaseRunner.

A driver claims a case index, generates the case (in this process: ~10-70 ms against seconds per case
in the workers, measured), runs it through the pipelines the scheduler allows, and queues the outcome
for the campaign's main thread, the only store writer. Abandoning (time up, SIGTERM, a second Ctrl-C)
kills the workers' process groups; a driver whose case was abandoned queues nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from fuzzer.campaign.engine_parts import (
    AbandonableWorker,
    Abandoned,
    MemoryRecycler,
    OutcomeQueue,
    RecyclePolicy,
)
from fuzzer.campaign.known import KnownSignatures
from fuzzer.campaign.loop import CaseOutcome, CaseTask, InvalidCase, WorkerHealth, make_case
from fuzzer.campaign.scheduler import Scheduler
from fuzzer.case.gap_book import GapBook
from fuzzer.case.runner import JOB_HANDLER, CaseRunner, RunSettings
from fuzzer.workers.pool import Limits, Worker, WorkerStartupError
from generators.ir import Graph
from generators.values import Values

MAX_STARTUP_FAILURES = 3  # consecutive: the environment is broken, this driver gives up


class LocalEngine:
    name = "local"

    def __init__(self, workers: int, scheduler: Scheduler, gaps: GapBook, settings: RunSettings, limits: Limits,
                 log_dir: Path, env: dict[str, str] | None = None, handler: str = JOB_HANDLER,
                 make: Callable[[CaseTask], tuple[Graph, Values]] = make_case,
                 recycle: RecyclePolicy | None = None, known: KnownSignatures | None = None) -> None:
        if workers < 1:
            raise ValueError(f"the local engine needs at least one worker, not {workers}")
        self.scheduler = scheduler
        self.gaps = gaps
        self.settings = settings
        self.make = make
        self._abandoned = threading.Event()
        self._stopping = threading.Event()
        self.recycle = recycle or RecyclePolicy()
        self.known = known  # filed signatures: a new one is confirmed in a fresh worker (None: no confirmation)
        self._queue = OutcomeQueue()
        self._workers = [AbandonableWorker(Worker(handler, limits, log_dir, env, name=f"w{i}"), self._abandoned)
                         for i in range(workers)]
        self._health = [WorkerHealth(w.worker.name) for w in self._workers]
        self._threads: list[threading.Thread] = []

    # ----- Engine protocol -----------------------------------------------------------------------------
    def start(self, claim: Callable[[], CaseTask | None]) -> None:
        for i, w in enumerate(self._workers):
            t = threading.Thread(target=self._drive, args=(w, self._health[i], claim), name=f"driver-{i}",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def results(self, timeout_s: float) -> list[CaseOutcome]:
        return self._queue.results(timeout_s)

    def finished(self) -> bool:
        return bool(self._threads) and not any(t.is_alive() for t in self._threads)

    def health(self) -> list[WorkerHealth]:
        for h, w in zip(self._health, self._workers):
            h.restarts = w.worker.restarts
            h.pid = w.worker.pid
        return [WorkerHealth(**h.__dict__) for h in self._health]

    def worker_pids(self) -> list[int | None]:
        return [w.worker.pid for w in self._workers]

    def stop(self, abandon: bool) -> None:
        """No new cases; with `abandon`, also drop the cases in flight now (their workers are killed)."""
        self._stopping.set()
        if abandon and not self._abandoned.is_set():
            self._abandoned.set()
            for w in self._workers:
                w.kill()

    def close(self) -> None:
        """Wait for the drivers (killing workers again if one lingers), then close every worker."""
        end = time.monotonic() + 30.0
        for t in self._threads:
            while t.is_alive() and time.monotonic() < end:
                t.join(0.5)
                if t.is_alive() and self._abandoned.is_set():
                    for w in self._workers:
                        w.kill()
        for w in self._workers:
            w.worker.close()

    # ----- one driver thread ---------------------------------------------------------------------------
    def _drive(self, w: AbandonableWorker, health: WorkerHealth, claim: Callable[[], CaseTask | None]) -> None:
        runner = CaseRunner(w, self.settings, gaps=self.gaps,  # type: ignore[arg-type]  # duck-typed Worker
                            known=self.known.__contains__ if self.known is not None else None)
        memory = MemoryRecycler(self.recycle)
        while not self._stopping.is_set():
            if not self._ensure_started(w, health):
                health.state = "failed"  # before claiming: no case index is used up by a worker that cannot start
                return
            task = claim()
            if task is None:
                break
            health.case = task.idx
            outcome = self._run_one(runner, w, health, task)
            if outcome is None:  # abandoned
                break
            health.cases += 1
            health.state = "idle"
            health.case = None
            outcome.recycle = memory.after_case(w.worker)
            self._queue.put(outcome)
        health.state = "stopped"
        health.case = None

    def _ensure_started(self, w: AbandonableWorker, health: WorkerHealth) -> bool:
        """Start the worker if it is not running; False after MAX_STARTUP_FAILURES failed tries in a row."""
        for _ in range(MAX_STARTUP_FAILURES):
            if self._stopping.is_set():
                return True
            try:
                w.worker.start()
                if health.state == "starting":
                    health.state = "idle"
                return True
            except WorkerStartupError as e:
                health.error = str(e).splitlines()[0][:300]
            except RuntimeError as e:  # closed by an abandon
                health.error = str(e)
                return False
        return False

    def _run_one(self, runner: CaseRunner, w: AbandonableWorker, health: WorkerHealth,
                 task: CaseTask) -> CaseOutcome | None:
        t0 = time.perf_counter()
        name = w.worker.name
        health.state = "generating"
        try:
            graph, values = self.make(task)
        except InvalidCase as e:
            return CaseOutcome(task, "invalid", time.perf_counter() - t0, error=str(e), worker=name,
                               restarts=w.worker.restarts)
        pipelines, skipped = self.scheduler.plan(graph)
        health.state = "running"
        try:
            result = runner.run_case(graph, values, pipelines)
        except Abandoned:
            return None
        except Exception as e:  # noqa: BLE001 - a harness error is recorded and the campaign goes on
            if self._abandoned.is_set():
                return None
            return CaseOutcome(task, "harness_error", time.perf_counter() - t0, graph, values, ran=[],
                               skipped=skipped, error=f"{type(e).__name__}: {e}"[:2000], worker=name,
                               restarts=w.worker.restarts)
        if self._abandoned.is_set():
            return None
        ran = [n for n, o in result.outcomes.items() if not o.skipped]
        return CaseOutcome(task, "judged", time.perf_counter() - t0, graph, values, result, ran, skipped,
                           worker=name, restarts=w.worker.restarts)
