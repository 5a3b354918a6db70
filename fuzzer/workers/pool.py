"""Persistent, isolated worker processes: a crash, hang or memory blow-up of a system under test
becomes a JobResult for the case in flight, never the death of the campaign.

Each Worker is a fresh interpreter (`python -m fuzzer.workers.main HANDLER`, spawned, never forked:
torch hangs after fork() once it ran a parallel op) that imports its heavy libraries once and then
runs jobs. The parent talks to it in frames (fuzzer/workers/frames.py) over its stdin/stdout pipes and, while
waiting, enforces a per-stage deadline and a resident-memory limit on the worker's process tree. A
worker that dies is classified (segfault, abort, timeout, oom), attributed to the last stage it
announced, and respawned on the next job.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from fuzzer.workers.frames import FrameDecoder, FrameError, encode_frame

REPO_ROOT = Path(__file__).resolve().parents[2]
POLL_S = 0.02  # how often the memory limit and the worker's liveness are checked while waiting
TREE_SCAN_S = 0.25  # how often the worker's descendants are re-listed (a /proc scan costs a few ms)
EXIT_GRACE_S = 2.0  # how long a worker that closed its pipe or was asked to exit may take to go
TRACEBACK_GRACE_S = 0.1  # after SIGUSR1 (faulthandler dumps the stacks), before SIGKILL on a timeout
LOG_CAP_BYTES = 64 << 20  # a worker's stderr log is truncated between jobs beyond this size
TAIL_LINES = 40
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20

CRASH_KINDS = ("segfault", "abort", "timeout", "oom")
_SIGNAL_KINDS = {signal.SIGSEGV: "segfault", signal.SIGBUS: "segfault", signal.SIGILL: "segfault",
                 signal.SIGFPE: "segfault", signal.SIGABRT: "abort", signal.SIGKILL: "oom"}


@dataclass
class Limits:
    stage_timeout_s: float = 60.0  # per stage (reset by each "stage" event)
    memory_mb: int = 8192  # resident set of the worker and its descendants; killed above it
    startup_timeout_s: float = 120.0  # importing heavy libraries the first time


@dataclass
class Event:
    """One frame from the worker; `header` is the frame header without its "event" key."""

    event: str
    header: dict
    blobs: dict[str, bytes] = field(default_factory=dict)


@dataclass
class JobResult:
    completed: bool  # the handler returned (possibly with an "error" frame)
    crash_kind: str = ""  # "" | "segfault" | "abort" | "timeout" | "oom"
    last_stage: dict | None = None  # header of the last "stage" event of this job (pipeline, stage, timeout_s)
    detail: str = ""  # why the worker died, plus the tail of its stderr log
    error: dict | None = None  # the "error" frame header (exc_type, message, traceback) when the handler raised


class WorkerStartupError(RuntimeError):
    """The worker could not start (bad handler, import crash, startup timeout): an environment problem,
    not a finding, so it is raised rather than attributed to a test case."""


def classify_exit(returncode: int) -> tuple[str, str]:
    """(crash kind, detail) for a worker that ended on its own with this Popen return code."""
    if returncode < 0:
        try:
            sig: signal.Signals | None = signal.Signals(-returncode)
        except ValueError:
            sig = None
        name = sig.name if sig else f"signal {-returncode}"
        if sig == signal.SIGKILL:
            return "oom", "killed by SIGKILL not sent by the pool (likely the kernel OOM killer)"
        return _SIGNAL_KINDS.get(sig, "abort"), f"killed by {name}"
    return "abort", f"exited with code {returncode}"


def _proc_stat(pid: str) -> tuple[int, int] | None:
    """(ppid, session) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    return int(fields[1]), int(fields[3])


def descendants(pid: int) -> list[int]:
    """Processes below `pid`: its child tree, plus anything left in its session (orphaned grandchildren
    are re-parented to init but keep the session the worker was started with)."""
    children: dict[int, list[int]] = {}
    family: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(entry.name)
        if stat is None:
            continue
        child = int(entry.name)
        children.setdefault(stat[0], []).append(child)
        if stat[1] == pid and child != pid:
            family.add(child)
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in family and child != pid:
                family.add(child)
                stack.append(child)
    return sorted(family)


