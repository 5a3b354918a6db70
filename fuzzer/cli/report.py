"""`parallax report OUT`: distinct bugs, plots, coverage of a campaign store, as text, JSON, HTML, JUnit or
Markdown, and with `--since` the nightly view (new / vanished bugs). Reads the store, never writes it.

Exit 0 whatever the store holds (a nightly command decides its own status), 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from fuzzer.cli.errors import UsageError

DEFAULT_HTML = "report.html"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="summarise a campaign folder: distinct bugs, plots, coverage, --since view")
    p.add_argument("out", metavar="OUT", help="campaign folder (holds parallax.db), e.g. crashes/")
    p.add_argument("--html", nargs="?", const="", metavar="FILE",
                   help=f"write one self-contained HTML file (default FILE: OUT/{DEFAULT_HTML}; with no FILE, put "
                        "OUT before --html)")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML: one failing test case per distinct bug")
    p.add_argument("--markdown", action="store_true", help="print a Markdown summary to stdout")
    p.add_argument("--since", metavar="PREVIOUS_RUN",
                   help="what is new / vanished since a run id of this store, or since another campaign folder")
    p.set_defaults(run=run_report)


def _target(path_text: str, forbidden: list[Path], what: str) -> Path:
    """A file the report may write: its folder exists, it is not a folder, and it is not a store's database."""
    path = Path(path_text)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder (--{what} wants a file name)")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent}: no such folder (for --{what})")
    resolved = path.resolve()
    for f in forbidden:
        if resolved in (f, f.with_name(f.name + "-wal"), f.with_name(f.name + "-shm")):
            raise UsageError(f"{path}: refusing to overwrite the store's database with --{what}")
    return path


def _one_line(e: Exception) -> str:
    return " ".join(str(e).splitlines())


def _write(path: Path, data: bytes) -> None:
    """Temp file + rename: a reader of the old report never sees half a new one. (fuzzer.case.files has the same
    helper, but importing it pulls in torch, seconds a report need not wait.)"""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write ({e.strerror or e})") from None
    print(f"wrote {path}", file=sys.stderr)


def run_report(args: argparse.Namespace) -> int:
    from fuzzer.report.load import load_report
    from fuzzer.report.since import compare_runs
    from fuzzer.report.store_read import StoreError, db_path

    if args.json and args.markdown:
        raise UsageError("--json and --markdown both print to stdout: choose one")
    out = Path(args.out)
    try:
        dbs = [db_path(out).resolve()]
        if args.since is not None and not args.since.strip().isdigit():
            dbs.append(db_path(Path(args.since)).resolve())
    except StoreError as e:
        raise UsageError(_one_line(e)) from None
    html_path = None if args.html is None else _target(args.html or str(out / DEFAULT_HTML), dbs, "html")
    junit_path = None if args.junit is None else _target(args.junit, dbs, "junit")
    try:
        data = load_report(out)
        since = compare_runs(out, args.since) if args.since is not None else None
    except StoreError as e:
        raise UsageError(_one_line(e)) from None
    if html_path is not None:
        from fuzzer.report.html import render_html
        _write(html_path, render_html(data, since).encode())
    if junit_path is not None:
        from fuzzer.report.junit import render_junit
        _write(junit_path, render_junit(data))
    if args.json:
        obj = data.to_json()
        if since is not None:
            obj["since"] = since.to_json()
        print(json.dumps(obj, indent=1, default=str))
    elif args.markdown:
        from fuzzer.report.markdown import render_markdown
        sys.stdout.write(render_markdown(data, since))
    elif html_path is None and junit_path is None:
        from fuzzer.report.text import render_text
        sys.stdout.write(render_text(data, since))
    return 0
