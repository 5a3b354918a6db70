"""The worker process: imports a job handler once, then runs the jobs its parent sends, one at a time.

Started as `python -m fuzzer.workers.main package.module:function` in a fresh interpreter (never
forked: torch hangs after fork() once it ran a parallel op). The systems under test may segfault,
abort or hang in here; the parent (fuzzer/workers/pool.py) watches, kills and respawns us.

Protocol (fuzzer/workers/frames.py frames): the parent's requests arrive on stdin; our events go out on a
private duplicate of the original stdout. fd 1 itself is pointed at stderr (the parent's log file),
so TVM, tf2onnx or torch printing to stdout cannot corrupt the protocol, and fd 0 at /dev/null so
nothing else reads our requests.
"""

from __future__ import annotations

import os

# The libraries' own thread knobs, pinned before anything heavy is imported: the campaign runs one
# worker per core, and a pool of workers each spawning a thread per core would thrash.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TVM_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
for _name in THREAD_VARIABLES:
    os.environ[_name] = "1"

import faulthandler  # noqa: E402
import importlib  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import BinaryIO  # noqa: E402

from fuzzer.workers.frames import FrameError, read_frame, write_frame  # noqa: E402

Emit = Callable[..., None]
Handler = Callable[[dict, dict[str, bytes], Emit], None]

# Exit codes the parent can tell apart from a crash of the code under test.
EXIT_BAD_USAGE = 2
EXIT_BAD_HANDLER = 3
EXIT_PROTOCOL = 4


def load_handler(spec: str) -> Handler:
    """Resolve "package.module:function" to the function."""
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"handler {spec!r}: expected package.module:function")
    func = getattr(importlib.import_module(module_name), func_name)
    if not callable(func):
        raise TypeError(f"handler {spec!r} is not callable")
    return func


def _take_protocol_fds() -> tuple[BinaryIO, BinaryIO]:
    """Move the protocol to private fds; leave fd 1 writing to stderr and fd 0 reading /dev/null."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # sys.stdout still writes to fd 1 (now the log); line buffering keeps prints in order with stderr.
    sys.stdout.reconfigure(line_buffering=True)
    return proto_in, proto_out


def _exit_when_orphaned(parent_pid: int) -> None:
    """If the parent dies without killing us (e.g. SIGKILL), do not linger as an orphan holding memory."""
    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(0)
    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def _error_header(exc: BaseException) -> dict:
    try:
        tb = "".join(traceback.format_exception(exc))
    except MemoryError:
        tb = ""
    return {"event": "error", "exc_type": type(exc).__name__, "message": str(exc)[:20000], "traceback": tb[-20000:]}


def serve(handler: Handler, proto_in: BinaryIO, proto_out: BinaryIO) -> None:
    """Run requests until the parent asks us to exit or closes the pipe."""

    lock = threading.Lock()  # a handler may emit from its own threads; frames must not interleave

    def emit(event: str, header: dict | None = None, blobs: dict[str, bytes] | None = None) -> None:
        with lock:
            write_frame(proto_out, {**(header or {}), "event": event}, blobs)

    emit("ready", {"pid": os.getpid()})
    while True:
        try:
            request, blobs = read_frame(proto_in)
        except EOFError:
            return
        if request.get("op") == "exit":
            return
        try:
            handler(request, blobs, emit)
        except Exception as exc:  # MemoryError included: the worker survives and reports it
            del blobs
            write_frame(proto_out, _error_header(exc))
        write_frame(proto_out, {"event": "done"})


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m fuzzer.workers.main package.module:function", file=sys.stderr)
        return EXIT_BAD_USAGE
    parent_pid = os.getppid()
    proto_in, proto_out = _take_protocol_fds()
    # Python tracebacks of every thread on SIGSEGV/SIGABRT/..., and on SIGUSR1 (sent before a timeout kill).
    faulthandler.enable(all_threads=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    _exit_when_orphaned(parent_pid)
    try:
        handler = load_handler(argv[0])
    except Exception:
        traceback.print_exc()
        return EXIT_BAD_HANDLER
    try:
        serve(handler, proto_in, proto_out)
    except FrameError as e:
        print(f"worker: protocol error: {e}", file=sys.stderr)
        return EXIT_PROTOCOL
    except BrokenPipeError:
        return 0  # the parent went away
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
