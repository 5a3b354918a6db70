"""How a case is run: timed repeats, stage timeout, and which follow-ups run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RunSettings:
    repeats: int = 10  # timed runs per pipeline with opt levels (slowdown oracle)
    stage_timeout_s: float = 120.0
    localise: bool = True
    confirm_slowdowns: bool = True
    bisect_passes: bool = True
