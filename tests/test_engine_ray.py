"""The Ray engine for real: a Ray head on 127.0.0.1, two actors, a short campaign into a store. Findings arrive,
counts stay consistent, a worker that segfaults costs no actor, and an actor killed mid-case costs only that case."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzzer.campaign.engine_ray import RayEngine
from fuzzer.campaign.loop import Campaign, CampaignSettings
from fuzzer.campaign.scheduler import Scheduler, SharedGapBook
from fuzzer.campaign.store import DB_NAME, EVENTS_NAME, EventLog, Store
from fuzzer.case.runner import RunSettings
from fuzzer.targets.registry import resolve
from fuzzer.workers.pool import Limits
from fuzzer.workers.workdir import prepare, worker_env
from tests.test_campaign import snapshot

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
PIPES = ["torch>onnx:torchscript>ort:all:cpu", "torch>onnx:torchscript>onnxref"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """`ray start --head --block` in its own session, stopped by signalling that session only (never `ray stop`,
    which would take down every Ray instance of the user on the machine). Temp, logs, spill and the cluster's
    authentication token under .work/ (the driver is given the same token), nothing in ~/.ray."""
    (REPO / ".work").mkdir(exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="ray", dir=REPO / ".work"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    log = temp / "head.log"
    token = temp / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray would otherwise rewrite 127.0.0.1 into this machine's outward
    # address when the driver connects; everything here stays on the loopback interface
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    monkeypatch = pytest.MonkeyPatch()  # one head for the module: a driver keeps the first cluster's auth token
    for k, v in auth.items():
        monkeypatch.setenv(k, v)
    with open(log, "wb") as out:
        head = subprocess.Popen([str(RAY), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                                 "--num-cpus=2", f"--temp-dir={temp}", "--disable-usage-stats",
                                 "--include-dashboard=false", f"--object-store-memory={256 << 20}", "--block"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, **auth))
    try:
        deadline = time.monotonic() + 180
        while b"Ray runtime started" not in log.read_bytes():
            assert head.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the Ray head did not start in 180 s"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        with_signal(head, signal.SIGTERM, 30) or with_signal(head, signal.SIGKILL, 10)
        shutil.rmtree(temp, ignore_errors=True)
        monkeypatch.undo()


def with_signal(p: subprocess.Popen, sig: int, wait_s: float) -> bool:
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass
    try:
        p.wait(wait_s)
        return True
    except subprocess.TimeoutExpired:
        return False


def kill_actor_mid_case(engine: RayEngine, marker: Path, done: threading.Event, killed: dict) -> None:
    """After the worker fault fired, SIGKILL an actor (and its worker) in the middle of a case claimed after that
    (so the case with the fault, which may still be running when the marker appears, is not the one lost)."""
    last_before: int | None = None
    while not done.is_set():
        health = engine.health()
        if last_before is None:
            if marker.exists():
                last_before = max((w.case for w in health if w.case is not None), default=-1)
        else:
            for w in health:
                pid = engine.actor_pids().get(w.name)
                if w.state == "running" and w.case is not None and w.case > last_before and pid is not None:
                    killed.update(name=w.name, actor=pid, case=w.case)
                    os.kill(pid, signal.SIGKILL)
                    if w.pid:
                        try:
                            os.killpg(w.pid, signal.SIGKILL)  # its worker is in a session of its own
                        except ProcessLookupError:
                            pass
                    return
        time.sleep(0.05)


@pytest.mark.slow
def test_ray_campaign(tmp_path: Path, ray_head: str) -> None:
    out, work = tmp_path / "out", prepare(tmp_path / "work")
    marker = tmp_path / "fired"
    pipelines = resolve(PIPES)
    store = Store.create(out, 21, 4, {"pipelines": PIPES})
    scheduler, gaps = Scheduler(pipelines), SharedGapBook()
    env = dict(worker_env(work), FAULT_INJECTION_SPEC=f"{PIPES[0]}|compile|segfault|{marker}")
    engine = RayEngine(2, scheduler, gaps, RunSettings(repeats=2, stage_timeout_s=60), Limits(stage_timeout_s=60),
                       work / "logs", env, handler="tests.fault_pipeline:run_job", address=ray_head)
    events = EventLog(out / EVENTS_NAME)
    campaign = Campaign(store, engine, scheduler, gaps, events, CampaignSettings(None, 6, 2))
    done, killed = threading.Event(), {}
    killer = threading.Thread(target=kill_actor_mid_case, args=(engine, marker, done, killed), daemon=True)
    killer.start()
    try:
        summary = campaign.run()
    finally:
        done.set()
        events.close()
        store.close()
    assert summary.reason == "max_cases", engine.boot_error or [w.error for w in engine.health()]
    assert marker.exists() and killed, "the worker fault fired and an actor was killed mid-case"
    state = snapshot(out, swept=True)  # every finding row has its files, counts agree, no gaps in the indices
    assert len(state["cases"]) == 6
    con = sqlite3.connect(out / DB_NAME)
    try:
        statuses = con.execute("SELECT status, error FROM cases ORDER BY idx").fetchall()
        crash = con.execute("SELECT dir, pipelines_json FROM findings WHERE symptom = 'crash'").fetchall()
        run = con.execute("SELECT engine, workers, stop_reason FROM runs").fetchall()
    finally:
        con.close()
    assert run == [("ray", 2, "max_cases")]
    lost = [e for s, e in statuses if s == "harness_error"]
    assert len(lost) == 1 and f"{killed['name']} died" in lost[0], statuses
    assert engine.lost_actors == 1
    # the segfault in ORT's compile stage is a crash finding, stored with the exported model; no actor was lost to it
    ours = [folder for folder, pipes in crash if PIPES[0] in json.loads(pipes) and folder]
    assert ours, (crash, statuses)
    folder = ours[0]
    info = json.loads((out / folder / "finding.json").read_text())
    assert info["kind"] == "segfault" and info["stage"] == "compile"
    assert (out / folder / "model.onnx_torchscript.onnx").stat().st_size > 0
    log = [json.loads(x) for x in (out / EVENTS_NAME).read_text().splitlines()]
    restarts = [e for e in log if e["event"] == "worker" and e["kind"] == "restart"]
    assert restarts, "the segfaulting worker was restarted inside its actor"
    by_worker = {e["worker"] for e in log if e["event"] == "case"}
    assert by_worker <= {"ray0", "ray1"}
    health = {w.name: w for w in engine.health()}
    assert all(w.state != "failed" for w in health.values()) and sum(w.cases for w in health.values()) == 6
    assert health[killed["name"]].restarts >= 1  # the lost actor counts as a restart of its slot
    resume_then_abandon(out, work, ray_head, state)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def resume_then_abandon(out: Path, work: Path, address: str, before: dict) -> None:
    """--resume on Ray, told to stop and abandon its cases once both actors are running one (what time-up and
    SIGTERM do): the run ends promptly, the store stays consistent, no actor or worker outlives the campaign."""
    store = Store.open(out)
    pipelines = resolve(PIPES)
    scheduler, gaps = Scheduler(pipelines), SharedGapBook()
    scheduler.load(store.skip_rows())
    gaps.load(store.gap_rows())
    engine = RayEngine(2, scheduler, gaps, RunSettings(repeats=2, stage_timeout_s=60), Limits(stage_timeout_s=60),
                       work / "logs", worker_env(work), address=address)
    events = EventLog(out / EVENTS_NAME)
    campaign = Campaign(store, engine, scheduler, gaps, events, CampaignSettings(None, None, 2, True))
    seen: set[int] = set()
    done = threading.Event()
    stopped: dict[str, float] = {}

    def watch() -> None:
        deadline = time.monotonic() + 150
        while not done.is_set():
            seen.update(p for p in engine.worker_pids() if p)
            busy = [w for w in engine.health() if w.state == "running"]
            if not stopped and (len(busy) == 2 or time.monotonic() > deadline):
                stopped["at"] = time.monotonic()
                campaign.request_stop("abandon-test" if len(busy) == 2 else "never busy", abandon=True)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        summary = campaign.run()
    finally:
        done.set()
        events.close()
        store.close()
    assert summary.reason == "abandon-test" and time.monotonic() - stopped["at"] < 30
    after = snapshot(out, swept=True)
    assert after["cases"] >= before["cases"] and after["findings"] >= before["findings"]
    deadline = time.monotonic() + 15  # ray.kill is asynchronous: the raylet ends the actor's process soon after
    while [p for p in seen if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert seen and not [p for p in seen if alive(p)], "actors and workers are gone after the campaign"


@pytest.mark.slow
def test_ray_actor_recycles_a_growing_worker(tmp_path: Path, ray_head: str) -> None:
    """An actor's worker that leaks 300 MiB a case is recycled between cases, as a local driver's is: the recycle
    is a `worker` event in events.jsonl, a row in the store, and a figure in the report."""
    from fuzzer.campaign.engine_parts import RecyclePolicy
    from fuzzer.report.load import load_report
    from fuzzer.report.text import render_text

    out, work = tmp_path / "out", prepare(tmp_path / "work")
    pipes = PIPES[:1]
    store = Store.create(out, 5, 3, {"pipelines": pipes})
    scheduler, gaps = Scheduler(resolve(pipes)), SharedGapBook()
    engine = RayEngine(1, scheduler, gaps, RunSettings(repeats=2, stage_timeout_s=60), Limits(stage_timeout_s=60),
                       work / "logs", worker_env(work), handler="tests.leaky_job:run_job", address=ray_head,
                       recycle=RecyclePolicy(baseline_cases=1, growth=1.25))
    events = EventLog(out / EVENTS_NAME)
    try:
        summary = Campaign(store, engine, scheduler, gaps, events, CampaignSettings(None, 4, 1)).run()
    finally:
        events.close()
        store.close()
    assert summary.reason == "max_cases", engine.boot_error or [w.error for w in engine.health()]
    log = [json.loads(x) for x in (out / EVENTS_NAME).read_text().splitlines()]
    recycled = [e for e in log if e["event"] == "worker" and e["kind"] == "recycle"]
    assert recycled, "the leaking worker was never recycled"
    assert all(e["rss_mb"] > 1.25 * e["baseline_mb"] for e in recycled)
    assert not [e for e in log if e["event"] == "worker" and e["kind"] == "restart"], "a recycle is not a crash"
    assert [e for e in log if e["event"] == "run_end"][-1]["recycles"] == len(recycled)
    data = load_report(out)
    assert data.runs[-1].recycles == len(recycled)
    assert f"workers recycled for memory: {len(recycled)}" in render_text(data)
