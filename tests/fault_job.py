"""A worker job handler that injects faults on request, to test the worker pool against real crashes.

Test-only: it is the "fake target" that breaks the harness on purpose. Each job announces a stage
(pipeline, stage, timeout_s from the request) and then does what `request["fault"]` says.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

CHUNK_BYTES = 8 << 20


def _echo(blobs: dict[str, bytes], emit: Callable[..., None]) -> None:
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}
    emit("result", {"sha256": digests}, {name: data[::-1] for name, data in blobs.items()})


def _grandchild(emit: Callable[..., None], allocate: bool) -> None:
    """Start a grandchild that hangs (optionally allocating) so the pool must kill the whole tree."""
    body = ("import time\nchunks = []\nwhile True:\n    chunks.append(b'x' * (8 << 20))\n    time.sleep(0.01)\n"
            if allocate else "import time\ntime.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", body])
    emit("grandchild", {"pid": child.pid})
    child.wait()


def inject(fault: str) -> None:
    """The process-killing faults; tests/fault_pipeline.py injects them into real pipeline stages too."""
    if fault == "segfault":
        ctypes.string_at(0)
    elif fault == "abort":
        os.abort()
    elif fault == "hang":
        time.sleep(600)
    elif fault == "oom":
        chunks = []
        while True:
            chunks.append(b"\x01" * CHUNK_BYTES)


def run_job(request: dict, blobs: dict[str, bytes], emit: Callable[..., None]) -> None:
    emit("stage", {"pipeline": request.get("pipeline", "test>fault"), "stage": request.get("stage", "run"),
                   "timeout_s": request.get("timeout_s")})
    fault = request.get("fault", "echo")
    if fault == "echo":
        _echo(blobs, emit)
    elif fault in ("segfault", "abort", "hang", "oom"):
        inject(fault)
    elif fault == "raise":
        raise ValueError(f"injected failure in {request.get('stage')}")
    elif fault == "memory_error":
        raise MemoryError("injected allocation failure")
    elif fault == "exit":
        os._exit(int(request.get("code", 3)))
    elif fault == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == "print":
        print("garbage on sys.stdout PXF1\x00\x01")
        sys.stdout.flush()
        os.write(1, b"PXF1\xff\xff\xff\xff raw garbage on fd 1\n")
        sys.stderr.write("noise on stderr\n")
        _echo(blobs, emit)
    elif fault == "stages":
        # Several stages, each shorter than its limit but together longer: each stage event restarts the clock.
        for i in range(int(request.get("n", 3))):
            emit("stage", {"pipeline": request.get("pipeline", "test>fault"), "stage": f"step{i}",
                           "timeout_s": request.get("timeout_s")})
            time.sleep(float(request.get("sleep_s", 0.5)))
        _echo(blobs, emit)
    elif fault == "env":
        emit("env", {name: os.environ.get(name) for name in request.get("names", [])})
    elif fault == "grandchild_hang":
        _grandchild(emit, allocate=False)
    elif fault == "grandchild_oom":
        _grandchild(emit, allocate=True)
    else:
        raise ValueError(f"unknown fault {fault!r}")
