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
import sys
from pathlib import Path
from typing import Any

from fuzzer.cli.arg_types import comma_names, parse_duration, positive_float, positive_int
from fuzzer.cli.campaign_setup import campaign_failed, run_campaign, select
from fuzzer.cli.errors import UsageError


def add_parser(sub: Any) -> None:
    f = sub.add_parser("fuzz", help="run a fuzzing campaign into a store (resumable; see `parallax report`)")
    f.add_argument("--time", type=parse_duration, help="how long: 90s, 5m, 2h, 1d or seconds (default: until Ctrl-C)")
    f.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    f.add_argument("--pipelines", type=comma_names,
                   help="comma-separated pipelines (default: every one that runs here)")
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
                   help="local: worker processes on this machine (default); ray: Ray actors")
    f.add_argument("--address", "--ray-address", dest="ray_address",
                   help="with --engine ray: join this Ray cluster HOST:PORT (default: a private instance)")
    f.set_defaults(run=run_fuzz)


def _open_store(args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    """(store, pipeline selection, notes) for a new or resumed campaign; nothing in --out changes on bad input."""
    from fuzzer.campaign.store import Store, StoreError, check_out_folder

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
                selection = select(camp.config.get("pipelines"))
                if "left_out" in camp.config:  # the reasons given when the campaign was created
                    selection.left_out[:] = [tuple(x) for x in camp.config["left_out"]]
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
            return store, selection, notes
        selection = select(args.pipelines)
        pipelines = selection.run
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        nodes = args.nodes or 10
        config = {"seed": seed, "nodes": nodes, "pipelines": [p.name for p in pipelines],
                  "left_out": [list(x) for x in selection.left_out]}
        return Store.create(out, seed, nodes, config), selection, notes
    except StoreError as e:
        raise UsageError(str(e)) from None


def run_fuzz(args: argparse.Namespace) -> int:
    if args.ray_address and args.engine != "ray":
        raise UsageError("--ray-address needs --engine ray")
    store, selection, notes = _open_store(args)  # validates --out before anything heavy is imported
    try:
        for n in notes:
            print(f"parallax: note: {n}", file=sys.stderr)
        args.address = args.ray_address
        summary = run_campaign(args, store, selection, args.resume)
    finally:
        store.close()
    return 1 if campaign_failed(summary) else 0
