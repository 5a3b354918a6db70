"""Stage bookkeeping inside a worker: announce each stage to the pool, time it, turn errors into Failures.

The pool restarts its per-stage deadline and attributes a crash to the last announced stage, so every
piece of work that calls into a system under test must run inside `stage()`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from oracles.outcome import Failure
from oracles.unsupported import is_unsupported

Emit = Callable[..., None]


class StageFailed(Exception):
    """Raised out of `stage()` carrying the Failure; ends the pipeline."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def failure_from_exception(stage: str, e: BaseException) -> Failure:
    exc_type = type(e).__name__
    message = _message(e)
    if isinstance(e, MemoryError):
        kind = "oom"
    elif is_unsupported(exc_type, message):
        kind = "unsupported"
    elif stage == "check":
        kind = "invalid_model"
    else:
        kind = "exception"
    return Failure(stage, kind, exc_type, message)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _message(e: BaseException) -> str:
    """The error text without colour codes or the exporters' boilerplate ("Next steps: ...")."""
    text = _ANSI.sub("", str(e)).strip() or repr(e)
    if "## Exception summary" in text:  # torch.onnx (dynamo) puts the real errors under this heading
        text = text.split("## Exception summary", 1)[1].split("(Refer to the full stack trace", 1)[0].strip()
    if len(text) > 4000:
        text = text[:2000] + "\n...\n" + text[-2000:]
    return text


class StageRunner:
    """Runs one pipeline's stages: `with runner.stage("compile"): ...` announces, times and classifies."""

    def __init__(self, pipeline: str, emit: Emit, timeout_s: float | None = None) -> None:
        self.pipeline = pipeline
        self.emit = emit
        self.timeout_s = timeout_s
        self.times: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, timeout_s: float | None = None, harness: bool = False) -> Iterator[None]:
        """`harness=True`: our own work (materialising a module): guarded and attributed, but not counted
        as time spent in the system under test."""
        self.emit("stage", {"pipeline": self.pipeline, "stage": name, "timeout_s": timeout_s or self.timeout_s})
        t0 = time.perf_counter()
        try:
            yield
        except StageFailed:
            raise
        except BaseException as e:  # noqa: BLE001 - a system under test may raise anything
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            if not harness:
                self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
            raise StageFailed(failure_from_exception(name, e)) from e
        if not harness:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0

