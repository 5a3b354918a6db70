"""What one pipeline produced for one test case: outputs and timings, or a failure.

Plain data with a JSON form (arrays travel separately as .npz), so outcomes cross process
boundaries and land on disk without pickles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Stages in the order a pipeline passes them. "reference" is the eager source run itself.
STAGES = ("reference", "export", "check", "import", "compile", "run")

# How a stage can fail. The last four are decided by the worker pool (the process died or was killed).
FAILURE_KINDS = ("exception", "unsupported", "invalid_model", "segfault", "abort", "timeout", "oom")


@dataclass
class Failure:
    stage: str
    kind: str
    exc_type: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}")
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "kind": self.kind, "exc_type": self.exc_type, "message": self.message}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Failure:
        return cls(d["stage"], d["kind"], d.get("exc_type", ""), d.get("message", ""))


@dataclass
class Outcome:
    """`outputs` is None when the pipeline failed or only compiles (e.g. CUDA codegen without a GPU)."""

    pipeline: str
    outputs: list[np.ndarray] | None = None
    failure: Failure | None = None
    stage_times: dict[str, float] = field(default_factory=dict)  # seconds spent per stage
    run_times: list[float] = field(default_factory=list)  # timed runs after warm-up, seconds
    compile_only: bool = False
    skipped: str = ""  # non-empty: not run, and why (unavailable, known capability gap, converter failed)

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.skipped

    def stage_reached(self) -> str:
        """The last stage entered: the failing one, else the last one timed."""
        if self.failure is not None:
            return self.failure.stage
        done = [s for s in STAGES if s in self.stage_times]
        return done[-1] if done else ""

    def meta_json(self) -> dict[str, Any]:
        """Everything but the output arrays."""
        return {"pipeline": self.pipeline, "failure": self.failure.to_json() if self.failure else None,
                "stage_times": self.stage_times, "run_times": self.run_times,
                "compile_only": self.compile_only, "skipped": self.skipped,
                "n_outputs": None if self.outputs is None else len(self.outputs)}

    @classmethod
    def from_meta_json(cls, d: dict[str, Any], outputs: list[np.ndarray] | None) -> Outcome:
        f = d.get("failure")
        return cls(d["pipeline"], outputs, Failure.from_json(f) if f else None, dict(d.get("stage_times", {})),
                   list(d.get("run_times", [])), bool(d.get("compile_only", False)), d.get("skipped", ""))
