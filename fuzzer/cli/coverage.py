"""`parallax coverage OUT_OR_CORPUS`: how much of each converter and compiler the saved cases exercise.

Replays every saved case (a campaign's examples, a corpus, or generated cases) through each route in an
isolated worker, or reads what a campaign recorded with coverage on, and prints per component the reach
(registry keys exercised / reachable keys, the unreached list, the excluded keys with their rule), line and
branch coverage per Python package, and the graphs' op-family, op-pair and op-sequence coverage.

Exit 0, or 2 on bad input (no store, entries or cases; a corrupt file): one line, nothing written. The input
folder is only read; worker logs and coverage data go under --work-dir and are removed afterwards.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from fuzzer.cli.arg_types import comma_names, positive_float, positive_int
from fuzzer.cli.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("coverage", help="reach and line/branch coverage of each converter and compiler over saved "
                       "cases (a campaign folder, a corpus, or generated cases)")
    p.add_argument("out", metavar="OUT_OR_CORPUS", help="a campaign folder, a corpus (or one entry), or a folder of "
                   "cases from `parallax gen --out`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    p.add_argument("--html", metavar="DIR", help="write an HTML report to DIR (reach tables, and coverage.py's "
                   "annotated sources under DIR/lines/)")
    p.add_argument("--routes", type=comma_names, help="comma-separated routes to replay (default: export, "
                   "onnx:torchscript, onnx:dynamo, tf2onnx)")
    p.add_argument("--no-lines", action="store_true", help="reach only: skip line and branch coverage (faster)")
    p.add_argument("--stage-timeout", type=positive_float, default=120.0, help="seconds allowed per stage")
    p.add_argument("--memory-mb", type=positive_int, default=8192, help="worker memory limit (resident MiB)")
    p.add_argument("--work-dir", default=".work", help="worker logs and temporary coverage data")
    p.set_defaults(run=run_coverage)


def _check_html(target: str | None) -> Path | None:
    if target is None:
        return None
    path = Path(target)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--html {target}: exists and is not a folder")
    if not (path if path.exists() else path.parent).is_dir():
        raise UsageError(f"--html {target}: {path.parent} is not a folder")
    return path


def run_coverage(args: argparse.Namespace) -> int:
    from fuzzer.reach.inputs import InputError, load
    from fuzzer.reach.replay import ROUTES

    routes = tuple(args.routes) if args.routes else ROUTES
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        raise UsageError(f"--routes: unknown route(s) {', '.join(unknown)} (known: {', '.join(ROUTES)})")
    html_dir = _check_html(args.html)
    try:
        found = load(Path(args.out))
    except InputError as e:
        raise UsageError(" ".join(str(e).splitlines())) from None
    report = measure(found, routes, Path(args.work_dir), not args.no_lines, args, html_dir)
    if html_dir is not None:
        write_html(report, html_dir)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        sys.stdout.write(render_text(report))
    return 0


def measure(found: Any, routes: tuple[str, ...], work: Path, lines: bool, args: argparse.Namespace,
            html_dir: Path | None) -> dict[str, Any]:
    from fuzzer.reach.linecov import package_report, read_arcs
    from fuzzer.reach.runner import ReachRunner

    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="coverage-", dir=work))
    try:
        with ReachRunner(tmp, tmp / "arcs" if lines else None, routes, args.stage_timeout,
                         args.memory_mb) as runner:
            if found.kind == "recorded":
                runner.tally = found.recorded
            for label, graph, values in found.cases:
                runner.run_case(label, graph, values)
            summary = runner.summary()
        if found.kind == "recorded":
            arcs = found.arcs if lines else None
        else:
            arcs = read_arcs(tmp / "arcs")[0] if lines else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {"input": found.kind, "cases": runner.tally.cases, **summary, "worker_crashes": runner.crashes,
              "route_errors": runner.errors}
    if arcs is not None:
        report["lines"] = package_report(arcs, html_dir=html_dir / "lines" if html_dir else None)
    return report


def render_text(report: dict[str, Any]) -> str:
    out = [f"{report['cases']} case(s) from {report['input']}", "",
           f"{'component':16s} {'reached':>8s} {'of':>5s} {'share':>7s} {'excl':>5s} {'outside':>7s}  routes"]
    for c, s in report["components"].items():
        routes = ", ".join(f"{r} {n}" for r, n in s["by_route"].items())
        out.append(f"{c:16s} {s['reached']:8d} {s['denominator']:5d} {100 * s['share']:6.1f}% {s['excluded']:5d} "
                   f"{len(s['outside_registry']):7d}  {routes}")
    out += ["", "routes: " + "; ".join(f"{r}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
                                       for r, c in report["routes"].items())]
    g = report["graphs"]
    out.append(f"graphs: {g['op_families']}/{g['op_families_total']} op families, {g['op_pairs']} op pairs, "
               f"{g['op_sequences']} op sequences (length 3)")
    if "lines" in report:
        out += ["", f"{'package':20s} {'lines':>15s} {'line %':>7s} {'branches':>15s} {'branch %':>8s} "
                    f"{'files run':>10s}"]
        for p, s in report["lines"].items():
            out.append(f"{p:20s} {s['lines_covered']:>7d}/{s['lines']:<7d} {s['line_pct']:6.1f}% "
                       f"{s['branches_covered']:>7d}/{s['branches']:<7d} {s['branch_pct']:7.1f}% "
                       f"{s['files_run']:>4d}/{s['files']:<5d}")
    for c, s in report["components"].items():
        out += ["", f"{c}: {s['title']} ({s['registry_where']}{', opset ' + str(s['opset']) if s['opset'] else ''})"]
        out += _wrapped("unreached", s["unreached"])
        out += _wrapped("outside the registry (looked up, no entry)", s["outside_registry"])
        out += _wrapped("excluded but reached (a wrong rule)", s["excluded_but_reached"])
        by_rule: dict[str, list[str]] = {}
        for key, rule in s["excluded_keys"].items():
            by_rule.setdefault(rule, []).append(key)
        for rule, keys in sorted(by_rule.items()):
            out += _wrapped(f"excluded ({rule})", keys)
    out += ["", "exclusion rules:"]
    out += [f"  {r['rule']}: {r['reason']}" for r in report["exclusion_rules"]]
    return "\n".join(out) + "\n"


def _wrapped(title: str, keys: list[str]) -> list[str]:
    if not keys:
        return []
    return textwrap.wrap(f"{title} ({len(keys)}): " + ", ".join(keys), 118, initial_indent="  ",
                         subsequent_indent="    ")


def write_html(report: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(c)}</td><td>{esc(s['title'])}</td><td>{s['reached']}</td><td>{s['denominator']}"
                   f"</td><td>{100 * s['share']:.1f}%</td><td>{s['excluded']}</td></tr>"
                   for c, s in report["components"].items())
    lists = "".join(f"<h3>{esc(c)}: unreached ({len(s['unreached'])})</h3><p>{esc(', '.join(s['unreached']))}</p>"
                    for c, s in report["components"].items())
    lines = ""
    if "lines" in report:
        lines = ("<h2>Line and branch coverage</h2><p><a href='lines/index.html'>annotated sources</a></p><table>"
                 "<tr><th>package</th><th>line %</th><th>branch %</th></tr>"
                 + "".join(f"<tr><td>{esc(p)}</td><td>{s['line_pct']}</td><td>{s['branch_pct']}</td></tr>"
                           for p, s in report["lines"].items()) + "</table>")
    page = (f"<!doctype html><meta charset='utf-8'><title>Parallax reach</title><h1>Reach over {report['cases']} "
            f"case(s)</h1><table><tr><th>component</th><th>registry</th><th>reached</th><th>reachable</th>"
            f"<th>share</th><th>excluded</th></tr>{rows}</table>{lines}{lists}")
    (folder / "index.html").write_text(page)
