"""Test-only job handler: the real pipeline job, with one fault injected into one stage of one pipeline.

The fault is configured by the test through the worker's environment (FAULT_INJECTION_SPEC =
"pipeline|stage|fault|marker"); it fires once (the marker file records that it did), so the worker
that replaces the crashed one runs the rest of the case, and the next case, normally.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fuzzer.targets.job import run_job as real_job
from tests.fault_job import inject


def run_job(request: dict, blobs: dict[str, bytes], emit: Callable[..., None]) -> None:
    pipeline, stage, kind, marker = os.environ["FAULT_INJECTION_SPEC"].split("|")

    def faulty_emit(event: str, header: dict | None = None, data: dict[str, bytes] | None = None) -> None:
        emit(event, header, data)
        if event == "stage" and header and header.get("pipeline") == pipeline and header.get("stage") == stage:
            if not Path(marker).exists():
                Path(marker).write_text(kind)
                inject(kind)

    real_job(request, blobs, faulty_emit)
