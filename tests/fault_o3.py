"""Test-only job handler: the real pipeline job, with a segfault in every compile of a TVM O3 pipeline.

The "fake target" of an O3-only crash that always reproduces: the lower levels compile for real and pass, so
triangulation blames the optimisation level, while the failure itself is the same however many levels ran."""

from __future__ import annotations

from collections.abc import Callable

from fuzzer.targets.job import run_job as real_job
from tests.fault_job import inject


def run_job(request: dict, blobs: dict[str, bytes], emit: Callable[..., None]) -> None:
    def faulty_emit(event: str, header: dict | None = None, data: dict[str, bytes] | None = None) -> None:
        emit(event, header, data)
        if event == "stage" and header and str(header.get("pipeline", "")).endswith(">tvm:O3:llvm") \
                and header.get("stage") == "compile":
            inject("segfault")

    real_job(request, blobs, faulty_emit)
