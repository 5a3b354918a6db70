"""A worker job handler that leaks memory on purpose, to test recycling: the real job, then 300 MiB kept alive.

Test-only: the "fake target" that grows a worker's memory the way a leaking system under test would; the
pipelines themselves run for real (fuzzer.targets.job)."""

from __future__ import annotations

from collections.abc import Callable

from fuzzer.targets.job import run_job as real_job

LEAK_BYTES = 300 << 20
_hoard: list[bytes] = []


def run_job(request: dict, blobs: dict[str, bytes], emit: Callable[..., None]) -> None:
    real_job(request, blobs, emit)
    if request.get("op") == "case" and request.get("reference"):  # once per case: its first job
        _hoard.append(b"\x01" * LEAK_BYTES)  # the bytes are written, so they are resident
