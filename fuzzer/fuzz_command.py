"""`parallax fuzz`: generate, run and judge cases until the time is up or Ctrl-C, into a resumable store.

Bad input (a bad --time or --workers, an --out that is a file, a corrupt store, an existing store
without --resume) is one line on stderr and exit 2, with nothing in --out touched. Ctrl-C stops
cleanly: the cases in flight finish (a second Ctrl-C abandons them); SIGTERM abandons them at once.
--resume continues the stored campaign with its stored seed, node count and pipelines; flags that
disagree with them are ignored, with a note.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from fuzzer.arg_types import comma_names, positive_float, positive_int
from fuzzer.errors import UsageError

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """'90s', '5m', '2h', '1d' or plain seconds -> seconds (positive)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90s, 5m, 2h, 1d or seconds)")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive, got {text!r}")
    return seconds


def default_workers() -> int:
    return len(os.sched_getaffinity(0))


def add_parser(sub: Any) -> None:
    f = sub.add_parser("fuzz", help="run a fuzzing campaign into a store (resumable; see `parallax report`)")
    f.add_argument("--time", type=parse_duration, help="how long: 90s, 5m, 2h, 1d or seconds (default: until Ctrl-C)")
    f.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    f.add_argument("--pipelines", type=comma_names, help="comma-separated pipelines (default: every available CPU one)")
    f.add_argument("--nodes", type=positive_int, help="node-count target per graph (default 10)")
    f.add_argument("--seed", type=int, help="campaign seed: case i uses seed+i (default: random)")
    f.add_argument("--out", default="crashes", help="output folder holding the store (default crashes/)")
    f.add_argument("--resume", action="store_true", help="continue the campaign stored in --out")
    f.add_argument("--quiet", action="store_true", help="no live display (OUT/events.jsonl is always written)")
    f.add_argument("--max-cases", type=positive_int, help="stop after this many cases in this run")
    f.add_argument("--stage-timeout", type=positive_float, default=120.0, help="seconds allowed per stage")
    f.add_argument("--memory-mb", type=positive_int, default=8192, help="per-worker memory limit (resident MiB)")
    f.add_argument("--repeats", type=positive_int, default=10, help="timed runs per optimisation level")
    f.add_argument("--reduce-budget", type=float, default=120.0,
                   help="seconds per new bug for the background reducer, which has its own worker (0: off)")
    f.add_argument("--work-dir", default=".work", help="worker logs and library caches")
    f.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine (default); ray: Ray actors (fuzzer.engine_ray)")
    f.add_argument("--address", "--ray-address", dest="ray_address",
                   help="with --engine ray: join this Ray cluster HOST:PORT (default: a private instance)")
    f.set_defaults(run=run_fuzz)


def _resolve_pipelines(names: list[str] | None) -> list[Any]:
    from fuzzer.targets.registry import default_pipelines, resolve
    from oracles.pipeline_id import PipelineError

    try:
        # The first-run default is every CPU pipeline; CUDA ones (compile-only TVM CUDA costs a minute a case
        # without a GPU) are asked for by name or run by `parallax nightly`, which covers every device.
        pipelines = resolve(list(names)) if names else [p for p in default_pipelines() if p.device == "cpu"]
    except (PipelineError, ValueError) as e:
        raise UsageError(str(e)) from None
    if not pipelines:
        raise UsageError("no pipeline is available on this machine (see `parallax targets`)")
    return pipelines


