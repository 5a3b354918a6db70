"""The campaign set-up that `parallax fuzz` and `parallax nightly` share: which pipelines run (and which are left
out, with why), the engine, scheduler, gap book, reducer and display, the stop signals, and the summary."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import IO, Any

from fuzzer.cli.errors import UsageError


def default_workers() -> int:
    return len(os.sched_getaffinity(0))


def select(names: list[str] | tuple[str, ...] | None, compile_only: bool = False) -> Any:
    """A targets.registry.Selection: the named pipelines, or every one that really runs here (plus the
    compile-only ones when `compile_only`); UsageError for a bad or unavailable name, or when none is left."""
    from fuzzer.targets.registry import select_pipelines
    from oracles.pipeline_id import PipelineError

    try:
        chosen = select_pipelines(list(names) if names else None, compile_only)
    except (PipelineError, ValueError) as e:
        raise UsageError(str(e)) from None
    if not chosen.run:
        raise UsageError("no pipeline is available on this machine (see `parallax targets`)")
    return chosen


def run_campaign(args: argparse.Namespace, store: Any, selection: Any, resumed: bool,
                 stream: IO[str] | None = None) -> Any:
    """Run one campaign into `store` with the engine, workers, limits and budgets in `args`; the RunSummary.
    Prints the pipeline selection first and the summary last, on `stream` (stdout by default)."""
    from fuzzer.campaign.background_reduce import make_reducer, reduction_line
    from fuzzer.campaign.engines import make_engine
    from fuzzer.campaign.known import KnownSignatures
    from fuzzer.campaign.loop import Campaign, CampaignSettings
    from fuzzer.campaign.progress import make_display, summary_lines
    from fuzzer.campaign.scheduler import Scheduler, SharedGapBook
    from fuzzer.campaign.store import EVENTS_NAME, EventLog
    from fuzzer.case.settings import RunSettings
    from fuzzer.workers.pool import Limits
    from fuzzer.workers.workdir import prepare, worker_env

    stream = stream or sys.stdout
    pipelines = selection.run
    for line in selection.lines():
        print(line, file=stream, flush=True)
    workers = args.workers or default_workers()
    scheduler = Scheduler(pipelines)
    scheduler.load(store.skip_rows())
    gaps = SharedGapBook()
    gaps.load(store.gap_rows())
    work = prepare(Path(args.work_dir))
    settings = RunSettings(repeats=args.repeats, stage_timeout_s=args.stage_timeout, localise=True,
                           confirm_slowdowns=True, bisect_passes=True)
    limits = Limits(stage_timeout_s=args.stage_timeout, memory_mb=args.memory_mb)
    known = KnownSignatures([r["signature"] for r in store.signature_rows()])
    try:  # a private Ray instance keeps its files under the work dir
        engine = make_engine(args.engine, workers, scheduler, gaps, settings, limits, work, worker_env(work),
                             getattr(args, "address", None), known=known)
    except ValueError as e:
        raise UsageError(str(e)) from None
    events = EventLog(store.out / EVENTS_NAME)
    display = make_display(args.quiet, stream)
    reducer = make_reducer(args.reduce_budget, store.out, pipelines, limits, work, worker_env(work))
    campaign = Campaign(store, engine, scheduler, gaps, events,
                        CampaignSettings(args.time, args.max_cases, workers, resumed, list(selection.left_out)),
                        display, reducer=reducer, known=known)
    previous = install_stop_handlers(campaign)
    try:
        with display:
            summary = campaign.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        events.close()
    for line in summary_lines(summary):
        print(line, file=stream)
    if reducer is not None:
        print(reduction_line(reducer), file=stream)
    return summary


def campaign_failed(summary: Any) -> bool:
    """The campaign itself failed (the harness raised, or no worker could run), as opposed to finding bugs."""
    return summary.reason.startswith("error") or summary.reason == "workers_failed"


def install_stop_handlers(campaign: Any) -> dict[int, Any]:
    """SIGINT: finish the cases in flight, then stop (a second SIGINT abandons them); SIGTERM: abandon now.
    Returns the handlers it replaced, for the caller to put back."""
    def on_int(signum: int, frame: Any) -> None:
        campaign.request_stop("interrupted", abandon=bool(campaign.stats.stopping))

    def on_term(signum: int, frame: Any) -> None:
        campaign.request_stop("terminated", abandon=True)

    return {signal.SIGINT: signal.signal(signal.SIGINT, on_int), signal.SIGTERM: signal.signal(signal.SIGTERM, on_term)}
