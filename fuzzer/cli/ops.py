"""`parallax ops`: every operator family and the dtypes it is generated for."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    o = sub.add_parser("ops", help="list the operator families and their dtypes")
    o.set_defaults(run=run_ops)


def run_ops(args: argparse.Namespace) -> int:
    from generators.ops import REGISTRY

    for name in sorted(REGISTRY):
        print(f"{name:28s} {','.join(REGISTRY[name].dtypes)}")
    return 0
