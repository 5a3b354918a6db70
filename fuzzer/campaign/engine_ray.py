"""The Ray engine: a campaign's cases run on Ray actors, on this machine or across a cluster, into the one store.

Isolation is the local engine's: an actor never runs a system under test in its own process (a segfault would
take the actor down). Each actor owns one fuzzer.workers.pool.Worker (a spawned subprocess) and a CaseRunner,
exactly like a driver thread of fuzzer.campaign.engine_local, and generates its cases itself
(fuzzer.campaign.loop.make_case).
The driver keeps one thread per actor: it claims a case index, sends it with the scheduler's current skip rules
and the gap book's entries (both live in the driver), and turns the reply back into a CaseOutcome for the
campaign's main thread, the only store writer. Replies are plain data (JSON text, dicts, lists, bytes, numpy
arrays), never a pickle on disk; the gaps a case showed are recorded into the driver's book on arrival, so the
campaign stores them and the next tasks skip them, as with the local engine. The driver's CaseResult has no
reference outputs, compare records or output arrays: the campaign does not read them and they would only
cross the network.

Resources: each actor takes one CPU and, when a pipeline runs on CUDA and the cluster has GPUs, a share of a GPU
(fuzzer.devices.gpus_per_actor); Ray puts CUDA_VISIBLE_DEVICES in the actor's environment and its worker
inherits it. Without an address a private Ray instance is started for the campaign (temp, log and spill
folders and its authentication token under the work dir, no dashboard, no usage stats, the actors' output not
forwarded to the driver's terminal) and shut down at the end; with an address the engine joins that cluster,
whose every node needs this checkout and virtual environment at the same paths. An actor that dies (its
process killed, its node lost) costs the case in flight, recorded as a harness error, and is replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fuzzer.campaign.engine_parts import (
    AbandonableWorker,
    Abandoned,
    MemoryRecycler,
    OutcomeQueue,
    RecyclePolicy,
)
from fuzzer.campaign.known import KnownSignatures
from fuzzer.campaign.loop import CaseOutcome, CaseTask, InvalidCase, Recycle, WorkerHealth, make_case
from fuzzer.campaign.scheduler import Scheduler, SharedGapBook
from fuzzer.case.runner import JOB_HANDLER, CaseResult, CaseRunner, RunSettings
from fuzzer.workers.pool import REPO_ROOT, Limits, Worker
from generators.ir import Graph
from generators.values import Values
from oracles.judge import Finding, Gap, Verdict
from oracles.outcome import Outcome

MAX_START_FAILURES = 3  # consecutive failed starts of one actor slot: the environment is broken, the slot gives up
ACTOR_START_TIMEOUT_S = 300.0  # placing an actor (resources may be busy) and starting its worker (heavy imports)
ABANDON_GRACE_S = 10.0  # after an abandon, how long a case may take to return before its actor is killed
CLOSE_TIMEOUT_S = 15.0
WAIT_SLICE_S = 0.5
OBJECT_STORE_BYTES = 256 << 20  # replies are small (a case's arrays and ONNX models): keep the shared memory small
RAY_ENV = ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")  # set for a private instance, restored
MAX_SOCKET_DIR = 60  # Ray's unix socket paths (<temp>/session_<date>_<pid>/sockets/plasma_store) must fit 107 bytes


# ----- the actor (runs in a Ray worker process) -----------------------------------------------------------
class CaseActor:
    """One Ray actor: an isolated Worker plus a CaseRunner. Methods run on two threads (max_concurrency=2) so
    that `abandon` and `info` answer while a case runs."""

    def __init__(self, name: str, pipelines: list[str], settings: dict[str, Any], limits: dict[str, Any],
                 log_dir: str, env: dict[str, str], handler: str, recycle: dict[str, Any] | None = None) -> None:
        from oracles.pipeline_id import parse_pipeline

        self.name = name
        self.worker = Worker(handler, Limits(**limits), Path(log_dir), env, name=name)
        self.abandoned = threading.Event()
        self.wrapped = AbandonableWorker(self.worker, self.abandoned)
        self.scheduler = Scheduler([parse_pipeline(p) for p in pipelines], min_graphs=1 << 30)  # rules: the driver's
        self.gaps = SharedGapBook()
        self.runner = CaseRunner(self.wrapped, RunSettings(**settings), gaps=self.gaps)  # type: ignore[arg-type]
        self.memory = MemoryRecycler(RecyclePolicy(**(recycle or {})))

    def start(self) -> dict[str, Any]:
        """Start the worker (its heavy imports); the actor's identity for the driver."""
        self.worker.start()
        return self.info()

    def info(self) -> dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "worker_pid": self.worker.pid, "restarts": self.worker.restarts,
                "host": socket.gethostname(), "node": ray.get_runtime_context().get_node_id()}

    def run(self, idx: int, seed: int, nodes: int, rules: list[dict[str, Any]],
            gap_rows: list[dict[str, Any]], known: list[str] | None = None) -> dict[str, Any]:
        """Generate, plan and run case `idx`; plain data back (see `_reply`)."""
        t0 = time.perf_counter()
        task = CaseTask(idx, seed, nodes)
        self.scheduler.load(rules)
        self.runner.known = set(known).__contains__ if known is not None else None
        self.gaps.load(gap_rows)
        try:
            graph, values = make_case(task)
        except InvalidCase as e:
            return self._reply("invalid", t0, error=str(e))
        pipelines, skipped = self.scheduler.plan(graph)
        try:
            result = self.runner.run_case(graph, values, pipelines)
        except Abandoned:
            return self._reply("abandoned", t0)
        except Exception as e:  # noqa: BLE001 - a harness error is recorded and the campaign goes on
            if self.abandoned.is_set():
                return self._reply("abandoned", t0)
            return self._reply("harness_error", t0, graph, values, skipped=skipped,
                               error=f"{type(e).__name__}: {e}"[:2000])
        if self.abandoned.is_set():
            return self._reply("abandoned", t0)
        reply = self._reply("judged", t0, graph, values, result, skipped)
        recycled = self.memory.after_case(self.worker)  # between cases, as a local driver does
        if recycled is not None:
            reply["recycle"] = asdict(recycled)
            reply["info"] = self.info()
        return reply

    def _reply(self, status: str, t0: float, graph: Graph | None = None, values: Values | None = None,
               result: CaseResult | None = None, skipped: dict[str, str] | None = None,
               error: str = "") -> dict[str, Any]:
        reply: dict[str, Any] = {"status": status, "seconds": time.perf_counter() - t0, "error": error,
                                 "skipped": dict(skipped or {}), "info": self.info(), "graph": None}
        if graph is not None and values is not None:
            reply.update(graph=graph.wire(), inputs=dict(values.inputs), weights=dict(values.weights))
        if result is not None:
            v = result.verdict
            reply["result"] = {
                "outcomes": [o.meta_json() for o in result.outcomes.values()],
                "artefacts": dict(result.artefacts), "findings": [f.to_json() for f in v.findings],
                "gaps": [asdict(g) for g in v.gaps], "mismatched": list(v.mismatched),
                "flaky": [f.to_json() for f in v.flaky], "seconds": result.seconds,
                "worker_seconds": result.worker_seconds, "sut_seconds": result.sut_seconds,
                "notes": list(result.followup_notes)}
        return reply

    def abandon(self) -> None:
        """Drop the case in flight: its worker's process group is killed, so a long stage returns at once."""
        self.abandoned.set()
        self.wrapped.kill()

    def close(self) -> None:
        self.worker.close()


