"""The `parallax` command line. Bad input: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from fuzzer.cli.errors import UsageError

EXIT_USAGE = 2
# One module per command: each has `add_parser(subparsers)` that registers its arguments and sets
# `run=<function(args) -> int>` as a default. A module imports heavy libraries only inside `run`.
COMMAND_MODULES = ("fuzzer.cli.gen", "fuzzer.cli.ops", "fuzzer.cli.run", "fuzzer.cli.targets", "fuzzer.cli.fuzz",
                   "fuzzer.cli.report", "fuzzer.cli.nightly", "fuzzer.cli.devices", "fuzzer.cli.reduce",
                   "fuzzer.cli.replay", "fuzzer.cli.check", "fuzzer.cli.coverage")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="parallax", description="Graph fuzzer for DL converters and compilers.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args))
    except UsageError as e:
        print(f"parallax: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
