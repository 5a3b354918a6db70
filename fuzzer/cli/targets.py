"""`parallax targets`: every pipeline, available or not, and why; and which ones a campaign runs by default."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fuzzer.targets.registry import list_availability


def add_parser(sub: Any) -> None:
    t = sub.add_parser("targets", help="list every pipeline, available or not, and why")
    t.add_argument("--json", action="store_true", help="print JSON")
    t.set_defaults(run=run_targets)


def run_targets(args: argparse.Namespace) -> int:
    rows = list_availability()
    if args.json:
        print(json.dumps([a.to_json() for a in rows], indent=1))
        return 0
    width = max(len(a.pipeline.name) for a in rows)
    for a in rows:
        state = "compile-only" if a.compile_only else ("available" if a.available else "unavailable")
        print(f"{a.pipeline.name:<{width}}  {state:<12}  {a.reason if not a.available or a.compile_only else ''}")
    n = sum(a.available for a in rows)
    print(f"{n} of {len(rows)} pipelines available")
    return 0