def outcome_from_reply(task: CaseTask, reply: dict[str, Any], worker: str, restarts: int) -> CaseOutcome:
    """The driver's CaseOutcome for an actor's reply (status judged, invalid or harness_error)."""
    graph = Graph.loads(reply["graph"]) if reply.get("graph") else None
    values = None
    if graph is not None:  # copies: arrays from Ray's object store are read-only views into shared memory
        values = Values({k: np.array(a) for k, a in reply["inputs"].items()},
                        {k: np.array(a) for k, a in reply["weights"].items()})
    result = None
    ran: list[str] = []
    r = reply.get("result")
    if r is not None:
        outcomes = {m["pipeline"]: Outcome.from_meta_json(m, None) for m in r["outcomes"]}
        verdict = Verdict([Finding.from_json(f) for f in r["findings"]], [Gap(**g) for g in r["gaps"]], {},
                          list(r["mismatched"]), flaky=[Finding.from_json(f) for f in r.get("flaky", [])])
        result = CaseResult({}, outcomes, dict(r["artefacts"]), verdict, r["seconds"], r["worker_seconds"],
                            r["sut_seconds"], list(r["notes"]))
        ran = [n for n, o in outcomes.items() if not o.skipped]
    recycle = Recycle(**reply["recycle"]) if reply.get("recycle") else None
    return CaseOutcome(task, reply["status"], float(reply["seconds"]), graph, values, result, ran,
                       dict(reply.get("skipped") or {}), reply.get("error", ""), worker, restarts, recycle)