def _open_store(args: argparse.Namespace) -> tuple[Any, list[Any], list[str]]:
    """(store, pipelines, notes) for a new or resumed campaign; nothing in --out changes on bad input."""
    from fuzzer.store import Store, StoreError, check_out_folder

    out = Path(args.out)
    notes: list[str] = []
    try:
        exists = check_out_folder(out)
        if exists and not args.resume:
            raise UsageError(f"{out}: already holds a campaign store; use --resume to continue it "
                             f"(or another --out for a new campaign)")
        if not exists and args.resume:
            raise UsageError(f"{out}: no campaign store to resume")
        if args.resume:
            store = Store.open(out)
            camp = store.campaign()
            try:
                pipelines = _resolve_pipelines(camp.config.get("pipelines"))
            except UsageError:
                store.close()
                raise
            for flag, given, stored in (("--nodes", args.nodes, camp.nodes), ("--seed", args.seed, camp.seed),
                                        ("--pipelines", list(args.pipelines) if args.pipelines else None,
                                         camp.config.get("pipelines"))):
                if given is not None and given != stored:
                    notes.append(f"{flag} ignored: --resume continues the stored campaign ({flag} {stored})"
                                 if flag != "--pipelines" else
                                 f"{flag} ignored: --resume continues with the stored {len(stored)} pipelines")
            return store, pipelines, notes
        pipelines = _resolve_pipelines(args.pipelines)
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        nodes = args.nodes or 10
        config = {"seed": seed, "nodes": nodes, "pipelines": [p.name for p in pipelines]}
        return Store.create(out, seed, nodes, config), pipelines, notes
    except StoreError as e:
        raise UsageError(str(e)) from None


def run_fuzz(args: argparse.Namespace) -> int:
    if args.ray_address and args.engine != "ray":
        raise UsageError("--ray-address needs --engine ray")
    store, pipelines, notes = _open_store(args)  # validates --out before anything heavy is imported
    try:
        return _run(args, store, pipelines, notes)
    finally:
        store.close()


def _run(args: argparse.Namespace, store: Any, pipelines: list[Any], notes: list[str]) -> int:
    from fuzzer.background_reduce import make_reducer, reduction_line
    from fuzzer.campaign import Campaign, CampaignSettings
    from fuzzer.case_runner import RunSettings
    from fuzzer.engine_ray import make_engine
    from fuzzer.progress import make_display, summary_lines
    from fuzzer.scheduler import Scheduler, SharedGapBook
    from fuzzer.store import EVENTS_NAME, EventLog
    from fuzzer.workdir import prepare, worker_env
    from fuzzer.worker_pool import Limits

    workers = args.workers or default_workers()
    for n in notes:
        print(f"parallax: note: {n}", file=sys.stderr)
    scheduler = Scheduler(pipelines)
    scheduler.load(store.skip_rows())
    gaps = SharedGapBook()
    gaps.load(store.gap_rows())
    work = prepare(Path(args.work_dir))
    settings = RunSettings(repeats=args.repeats, stage_timeout_s=args.stage_timeout, localise=True,
                           confirm_slowdowns=True, bisect_passes=True)
    limits = Limits(stage_timeout_s=args.stage_timeout, memory_mb=args.memory_mb)
    # make_engine keeps a private Ray instance's files under the work dir, like `parallax nightly`.
    engine = make_engine(args.engine, workers, scheduler, gaps, settings, limits, work, worker_env(work),
                         args.ray_address)
    events = EventLog(store.out / EVENTS_NAME)
    display = make_display(args.quiet)
    reducer = make_reducer(args.reduce_budget, store.out, pipelines, limits, work, worker_env(work))
    campaign = Campaign(store, engine, scheduler, gaps, events,
                        CampaignSettings(args.time, args.max_cases, workers, args.resume), display,
                        reducer=reducer)
    previous = _install_stop_handlers(campaign)
    try:
        with display:
            summary = campaign.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        events.close()
    for line in summary_lines(summary):
        print(line)
    if reducer is not None:
        print(reduction_line(reducer))
    return 0 if not summary.reason.startswith("error") and summary.reason != "workers_failed" else 1


def _install_stop_handlers(campaign: Any) -> dict[int, Any]:
    """SIGINT: finish the cases in flight, then stop (a second SIGINT abandons them); SIGTERM: abandon now."""
    def on_int(signum: int, frame: Any) -> None:
        campaign.request_stop("interrupted", abandon=bool(campaign.stats.stopping))

    def on_term(signum: int, frame: Any) -> None:
        campaign.request_stop("terminated", abandon=True)

    return {signal.SIGINT: signal.signal(signal.SIGINT, on_int), signal.SIGTERM: signal.signal(signal.SIGTERM, on_term)}
