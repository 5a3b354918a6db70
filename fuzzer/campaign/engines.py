"""Choosing an engine for `parallax fuzz` and `parallax nightly`: local worker processes or Ray actors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fuzzer.campaign.engine_local import LocalEngine
from fuzzer.campaign.engine_parts import RecyclePolicy
from fuzzer.campaign.engine_ray import RayEngine
from fuzzer.campaign.known import KnownSignatures
from fuzzer.campaign.scheduler import Scheduler, SharedGapBook
from fuzzer.case.runner import JOB_HANDLER
from fuzzer.case.settings import RunSettings
from fuzzer.workers.pool import Limits

ENGINES = ("local", "ray")


def make_engine(kind: str, workers: int, scheduler: Scheduler, gaps: SharedGapBook, settings: RunSettings,
                limits: Limits, work: Path, env: dict[str, str] | None = None, address: str | None = None,
                handler: str = JOB_HANDLER, recycle: RecyclePolicy | None = None,
                known: KnownSignatures | None = None) -> Any:
    """The engine a command asked for: local worker processes, or Ray actors (joining `address` when given,
    else a private Ray instance whose files live in work/ray)."""
    if kind == "local":
        if address:
            raise ValueError("--address needs --engine ray")
        return LocalEngine(workers, scheduler, gaps, settings, limits, work / "logs", env, handler, recycle=recycle,
                           known=known)
    if kind == "ray":
        return RayEngine(workers, scheduler, gaps, settings, limits, work / "logs", env, handler, address,
                         work / "ray", recycle=recycle, known=known)
    raise ValueError(f"unknown engine {kind!r} (choose from {', '.join(ENGINES)})")
