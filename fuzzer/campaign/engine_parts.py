"""What both engines (driver threads, Ray actors) share: abandoning a case in flight, recycling a worker whose
memory grew, and the queue of finished cases the campaign's main thread drains."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from fuzzer.campaign.loop import CaseOutcome, Recycle
from fuzzer.workers.pool import Event, JobResult, Worker


class Abandoned(Exception):
    """The engine was told to drop the case in flight."""


class AbandonableWorker:
    """A Worker whose job can be abandoned from another thread: the flag is checked around every job, and
    `kill` takes the worker's process group down so a long stage returns at once."""

    def __init__(self, worker: Worker, abandoned: threading.Event) -> None:
        self.worker = worker
        self.abandoned = abandoned

    def run(self, request: dict, blobs: dict[str, bytes] | None = None,
            on_event: Callable[[Event], None] | None = None) -> JobResult:
        if self.abandoned.is_set():
            raise Abandoned()
        result = self.worker.run(request, blobs, on_event)
        if self.abandoned.is_set():
            raise Abandoned()
        return result

    def recycle(self) -> None:
        self.worker.recycle()

    def kill(self) -> None:
        pid = self.worker.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@dataclass(frozen=True)
class RecyclePolicy:
    """When a worker is recycled: its resident memory over `growth` times what it used once warm (after its
    `baseline_cases`-th case since it started). Keeps a days-long campaign's memory flat."""

    baseline_cases: int = 5
    growth: float = 1.25


class MemoryRecycler:
    """Watches one worker across cases and recycles it (between cases) when the policy says so."""

    def __init__(self, policy: RecyclePolicy | None = None) -> None:
        self.policy = policy or RecyclePolicy()
        self.cases = 0
        self.baseline_mb = 0.0
        self.starts = -1

    def after_case(self, worker: Worker) -> Recycle | None:
        """Call after every case; the recycle it did, if any."""
        if worker.restarts + worker.recycles != self.starts:  # a new process: measure it afresh
            self.starts = worker.restarts + worker.recycles
            self.cases = 0
            self.baseline_mb = 0.0
        self.cases += 1
        rss = worker.resident_mb()
        if self.cases == self.policy.baseline_cases:
            self.baseline_mb = rss
        if self.baseline_mb and rss > self.policy.growth * self.baseline_mb:
            baseline = self.baseline_mb
            worker.recycle()
            return Recycle(rss, baseline)
        return None


class OutcomeQueue:
    """Finished cases from any driver thread, drained by the campaign's main thread (the store writer)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[CaseOutcome] = queue.Queue()

    def put(self, outcome: CaseOutcome) -> None:
        self._queue.put(outcome)

    def results(self, timeout_s: float) -> list[CaseOutcome]:
        """Everything finished so far, waiting up to `timeout_s` for the first one (0: do not wait)."""
        out: list[CaseOutcome] = []
        try:
            out.append(self._queue.get(timeout=timeout_s) if timeout_s > 0 else self._queue.get_nowait())
            while True:
                out.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return out
