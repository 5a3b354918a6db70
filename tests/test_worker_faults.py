"""The worker pool against real crashing processes: every fault becomes a classified JobResult, the
worker comes back, and the next job on the same Worker runs normally. Frames are checked on their own."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from fuzzer.workers.frames import FrameDecoder, FrameError, encode_frame, read_frame, write_frame
from fuzzer.workers.main import THREAD_VARIABLES
from fuzzer.workers.pool import Event, JobResult, Limits, Worker, WorkerPool, WorkerStartupError, classify_exit

HANDLER = "tests.fault_job:run_job"
FAST = Limits(stage_timeout_s=1.0, memory_mb=400, startup_timeout_s=30.0)


@pytest.fixture
def worker(tmp_path: Path):
    with Worker(HANDLER, FAST, tmp_path, name="t") as w:
        yield w


def echo_ok(w: Worker, blobs: dict[str, bytes]) -> None:
    """A plain job on `w` completes and returns every blob reversed (the handler really ran)."""
    events: list[Event] = []
    result = w.run({"fault": "echo"}, blobs, events.append)
    assert result.completed and result.crash_kind == "" and result.error is None, result
    (reply,) = [e for e in events if e.event == "result"]
    assert reply.blobs == {name: data[::-1] for name, data in blobs.items()}


def gone(pid: int) -> bool:
    """The process no longer runs (absent, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X")


def wait_gone(pid: int, timeout_s: float = 3.0) -> bool:
    end = time.monotonic() + timeout_s
    while not gone(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


# ----- frames -----

def sample_frame() -> tuple[dict, dict[str, bytes]]:
    return {"event": "x", "n": 3, "text": "ünïcode", "nested": {"a": [1, 2.5, None]}}, \
        {"model.onnx": bytes(range(256)) * 3, "empty": b"", "größe": b"\x00\x01"}


def test_frame_round_trip_through_a_file_and_the_incremental_decoder():
    header, blobs = sample_frame()
    buf = io.BytesIO()
    write_frame(buf, header, blobs)
    write_frame(buf, {"event": "done"})
    raw = buf.getvalue()
    stream = io.BytesIO(raw)
    assert read_frame(stream) == (header, blobs)
    assert read_frame(stream) == ({"event": "done"}, {})
    with pytest.raises(EOFError):
        read_frame(stream)
    decoder = FrameDecoder()
    frames = [f for i in range(len(raw)) for f in decoder.feed(raw[i:i + 1])]
    assert frames == [(header, blobs), ({"event": "done"}, {})]
    assert decoder.pending_bytes == 0


def test_truncated_frames_are_rejected_at_every_cut():
    raw = b"".join(bytes(p) for p in encode_frame(*sample_frame()))
    for cut in range(1, len(raw)):
        with pytest.raises(FrameError):
            read_frame(io.BytesIO(raw[:cut]))
    with pytest.raises(EOFError):
        read_frame(io.BytesIO(b""))


def test_corrupt_frames_are_rejected():
    raw = bytearray(b"".join(bytes(p) for p in encode_frame({"event": "x"}, {"b": b"data"})))
    with pytest.raises(FrameError, match="magic"):
        read_frame(io.BytesIO(b"garbage printed to stdout\n" + raw))
    with pytest.raises(FrameError, match="magic"):
        FrameDecoder().feed(b"Hello from a library\n")
    not_object = b"".join(bytes(p) for p in encode_frame({"event": "x"}))
    bad = not_object.replace(b'{"event":"x"}', b'["event","x"]')
    with pytest.raises(FrameError, match="JSON object"):
        read_frame(io.BytesIO(bad))
    raw[12 + 4 + 2] ^= 0xFF  # inside the JSON header
    with pytest.raises(FrameError, match="JSON"):
        read_frame(io.BytesIO(bytes(raw)))


def test_encode_refuses_what_json_or_bytes_cannot_carry():
    with pytest.raises(TypeError):
        encode_frame({"event": "x"}, {"a": "not bytes"})
    with pytest.raises(ValueError):
        encode_frame({"event": "x", "v": float("nan")})


# ----- crash classification -----

def test_classify_exit_by_signal_and_code():
    assert classify_exit(-signal.SIGSEGV)[0] == "segfault"
    assert classify_exit(-signal.SIGBUS)[0] == "segfault"
    assert classify_exit(-signal.SIGABRT)[0] == "abort"
    assert classify_exit(-signal.SIGKILL)[0] == "oom"
    kind, detail = classify_exit(7)
    assert kind == "abort" and "7" in detail


# ----- real workers -----

@pytest.mark.parametrize("fault, kind", [("segfault", "segfault"), ("abort", "abort"), ("hang", "timeout"),
                                         ("oom", "oom"), ("sigkill", "oom"), ("exit", "abort")])
def test_fault_is_classified_attributed_and_the_worker_recovers(worker: Worker, fault: str, kind: str):
    echo_ok(worker, {"warm": b"up"})
    pid = worker.pid
    result = worker.run({"fault": fault, "pipeline": "torch>onnx:dynamo>tvm:O3:llvm", "stage": "compile"}, {})
    assert not result.completed
    assert result.crash_kind == kind, result.detail
    assert result.last_stage is not None
    assert (result.last_stage["pipeline"], result.last_stage["stage"]) == ("torch>onnx:dynamo>tvm:O3:llvm", "compile")
    assert "compile" in result.detail
    assert wait_gone(pid)
    echo_ok(worker, {"x": os.urandom(1000), "y": b"after the crash"})
    assert worker.restarts == 1 and worker.pid != pid


def test_crash_detail_carries_the_workers_stderr(worker: Worker):
    result = worker.run({"fault": "segfault", "stage": "run"}, {})
    assert "SIGSEGV" in result.detail
    assert "fault_job.py" in result.detail  # faulthandler's Python stack of the crashing frame


def test_exception_is_an_error_frame_and_the_worker_stays(worker: Worker):
    pid = worker.pid
    events: list[Event] = []
    result = worker.run({"fault": "raise", "pipeline": "tf>tf2onnx>ort:all:cpu", "stage": "export"}, {}, events.append)
    assert result.completed and result.crash_kind == ""
    assert result.error["exc_type"] == "ValueError" and "export" in result.error["message"]
    assert "fault_job.py" in result.error["traceback"]
    assert result.last_stage["stage"] == "export"
    assert [e.event for e in events] == ["stage", "error"]
    result = worker.run({"fault": "memory_error"}, {})
    assert result.completed and result.error["exc_type"] == "MemoryError"
    echo_ok(worker, {"a": b"still here"})
    assert worker.restarts == 0 and (pid is None or worker.pid == pid)


def test_each_stage_event_restarts_the_deadline(worker: Worker):
    started = time.monotonic()
    result = worker.run({"fault": "stages", "n": 3, "sleep_s": 0.6}, {"b": b"1"})
    assert time.monotonic() - started > FAST.stage_timeout_s  # the job as a whole outlived one stage's limit
    assert result.completed, result.detail
    assert result.last_stage["stage"] == "step2"


def test_stage_event_timeout_overrides_the_default(tmp_path: Path):
    with Worker(HANDLER, Limits(stage_timeout_s=60.0, memory_mb=400), tmp_path) as w:
        started = time.monotonic()
        result = w.run({"fault": "hang", "stage": "import", "timeout_s": 0.3}, {})
        assert result.crash_kind == "timeout" and "0.3 s" in result.detail
        assert time.monotonic() - started < 5.0
        echo_ok(w, {"a": b"b"})


@pytest.mark.parametrize("fault, kind", [("grandchild_hang", "timeout"), ("grandchild_oom", "oom")])
def test_grandchildren_are_counted_and_killed(worker: Worker, fault: str, kind: str):
    events: list[Event] = []
    result = worker.run({"fault": fault, "stage": "compile"}, {}, events.append)
    assert result.crash_kind == kind, result.detail
    (child,) = [e.header["pid"] for e in events if e.event == "grandchild"]
    assert wait_gone(child)
    echo_ok(worker, {"a": b"b"})


def test_stdout_garbage_does_not_corrupt_the_protocol(worker: Worker):
    blobs = {"a": b"payload"}
    events: list[Event] = []
    result = worker.run({"fault": "print"}, blobs, events.append)
    assert result.completed and result.error is None
    assert [e.blobs for e in events if e.event == "result"] == [{"a": b"daolyap"}]
    log = worker.log_path.read_bytes()
    assert b"garbage on sys.stdout" in log and b"raw garbage on fd 1" in log and b"noise on stderr" in log
    echo_ok(worker, blobs)


def test_large_blob_round_trips(worker: Worker):
    big = os.urandom(50 << 20)
    echo_ok(worker, {"big": big, "small": b"s"})


def test_trivial_round_trips_are_cheap(worker: Worker):
    worker.start()
    started = time.perf_counter()
    for i in range(200):
        result = worker.run({"fault": "echo"}, {"i": str(i).encode()})
        assert result.completed
    assert time.perf_counter() - started < 2.0


def test_worker_environment_and_thread_pins(tmp_path: Path):
    with Worker(HANDLER, FAST, tmp_path, env={"PARALLAX_TEST_CACHE": str(tmp_path / "cache")}) as w:
        events: list[Event] = []
        w.run({"fault": "env", "names": ["PARALLAX_TEST_CACHE", *THREAD_VARIABLES]}, {}, events.append)
        (env,) = [e.header for e in events if e.event == "env"]
        assert env["PARALLAX_TEST_CACHE"] == str(tmp_path / "cache")
        assert all(env[name] == "1" for name in THREAD_VARIABLES)


def test_worker_that_died_while_idle_is_replaced_without_blame(worker: Worker):
    worker.start()
    pid = worker.pid
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 3.0  # until the kernel reports it exited (all its threads gone), unreaped
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None and time.monotonic() < end:
        time.sleep(0.01)
    echo_ok(worker, {"a": b"b"})
    assert worker.restarts == 1


def test_a_failing_callback_abandons_the_job_but_not_the_worker(worker: Worker):
    def explode(event: Event) -> None:
        raise KeyError("caller bug")

    with pytest.raises(KeyError):
        worker.run({"fault": "echo"}, {"a": b"b"}, explode)
    echo_ok(worker, {"a": b"b"})


def test_bad_handler_is_a_startup_error(tmp_path: Path):
    with Worker("tests.fault_job:no_such_function", FAST, tmp_path) as w:
        with pytest.raises(WorkerStartupError, match="no_such_function"):
            w.run({"fault": "echo"}, {})


def test_close_is_idempotent_and_ends_the_process(tmp_path: Path):
    w = Worker(HANDLER, FAST, tmp_path)
    w.start()
    pid = w.pid
    w.close()
    w.close()
    assert wait_gone(pid)
    with pytest.raises(RuntimeError, match="closed"):
        w.run({"fault": "echo"}, {})


def test_pool_runs_jobs_from_threads(tmp_path: Path):
    results: dict[str, JobResult] = {}
    with WorkerPool(2, HANDLER, FAST, tmp_path) as pool:
        def drive(w: Worker, fault: str) -> None:
            results[w.name] = w.run({"fault": fault, "stage": "run"}, {})

        threads = [threading.Thread(target=drive, args=(w, f)) for w, f in zip(pool.workers, ["segfault", "echo"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results["w0"].crash_kind == "segfault" and results["w1"].completed
        assert len({w.pid for w in pool.workers}) == 2 or pool.workers[0].pid is None
        assert {p.name for p in tmp_path.iterdir()} == {"worker-w0.log", "worker-w1.log"}


def test_recycling_starts_a_fresh_process_that_is_not_counted_as_a_crash(worker: Worker):
    echo_ok(worker, {"a": b"before"})
    pid, rss = worker.pid, worker.resident_mb()
    assert rss > 0
    worker.recycle()
    assert worker.resident_mb() == 0.0
    echo_ok(worker, {"a": b"after"})
    assert worker.pid != pid
    assert worker.recycles == 1 and worker.restarts == 0