# ----- the driver side -------------------------------------------------------------------------------------
@dataclass
class _Slot:
    """One actor place: the live actor handle (None between actors) and what the driver knows of it."""

    name: str
    health: WorkerHealth
    actor: Any = None
    info: dict[str, Any] | None = None
    lost: int = 0  # actors of this slot that died
    base_restarts: int = 0  # worker restarts of this slot's earlier actors, plus one per lost actor


class RayEngine:
    """The Engine protocol of fuzzer.campaign.loop on Ray actors (see the module docstring)."""

    name = "ray"

    def __init__(self, actors: int, scheduler: Scheduler, gaps: SharedGapBook, settings: RunSettings,
                 limits: Limits, log_dir: Path, env: dict[str, str] | None = None, handler: str = JOB_HANDLER,
                 address: str | None = None, ray_dir: Path | None = None, gpus_per_actor: float | None = None,
                 start_timeout_s: float = ACTOR_START_TIMEOUT_S, recycle: RecyclePolicy | None = None,
                 known: KnownSignatures | None = None) -> None:
        if actors < 1:
            raise ValueError(f"the Ray engine needs at least one actor, not {actors}")
        self.scheduler = scheduler
        self.gaps = gaps
        self.settings = settings
        self.limits = limits
        self.log_dir = Path(log_dir).resolve()
        self.env = dict(env or {})
        self.handler = handler
        self.address = address
        self.ray_dir = Path(ray_dir).resolve() if ray_dir is not None else self.log_dir.parent / "ray"
        self.gpus = gpus_per_actor  # None: decided from the pipelines and the cluster's GPUs
        self.start_timeout_s = start_timeout_s
        self.recycle = recycle or RecyclePolicy()
        self.known = known
        self.boot_error = ""
        self._slots = [_Slot(f"ray{i}", WorkerHealth(f"ray{i}")) for i in range(actors)]
        self._queue = OutcomeQueue()
        self._stopping = threading.Event()
        self._abandoned = threading.Event()
        self._started = False
        self._threads: list[threading.Thread] = []
        self._owns_ray = False
        self._tmp_ray_dir: str | None = None
        self._node = ""
        self._actor_cls: Any = None
        self._saved_env: dict[str, str | None] = {}

    # ----- Engine protocol -------------------------------------------------------------------------------
    def start(self, claim: Callable[[], CaseTask | None]) -> None:
        """Start (or join) Ray here, on the main thread (Ray 2.60 loses its GCS when initialised on another
        thread), then one driver thread per actor; placing the actors and starting their workers is theirs."""
        try:
            self._init_ray()
            self._actor_cls = self._actor_class()
        except Exception as e:  # noqa: BLE001 - Ray could not start or join: every slot fails, the campaign stops
            self.boot_error = f"ray: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
            for s in self._slots:
                s.health.state = "failed"
                s.health.error = self.boot_error
            self._started = True
            return
        for s in self._slots:
            t = threading.Thread(target=self._drive, args=(s, claim), name=f"driver-{s.name}", daemon=True)
            self._threads.append(t)
            t.start()
        self._started = True

    def results(self, timeout_s: float) -> list[CaseOutcome]:
        return self._queue.results(timeout_s)

    def finished(self) -> bool:
        return self._started and not any(t.is_alive() for t in self._threads)

    def health(self) -> list[WorkerHealth]:
        for s in self._slots:
            if s.info is not None:
                s.health.restarts = s.base_restarts + int(s.info.get("restarts", 0))
                s.health.pid = s.info.get("worker_pid") if self._local(s) else None
        return [WorkerHealth(**s.health.__dict__) for s in self._slots]

    def worker_pids(self) -> list[int | None]:
        """Actor processes and their workers on this machine (others' memory cannot be read from /proc here)."""
        pids: list[int | None] = []
        for s in self._slots:
            if s.info is not None and s.actor is not None and self._local(s):
                pids += [s.info.get("pid"), s.info.get("worker_pid")]
        return pids

    def actor_pids(self) -> dict[str, int]:
        """Actor name -> process id, for the live actors on this machine."""
        return {s.name: int(s.info["pid"]) for s in self._slots
                if s.info is not None and s.actor is not None and self._local(s)}

    @property
    def lost_actors(self) -> int:
        """Actors that died during the campaign (each was replaced; its case in flight became a harness error)."""
        return sum(s.lost for s in self._slots)

    def stop(self, abandon: bool) -> None:
        """No new cases; with `abandon`, the cases in flight are dropped too (each actor kills its worker)."""
        self._stopping.set()
        if abandon and not self._abandoned.is_set():
            self._abandoned.set()
            for s in self._slots:
                if s.actor is not None:
                    with contextlib.suppress(Exception):
                        s.actor.abandon.remote()

    def close(self) -> None:
        """Wait for the driver threads, close every actor's worker, and leave Ray (stopping it if ours)."""
        end = time.monotonic() + 30.0 + (ABANDON_GRACE_S if self._abandoned.is_set() else 0.0)
        for t in self._threads:
            while t.is_alive() and time.monotonic() < end:
                t.join(0.5)
        if not self._owns_ray and not self._connected():
            return
        import ray

        closing = [(s, s.actor.close.remote()) for s in self._slots if s.actor is not None]
        for s, ref in closing:
            with contextlib.suppress(Exception):
                ray.get(ref, timeout=CLOSE_TIMEOUT_S)
            self._kill_actor(s)
        for s in self._slots:
            if s.health.state not in ("failed",):
                s.health.state = "stopped"
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False
            self._restore_env()
        if self._tmp_ray_dir is not None:
            import shutil

            shutil.rmtree(self._tmp_ray_dir, ignore_errors=True)

    # ----- booting ---------------------------------------------------------------------------------------
    def _connected(self) -> bool:
        return "ray" in sys.modules and sys.modules["ray"].is_initialized()

    def _init_ray(self) -> None:
        import ray

        if ray.is_initialized():
            self._node = ray.get_runtime_context().get_node_id()
            return
        self._saved_env = {k: os.environ.get(k) for k in RAY_ENV}
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray's own switch: nothing leaves the machine
        common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                  "namespace": "parallax"}
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if self.address:  # the cluster's settings (RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH, ...) are the caller's
                ray.init(address=self.address, **common)
            else:
                temp = self._temp_dir()
                self._private_token(Path(temp))
                ray.init(num_cpus=max(len(self._slots), len(os.sched_getaffinity(0))), _temp_dir=temp,
                         object_store_memory=OBJECT_STORE_BYTES, **common)
        finally:  # ray.init makes SIGTERM exit the process; the campaign's handlers stop it cleanly instead
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        self._owns_ray = True
        self._node = ray.get_runtime_context().get_node_id()

    @staticmethod
    def _private_token(folder: Path) -> None:
        """Ray 2.60 secures a new local instance with a token it would otherwise write to ~/.ray/auth_token:
        give it one in its temp folder instead (unless the caller configured authentication already)."""
        if any(os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
            return
        if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
            return
        token = folder / "auth_token"
        if not token.exists():
            fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)

    def _restore_env(self) -> None:
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def _temp_dir(self) -> str:
        """Ray's temp/log/spill folder: under the work dir, unless its socket paths would be too long there."""
        if len(str(self.ray_dir)) <= MAX_SOCKET_DIR:
            self.ray_dir.mkdir(parents=True, exist_ok=True)
            return str(self.ray_dir)
        self._tmp_ray_dir = tempfile.mkdtemp(prefix="parallax-ray-")
        return self._tmp_ray_dir

    def _actor_class(self) -> Any:
        import ray

        from fuzzer.devices import discover_devices, gpus_per_actor

        gpus = self.gpus
        if gpus is None:
            cluster = float(ray.cluster_resources().get("GPU", 0.0))
            cuda = [p for p in self.scheduler.pipelines if p.device == "cuda"]
            gpus = gpus_per_actor(self.scheduler.pipelines, cluster, len(self._slots),
                                  discover_devices() if cuda and cluster else None)
        self.gpus = gpus
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return ray.remote(CaseActor).options(num_cpus=1, num_gpus=gpus, max_concurrency=2, max_restarts=0,
                                             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})

    # ----- one driver thread per actor ------------------------------------------------------------------
    def _local(self, s: _Slot) -> bool:
        return s.info is not None and s.info.get("node") == self._node

    def _start_actor(self, s: _Slot) -> bool:
        """Place and start this slot's actor if it has none; False after MAX_START_FAILURES tries in a row."""
        import ray

        if s.actor is not None:
            return True
        for _ in range(MAX_START_FAILURES):
            if self._stopping.is_set():
                return False
            actor = self._actor_cls.remote(s.name, [p.name for p in self.scheduler.pipelines],
                                           asdict(self.settings), asdict(self.limits), str(self.log_dir), self.env,
                                           self.handler, asdict(self.recycle))
            s.actor = actor
            try:
                info = ray.get(actor.start.remote(), timeout=self.start_timeout_s)
            except ray.exceptions.GetTimeoutError:
                s.health.error = (f"actor not started within {self.start_timeout_s:.0f} s (cluster resources: "
                                  f"{ray.available_resources()})")
            except Exception as e:  # noqa: BLE001 - a worker that cannot start: counted, retried, then given up
                s.health.error = (str(e).strip().splitlines() or [type(e).__name__])[-1][:300]
            else:
                s.info = info
                s.health.error = ""
                if s.health.state == "starting":
                    s.health.state = "idle"
                return True
            self._kill_actor(s)
        return False

    def _kill_actor(self, s: _Slot) -> None:
        import ray

        if s.actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(s.actor)
        s.actor = None

    def _drive(self, s: _Slot, claim: Callable[[], CaseTask | None]) -> None:
        while not self._stopping.is_set():
            if not self._start_actor(s):
                if not self._stopping.is_set():
                    s.health.state = "failed"  # before claiming: no case index is used up by an actor that can't start
                break
            task = claim()
            if task is None:
                break
            s.health.case = task.idx
            s.health.state = "running"
            outcome = self._run_one(s, task)
            if outcome is None:  # abandoned
                break
            s.health.cases += 1
            s.health.state = "idle"
            s.health.case = None
            self._queue.put(outcome)
        if s.health.state != "failed":
            s.health.state = "stopped"
        s.health.case = None

    def _run_one(self, s: _Slot, task: CaseTask) -> CaseOutcome | None:
        """Case `task` on this slot's actor; None when abandoned."""
        import ray

        t0 = time.perf_counter()
        rules = [asdict(r) for r in self.scheduler.rules]
        known = self.known.snapshot() if self.known is not None else None
        ref = s.actor.run.remote(task.idx, task.seed, task.nodes, rules, self._gap_rows(), known)
        try:
            reply = self._wait(s, ref)
        except ray.exceptions.RayActorError as e:
            return None if self._abandoned.is_set() else self._actor_died(s, task, t0, e)
        except Exception as e:  # noqa: BLE001 - the actor's method raised (a harness bug): recorded, campaign goes on
            if self._abandoned.is_set():
                return None
            why = (str(e).strip().splitlines() or [type(e).__name__])[-1][:2000]
            return CaseOutcome(task, "harness_error", time.perf_counter() - t0, error=f"ray: {why}", worker=s.name,
                               restarts=s.base_restarts + int((s.info or {}).get("restarts", 0)))
        if reply is None or reply["status"] == "abandoned" or self._abandoned.is_set():
            return None
        s.info = reply["info"]
        outcome = outcome_from_reply(task, reply, s.name, s.base_restarts + int(reply["info"]["restarts"]))
        if outcome.result is not None and outcome.graph is not None:
            for gap in outcome.result.verdict.gaps:  # the driver's book is the one the campaign stores
                self.gaps.record(gap, outcome.graph)
        return outcome

    def _wait(self, s: _Slot, ref: Any) -> dict[str, Any] | None:
        """The actor's reply; None when the case was abandoned and the actor did not give it up in time (the
        actor is then killed: it is stuck outside its worker, e.g. generating)."""
        import ray

        abandoned_at: float | None = None
        while True:
            done, _ = ray.wait([ref], timeout=WAIT_SLICE_S)
            if done:
                return ray.get(ref)
            if self._abandoned.is_set():
                abandoned_at = abandoned_at or time.monotonic()
                if time.monotonic() - abandoned_at > ABANDON_GRACE_S:
                    self._kill_actor(s)
                    return None

    def _gap_rows(self) -> list[dict[str, Any]]:
        """The driver's gap entries in the form SharedGapBook.load reads (the store's gaps rows)."""
        rows = []
        for sig in list(self.gaps.entries):
            snap = self.gaps.snapshot(sig)
            if snap is not None:
                rows.append(dict(snap, signature=sig))
        return rows

    def _actor_died(self, s: _Slot, task: CaseTask, t0: float, e: Exception) -> CaseOutcome:
        """The actor process is gone with the case in flight: a harness error, and a fresh actor next time."""
        s.lost += 1
        s.base_restarts += 1 + int((s.info or {}).get("restarts", 0))
        s.actor = None
        s.info = None
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:500]
        return CaseOutcome(task, "harness_error", time.perf_counter() - t0,
                           error=f"ray actor {s.name} died with the case in flight: {why}", worker=s.name,
                           restarts=s.base_restarts)