def resident_bytes(pids: list[int]) -> int:
    """Sum of the resident sets of these processes (those already gone count zero)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_BYTES
        except (OSError, IndexError, ValueError):
            continue
    return total


class _MemoryWatch:
    """Resident memory of a worker's process tree; the tree is re-listed only every TREE_SCAN_S."""

    def __init__(self, pid: int, limit_mb: int) -> None:
        self.pid = pid
        self.limit_bytes = limit_mb * MIB
        self.family = [pid]
        self.next_scan = time.monotonic() + TREE_SCAN_S

    def over_limit(self, now: float) -> int:
        """The tree's RSS in bytes if it exceeds the limit, else 0."""
        if now >= self.next_scan:
            self.family = [self.pid, *descendants(self.pid)]
            self.next_scan = now + TREE_SCAN_S
        rss = resident_bytes(self.family)
        return rss if rss > self.limit_bytes else 0


def _where(stage: dict | None) -> str:
    if not stage:
        return "before any stage event"
    return f"in stage {stage.get('stage', '?')} of {stage.get('pipeline', '?')}"


class _Crashed(Exception):
    """Internal: the worker died or was killed; carries the classification."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class Worker:
    """One persistent worker process running `handler` ("package.module:function") jobs one at a time."""

    def __init__(self, handler: str, limits: Limits, log_dir: Path, env: dict[str, str] | None = None,
                 name: str = "w0") -> None:
        self.handler = handler
        self.limits = limits
        self.name = name
        self.log_path = Path(log_dir) / f"worker-{name}.log"
        self.env = dict(env or {})
        self._proc: subprocess.Popen | None = None
        self._decoder = FrameDecoder()
        self._poll_in: select.poll | None = None
        self._poll_out: select.poll | None = None
        self._starts = 0
        self.recycles = 0
        self._closed = False
        self._busy = threading.Lock()
        self._log_offset = 0
        self._deadline = 0.0
        self._deadline_what = ""
        self._watch: _MemoryWatch | None = None

    # ----- public -----

    @property
    def restarts(self) -> int:
        """How many times the worker process was started again after its first start (recycling aside)."""
        return max(0, self._starts - 1 - self.recycles)

    def resident_mb(self) -> float:
        """Resident memory of the worker and its descendants now (0 when it is not running)."""
        if self._proc is None or self._exited():
            return 0.0
        return resident_bytes([self._proc.pid, *descendants(self._proc.pid)]) / MIB

    def recycle(self) -> None:
        """End the process between jobs; the next job starts a fresh one. Long campaigns do this when a
        worker's memory has crept up (libraries' caches, allocator fragmentation): a fresh interpreter is
        the only reliable way to give that memory back."""
        if self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._write_all(encode_frame({"op": "exit"}), time.monotonic() + EXIT_GRACE_S)
        self._await_exit(EXIT_GRACE_S)
        self._kill_group()
        self._reap()
        self.recycles += 1

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the worker if it is not running and wait for its "ready" frame (idempotent)."""
        if self._closed:
            raise RuntimeError(f"worker {self.name} is closed")
        if self._proc is not None:
            if not self._exited():
                return
            self._kill_group()  # it died while idle (nothing to attribute): clear it away and start afresh
            self._reap()
        self._spawn()
        self._set_deadline(self.limits.startup_timeout_s, "while starting up (importing the handler)")
        try:
            self._pump(lambda header, blobs: header.get("event") == "ready", None)
        except _Crashed as crash:
            raise WorkerStartupError(f"worker {self.name} ({self.handler}) failed to start: {crash.kind}: "
                                     f"{crash.detail}") from None

    def run(self, request: dict, blobs: dict[str, bytes] | None = None,
            on_event: Callable[[Event], None] | None = None) -> JobResult:
        """Run one job; return when the handler finished ("done") or the worker died or was killed.

        Every frame but ready/done goes to `on_event` (stage and error frames included). If
        `on_event` raises, the worker is killed (its job is abandoned) and the exception propagates.
        """
        if request.get("op") == "exit":
            raise ValueError('{"op": "exit"} is reserved for close()')
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"worker {self.name} is already running a job")
        try:
            self.start()
            self._rotate_log()
            state: dict = {"last_stage": None, "error": None}

            def on_frame(header: dict, frame_blobs: dict[str, bytes]) -> bool:
                event = header.pop("event", "")
                if event == "done":
                    return True
                if event == "ready":
                    return False
                if event == "stage":
                    state["last_stage"] = header
                    timeout = header.get("timeout_s")
                    limit = float(timeout) if timeout else self.limits.stage_timeout_s
                    self._set_deadline(limit, _where(header))
                elif event == "error":
                    state["error"] = header
                if on_event is not None:
                    on_event(Event(event, header, frame_blobs))
                return False

            self._set_deadline(self.limits.stage_timeout_s, _where(None))
            try:
                self._send(request, blobs or {})
                self._pump(on_frame, lambda: state["last_stage"])
            except _Crashed as crash:
                return JobResult(False, crash.kind, state["last_stage"], crash.detail, state["error"])
            return JobResult(True, "", state["last_stage"], "", state["error"])
        finally:
            self._busy.release()

    def close(self) -> None:
        """Ask the worker to exit, then kill whatever is left of its process group (idempotent)."""
        self._closed = True
        if self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._write_all(encode_frame({"op": "exit"}), time.monotonic() + EXIT_GRACE_S)
        self._await_exit(EXIT_GRACE_S)
        self._kill_group()
        self._reap()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ----- process lifetime -----

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        with open(self.log_path, "ab") as log:
            log.truncate(0)
            self._proc = subprocess.Popen([sys.executable, "-m", "fuzzer.workers.main", self.handler],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                          env=env, start_new_session=True, bufsize=0, close_fds=True)
        self._starts += 1
        self._log_offset = 0
        self._decoder = FrameDecoder()
        out_fd, in_fd = self._proc.stdout.fileno(), self._proc.stdin.fileno()
        for fd in (out_fd, in_fd):
            os.set_blocking(fd, False)
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, MIB)  # fewer wake-ups for big blobs
        self._poll_in = select.poll()
        self._poll_in.register(out_fd, select.POLLIN)
        self._poll_out = select.poll()
        self._poll_out.register(in_fd, select.POLLOUT)
        self._watch = _MemoryWatch(self._proc.pid, self.limits.memory_mb)

    def _exited(self) -> bool:
        """Whether the worker has ended, without reaping it (its pid keeps naming its process group)."""
        try:
            return os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _await_exit(self, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while not self._exited():
            if time.monotonic() >= end:
                return False
            time.sleep(0.005)
        return True

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def _reap(self) -> int:
        proc, self._proc = self._proc, None
        returncode = proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        self._poll_in = self._poll_out = None
        return returncode

    def _kill(self, kind: str, reason: str) -> _Crashed:
        """Kill the worker's whole process group for a limit it broke."""
        if kind == "timeout" and not self._exited():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGUSR1)  # faulthandler: where it hung, into the log
            time.sleep(TRACEBACK_GRACE_S)
        self._kill_group()
        self._reap()
        return _Crashed(kind, self._with_log_tail(reason))

    def _died(self, where: str, reason: str = "") -> _Crashed:
        """The worker ended (or closed its pipe) on its own: classify how."""
        if not self._await_exit(EXIT_GRACE_S):
            return self._kill("abort", f"closed its protocol pipe without exiting {where}")
        self._kill_group()  # grandchildren it left behind
        kind, how = classify_exit(self._reap())
        return _Crashed(kind, self._with_log_tail(f"{how} {where}" + (f" ({reason})" if reason else "")))

    # ----- I/O -----

    def _set_deadline(self, limit_s: float, where: str) -> None:
        self._deadline = time.monotonic() + limit_s
        self._deadline_what = f"exceeded {limit_s:.1f} s {where}"

    def _write_all(self, parts: list, deadline: float) -> None:
        fd = self._proc.stdin.fileno()
        for part in parts:
            view = memoryview(part).cast("B")
            while view:
                try:
                    view = view[os.write(fd, view[:MIB]):]
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError("worker stopped reading its requests") from None
                    self._poll_out.poll(POLL_S * 1000)

    def _send(self, request: dict, blobs: dict[str, bytes]) -> None:
        parts = encode_frame(request, blobs)  # a bad request raises here, before the worker sees anything
        try:
            self._write_all(parts, self._deadline)
        except BrokenPipeError:
            raise self._died("while receiving its request") from None
        except TimeoutError:
            raise self._kill("timeout", f"{self._deadline_what} (receiving its request)") from None

    def _pump(self, on_frame: Callable[[dict, dict[str, bytes]], bool],
              last_stage: Callable[[], dict | None] | None) -> None:
        """Feed frames to `on_frame` until it returns True; raise _Crashed if the worker dies or breaks a limit."""
        where = (lambda: _where(last_stage())) if last_stage else (lambda: "while starting up")
        fd = self._proc.stdout.fileno()
        next_check = time.monotonic() + POLL_S
        while True:
            now = time.monotonic()
            if now >= self._deadline:
                raise self._kill("timeout", self._deadline_what)
            if now >= next_check:
                next_check = now + POLL_S
                rss = self._watch.over_limit(now)
                if rss:
                    raise self._kill("oom", f"RSS {rss // MIB} MiB > {self.limits.memory_mb} MiB {where()}")
                if self._exited() and not self._poll_in.poll(0):
                    raise self._died(where())
            wait_ms = math.ceil((min(next_check, self._deadline) - now) * 1000)
            if not self._poll_in.poll(max(wait_ms, 0)):
                continue
            try:
                data = os.read(fd, MIB)
            except BlockingIOError:
                continue
            if not data:
                pending = self._decoder.pending_bytes
                raise self._died(where(), f"{pending} bytes of an unfinished frame" if pending else "")
            try:
                frames = self._decoder.feed(data)
            except FrameError as e:
                raise self._kill("abort", f"protocol error {where()}: {e}") from None
            for header, blobs in frames:
                try:
                    finished = on_frame(header, blobs)
                except BaseException:
                    self._kill_group()  # the caller gave up on this job mid-way: the worker's state is unknown
                    self._reap()
                    raise
                if finished:
                    return

    def _rotate_log(self) -> None:
        try:
            size = self.log_path.stat().st_size
        except OSError:
            size = 0
        if size > LOG_CAP_BYTES:
            os.truncate(self.log_path, 0)  # the worker appends (O_APPEND), so it keeps writing at the new end
            size = 0
        self._log_offset = size

    def _with_log_tail(self, reason: str) -> str:
        """The reason, plus what the worker wrote to stderr since the job started (last lines)."""
        try:
            with open(self.log_path, "rb") as f:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(self._log_offset, size - 65536))
                text = f.read().decode(errors="replace")
        except OSError:
            text = ""
        lines = text.rstrip().splitlines()[-TAIL_LINES:]
        return reason + ("\n--- worker stderr (last lines) ---\n" + "\n".join(lines) if lines else "")


class WorkerPool:
    """N independent Workers running the same handler; the campaign drives one job per worker per thread."""

    def __init__(self, n: int, handler: str, limits: Limits, log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        if n < 1:
            raise ValueError(f"a pool needs at least one worker, not {n}")
        self.workers = [Worker(handler, limits, log_dir, env, name=f"w{i}") for i in range(n)]

    def close(self) -> None:
        for worker in self.workers:
            worker.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
