"""The `parallax` command line. Bad input: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from fuzzer.arg_types import comma_names, positive_float, positive_int
from fuzzer.errors import UsageError

EXIT_USAGE = 2
# Commands that live in their own module: each has `add_parser(subparsers)` that registers its arguments and
# sets `run=<function(args) -> int>` as a default. The module must import heavy libraries only inside `run`.
COMMAND_MODULES = ("fuzzer.fuzz_command", "fuzzer.report_command", "fuzzer.nightly_command", "fuzzer.devices",
                   "fuzzer.reduce_command", "fuzzer.replay_command")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="parallax", description="Graph fuzzer for DL converters and compilers.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    g = sub.add_parser("gen", help="generate random valid graphs (one case, or --count of them with --stats)")
    g.add_argument("--seed", type=int, default=0, help="seed (the first seed with --count)")
    g.add_argument("--nodes", type=positive_int, default=10, help="node-count target")
    g.add_argument("--count", type=positive_int, default=1, help="how many graphs (seeds seed..seed+count-1)")
    g.add_argument("--out", help="folder to write the case(s) to (graph.json, inputs.npz, weights.npz, case.json)")
    g.add_argument("--stats", action="store_true", help="print one JSON object of generation statistics")
    g.add_argument("--include", type=comma_names, help="comma-separated op names to use (default: all)")
    g.add_argument("--exclude", type=comma_names, default=(), help="comma-separated op names to leave out")
    g.add_argument("--dtypes", type=comma_names, help="comma-separated dtypes allowed (default: all)")
    g.add_argument("--max-elems", type=positive_int, default=1 << 16, help="bound on elements per tensor")
    g.add_argument("--no-check", action="store_true", help="with --stats: skip the eager torch/TF validity runs")
    sub.add_parser("ops", help="list the operator families and their dtypes")
    r = sub.add_parser("run", help="run one case through the pipelines and judge it (exit 1 when it finds bugs)")
    r.add_argument("case_dir", help="a case folder from `parallax gen --out`")
    r.add_argument("--pipelines", type=comma_names, help="comma-separated pipelines (default: every available one; "
                   "see `parallax targets`)")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    r.add_argument("--repeats", type=positive_int, default=10, help="timed runs per optimisation level")
    r.add_argument("--stage-timeout", type=positive_float, default=120.0, help="seconds allowed per stage")
    r.add_argument("--memory-mb", type=positive_int, default=8192, help="worker memory limit (resident MiB)")
    r.add_argument("--work-dir", default=".work", help="worker logs and library caches")
    t = sub.add_parser("targets", help="list every pipeline, available or not, and why")
    t.add_argument("--json", action="store_true", help="print JSON")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "gen":
            from fuzzer.gen_command import run_gen
            return run_gen(args)
        if args.command == "run":
            from fuzzer.run_command import run_case_command
            return run_case_command(args)
        if args.command == "targets":
            from fuzzer.run_command import run_targets
            return run_targets(args)
        if args.command == "ops":
            from fuzzer.gen_command import run_ops
            return run_ops()
        if hasattr(args, "run"):
            return int(args.run(args))
    except UsageError as e:
        print(f"parallax: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
