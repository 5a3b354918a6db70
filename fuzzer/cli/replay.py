"""`parallax replay DIR`: re-check every corpus entry under DIR against the installed versions.

Exit 0 when every entry still reproduces with the same signature, 1 otherwise (fixed, changed, error),
2 on bad input (no such folder, an entry with a missing or corrupt file); the corpus is never written.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from fuzzer.cli.arg_types import positive_float
from fuzzer.cli.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="re-run every corpus entry's repro.py and re-check its signature "
                       "(exit 1 when any entry no longer reproduces the same way)")
    p.add_argument("corpus_dir", help="a corpus folder (subfolders with finding.json), or one entry")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--timeout", type=positive_float, default=600.0, help="seconds allowed per repro.py")
    p.add_argument("--no-signature-check", action="store_true",
                   help="only run repro.py; skip re-running the graph through Parallax to compare signatures")
    p.add_argument("--accept-signatures", action="store_true",
                   help="re-file entries whose repro.py reproduces but whose signature changed (after Parallax "
                        "changed how it identifies or blames failures): rewrites finding.json and report.md")
    p.add_argument("--work-dir", default=".work", help="worker logs and library caches")
    p.set_defaults(run=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from fuzzer.corpus.entry import EntryError
    from fuzzer.corpus.replay import load_entries, replay

    folder = Path(args.corpus_dir)
    try:
        entries = load_entries(folder)
    except EntryError as e:
        raise UsageError(str(e)) from None
    if not entries:
        raise UsageError(f"{folder}: holds no corpus entry (an entry is a folder with finding.json and repro.py)")
    if args.accept_signatures and args.no_signature_check:
        raise UsageError("--accept-signatures needs the signature check (drop --no-signature-check)")
    results = replay(entries, args.timeout, Path(args.work_dir), check_signature=not args.no_signature_check,
                     accept=args.accept_signatures)
    ok = all(r.status == "reproduces" for r in results)
    counts = Counter(r.status for r in results)
    if args.json:
        print(json.dumps({"corpus": str(folder), "ok": ok, "summary": dict(counts),
                          "signature_checked": not args.no_signature_check,
                          "entries": [r.to_json() for r in results]}, indent=1))
    else:
        _print_table(results)
        print(f"{len(results)} entries: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))
    return 0 if ok else 1


def _print_table(results: list[Any]) -> None:
    if not results:
        return
    w = max([len(r.entry) for r in results] + [5])
    print(f"{'entry':<{w}}  {'status':<17}  {'time s':>7}  detail")
    for r in results:
        print(f"{r.entry:<{w}}  {r.status:<17}  {r.seconds:>7.1f}  {r.detail[:160]}")
