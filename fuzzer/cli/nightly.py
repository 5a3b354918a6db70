"""`parallax nightly`: tonight's campaign on every device, then what is new since the previous night.

One command that cron can run unchanged every night, e.g.

    30 1 * * *  cd /srv/parallax && .venv/bin/parallax nightly --time 6h --quiet >> crashes/nightly.log 2>&1

The first night creates the store in --out (default `crashes/nightly/`); each later night resumes it (the seed stream
goes on where it stopped, so no case is ever run twice) and compares tonight's run with every run before it:
a bug is *new* when its signature was never seen before tonight, *vanished* when it was seen before but not
tonight (with whether tonight's pipelines looked for it at all), *still* otherwise. --previous picks another
baseline: a run id of the same store (tonight is compared with the runs after it), or another campaign folder
(e.g. last week's store). The pipelines are every one available tonight (CPU always, CUDA when a GPU or nvcc is
there), unless --pipelines names some; the devices are probed while the campaign runs and listed at the end.

The HTML report (OUT/report.html unless --html) shows the comparison. Exit status: 0 no new bug; 1 new bugs
(listed on stdout, or as JSON with --json); 2 bad input (one line on stderr, nothing in --out or the baseline
touched); 3 the campaign itself failed (its workers could not start, or the harness raised): the report is
still written, but no night should pass silently when nothing was tested.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from fuzzer.cli.arg_types import comma_names, parse_duration, positive_float, positive_int
from fuzzer.cli.campaign_setup import campaign_failed, run_campaign, select
from fuzzer.cli.errors import UsageError

DEFAULT_OUT = "crashes/nightly"  # crashes/ is ignored by git
EXIT_NEW_BUGS = 1
EXIT_CAMPAIGN_FAILED = 3


def add_parser(sub: Any) -> None:
    n = sub.add_parser("nightly", help="tonight's campaign on every device, then new/vanished bugs since the "
                                       "previous night (exit 1 when new bugs appeared)")
    n.add_argument("--time", type=parse_duration, required=True, help="how long to fuzz: 90s, 5m, 6h, ...")
    n.add_argument("--out", default=DEFAULT_OUT, help=f"the store kept from night to night (default {DEFAULT_OUT}/)")
    n.add_argument("--previous", metavar="RUN_OR_DIR",
                   help="baseline: a run id of this store, or another campaign folder (default: the run before "
                        "tonight's in --out; none on the first night)")
    n.add_argument("--workers", type=positive_int, help="workers or Ray actors (default: one per core)")
    n.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local worker processes, or Ray actors (default local)")
    n.add_argument("--address", help="with --engine ray: the Ray cluster to join, HOST:PORT "
                                     "(default: a private Ray instance on this machine)")
    n.add_argument("--pipelines", type=comma_names,
                   help="comma-separated pipelines (default: every available one, compile-only included)")
    n.add_argument("--seed", type=int, help="first night only: the campaign seed (default: random)")
    n.add_argument("--nodes", type=positive_int, help="first night only: node-count target per graph (default 10)")
    n.add_argument("--max-cases", type=positive_int, help="stop after this many cases tonight")
    n.add_argument("--html", metavar="FILE", help="where to write the HTML report (default OUT/report.html)")
    n.add_argument("--json", action="store_true", help="print one JSON object (the comparison) instead of text")
    n.add_argument("--quiet", action="store_true", help="no live display while fuzzing")
    n.add_argument("--stage-timeout", type=positive_float, default=120.0, help="seconds allowed per stage")
    n.add_argument("--memory-mb", type=positive_int, default=8192, help="per-worker memory limit (resident MiB)")
    n.add_argument("--repeats", type=positive_int, default=10, help="timed runs per optimisation level")
    n.add_argument("--reduce-budget", type=float, default=120.0,
                   help="seconds per new bug for the background reducer, which has its own worker (0: off)")
    n.add_argument("--work-dir", default=".work", help="worker logs, library caches and Ray's files")
    n.set_defaults(run=run_nightly)


# ----- checks before anything runs ------------------------------------------------------------------------
def _baseline(out: Path, exists: bool, previous: str | None) -> str | int | None:
    """The run id or folder to compare tonight with, validated read-only; None on a first night."""
    from fuzzer.campaign.store import check_out_folder
    from fuzzer.report.since import is_run_id
    from fuzzer.report.store_read import StoreError, open_store

    if previous is not None and not is_run_id(previous):
        other = Path(previous)
        try:
            if not check_out_folder(other):
                raise UsageError(f"--previous {previous}: no campaign store there")
        except Exception as e:
            if isinstance(e, UsageError):
                raise
            raise UsageError(f"--previous {previous}: {e}") from None
        if other.resolve() == out.resolve():
            raise UsageError(f"--previous {previous}: that is --out itself; give one of its run ids instead")
        return str(other)
    if not exists:
        if previous is not None:
            raise UsageError(f"--previous {previous}: {out} holds no store yet, so it has no runs")
        return None
    try:
        conn, _ = open_store(out)
    except StoreError as e:
        raise UsageError(" ".join(str(e).splitlines())) from None
    try:
        runs = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id")]
    finally:
        conn.close()
    if previous is None:
        return runs[-1] if runs else None
    if int(previous) not in runs:
        known = f"{runs[0]}..{runs[-1]}" if runs else "none"
        raise UsageError(f"--previous {previous}: no such run in {out} (runs: {known})")
    return int(previous)


def _open(args: argparse.Namespace, exists: bool, pipelines: list[Any]) -> tuple[Any, list[str]]:
    from fuzzer.campaign.store import Store, StoreError

    out = Path(args.out)
    notes = []
    try:
        if exists:
            store = Store.open(out)
            camp = store.campaign()
            for flag, given, stored in (("--seed", args.seed, camp.seed), ("--nodes", args.nodes, camp.nodes)):
                if given is not None and given != stored:
                    notes.append(f"{flag} ignored: the store in {out} goes on with {flag} {stored}")
            return store, notes
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        config = {"seed": seed, "nodes": args.nodes or 10, "pipelines": [p.name for p in pipelines],
                  "nightly": True}
        return Store.create(out, seed, args.nodes or 10, config), notes
    except StoreError as e:
        raise UsageError(str(e)) from None


def _html_target(args: argparse.Namespace) -> Path:
    path = Path(args.html) if args.html else Path(args.out) / "report.html"
    if path.is_dir():
        raise UsageError(f"--html {path}: is a folder")
    if args.html and not path.parent.is_dir():
        raise UsageError(f"--html {path}: no such folder {path.parent}")
    if path.name.startswith("parallax.db"):
        raise UsageError(f"--html {path}: refusing to overwrite the store's database")
    return path


# ----- the night --------------------------------------------------------------------------------------------
def run_nightly(args: argparse.Namespace) -> int:
    from fuzzer.campaign.store import StoreError, check_out_folder

    if args.address and args.engine != "ray":
        raise UsageError("--address needs --engine ray")
    out = Path(args.out)
    try:
        exists = check_out_folder(out)
    except StoreError as e:
        raise UsageError(str(e)) from None
    baseline = _baseline(out, exists, args.previous)
    html = _html_target(args)
    selection = select(args.pipelines, compile_only=True)  # the nightly box runs every device, compile-only too
    pipelines = selection.run
    devices: dict[str, Any] = {}
    probe = threading.Thread(target=_probe_devices, args=(devices,), name="device-probe", daemon=True)
    probe.start()  # a few seconds of imports in a child process, while the campaign runs
    store, notes = _open(args, exists, pipelines)
    try:
        for n in notes:
            print(f"parallax: note: {n}", file=sys.stderr)
        summary = run_campaign(args, store, selection, exists, sys.stderr if args.json else sys.stdout)
    except Exception:  # noqa: BLE001 - not exit 1 ("new bugs"): cron must see that the night itself failed
        traceback.print_exc()
        print("parallax: nightly: the campaign failed (see the traceback above)", file=sys.stderr)
        return EXIT_CAMPAIGN_FAILED
    finally:
        store.close()
    probe.join(timeout=120)
    return _judge_night(args, out, baseline, summary, html, devices.get("report"))


def _probe_devices(into: dict[str, Any]) -> None:
    from fuzzer.devices import discover_devices

    try:
        into["report"] = discover_devices()
    except Exception as e:  # noqa: BLE001 - the device list is information; the night goes on without it
        into["error"] = f"{type(e).__name__}: {e}"


def _judge_night(args: argparse.Namespace, out: Path, baseline: str | int | None, summary: Any, html: Path,
                 devices: Any) -> int:
    from fuzzer.case.files import atomic_write
    from fuzzer.report.html import render_html
    from fuzzer.report.load import load_report
    from fuzzer.report.since import SinceEntry, compare_runs
    from fuzzer.report.store_read import StoreError

    try:
        data = load_report(out)
        since = compare_runs(out, baseline) if baseline is not None else None
    except StoreError as e:
        raise UsageError(" ".join(str(e).splitlines())) from None
    if since is not None:
        new, vanished, still = since.new, since.vanished, since.still
    else:  # the first night: every bug the store holds was found tonight
        new, vanished, still = [SinceEntry(b, 0, b.count, True) for b in data.bugs], [], []
    atomic_write(html, render_html(data, since).encode())
    failed = campaign_failed(summary)
    status = EXIT_CAMPAIGN_FAILED if failed else EXIT_NEW_BUGS if new else 0
    result = {"run_id": summary.run_id, "stop_reason": summary.reason, "cases": summary.stats.cases,
              "baseline": since.baseline if since else None, "new": [e.to_json() for e in new],
              "vanished": [e.to_json() for e in vanished], "still": [e.to_json() for e in still],
              "report": str(html), "devices": devices.to_json() if devices is not None else None, "exit": status}
    if args.json:
        print(json.dumps(result, indent=1, default=str))
        return status
    if devices is not None:
        print("devices:\n  " + "\n  ".join(devices.lines()))
    against = f"since {since.baseline}" if since else "(first night: no previous run)"
    print(f"nightly run {summary.run_id}: {len(new)} new, {len(vanished)} vanished, {len(still)} still there "
          f"{against}")
    for title, entries in (("new", new), ("vanished", vanished)):
        for e in entries:
            b = e.bug
            why = f" [{e.why_untested}]" if title == "vanished" and e.why_untested else ""
            print(f"  {title}: {b.sig12} {b.symptom} in {b.component}: {b.headline}{why}")
    if failed:
        print(f"the campaign failed ({summary.reason}): see {out / 'events.jsonl'}")
    print(f"report: {html}")
    return status
