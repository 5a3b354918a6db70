"""`parallax gen`: write generated cases, or measure the generator (--stats)."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fuzzer.cli.arg_types import comma_names, positive_int
from fuzzer.cli.errors import UsageError
from generators.dtypes import ALL
from generators.generate import GenConfig, GenerationError, generate
from generators.ops import REGISTRY


def add_parser(sub: Any) -> None:
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
    g.set_defaults(run=run_gen)


def _config(args: argparse.Namespace) -> GenConfig:
    cfg = GenConfig(nodes=args.nodes, max_elems=args.max_elems, include=args.include,
                    exclude=tuple(args.exclude), dtypes=tuple(args.dtypes) if args.dtypes else ALL)
    try:
        cfg.ops()
    except GenerationError as e:
        raise UsageError(str(e)) from None
    return cfg


def _check_out(out: str | None) -> Path | None:
    """Refuse an --out we cannot write before generating anything (probe with a temporary file)."""
    if out is None:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    parent = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise UsageError(f"--out {out}: not writable ({e.strerror})") from None
    return path


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def run_gen(args: argparse.Namespace) -> int:
    from fuzzer.case.files import write_case
    from generators.values import find_values

    cfg = _config(args)
    out = _check_out(args.out)
    stats = GenStats()
    for seed in range(args.seed, args.seed + args.count):
        t0 = time.perf_counter()
        graph, report = generate(seed, cfg)
        gen_ms = (time.perf_counter() - t0) * 1000
        values, vreport = find_values(graph, seed)
        meta = {"seed": seed, "nodes_wanted": cfg.nodes, "nodes": len(graph.nodes), "hash": graph.content_hash(),
                "value_search": {"ok": vreport.ok, "method": vreport.method, "problems": vreport.problems}}
        if out is not None:
            write_case(out if args.count == 1 else out / f"case_{seed}", graph, values, meta)
        if args.stats:
            stats.add(graph, gen_ms, vreport.ok, None if args.no_check else values)
        elif args.count == 1 and out is None:
            sys.stdout.write(graph.dumps())
        if not vreport.ok:
            print(f"parallax: seed {seed}: value search gave up: {'; '.join(vreport.problems[:3])}", file=sys.stderr)
    if args.stats:
        print(json.dumps(stats.summary(not args.no_check), sort_keys=True))
    return 0


class GenStats:
    """Counts for --stats; 'valid' means eager torch AND eager TF ran with all-finite outputs."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self.nodes: list[int] = []
        self.valid = 0
        self.value_search_failed = 0
        self.invalid: dict[str, int] = {}
        self.families: set[str] = set()
        self.dtypes: set[str] = set()

    def add(self, graph: Any, gen_ms: float, values_ok: bool, values: Any) -> None:
        from generators.eager_check import eager_check

        self.ms.append(gen_ms)
        self.nodes.append(len(graph.nodes))
        self.families.update(n.op for n in graph.nodes)
        self.dtypes.update(t.dtype for t in graph.tensors.values())
        if not values_ok:
            self.value_search_failed += 1
        if values is not None:
            res = eager_check(graph, values)
            if res.ok:
                self.valid += 1
            else:
                key = f"{res.framework}: {res.reason[:80]}"
                self.invalid[key] = self.invalid.get(key, 0) + 1

    def summary(self, checked: bool) -> dict[str, Any]:
        n = len(self.ms)
        return {
            "generated": n,
            "valid": self.valid if checked else None,
            "valid_share": round(self.valid / n, 4) if checked and n else None,
            "value_search_gave_up": self.value_search_failed,
            "invalid_reasons": dict(sorted(self.invalid.items(), key=lambda kv: -kv[1])[:10]),
            "median_ms": round(statistics.median(self.ms), 3) if n else None,
            "p90_ms": round(percentile(self.ms, 0.9), 3) if n else None,
            "op_families_seen": len(self.families),
            "op_families_total": len(REGISTRY),
            "op_families_missing": sorted(set(REGISTRY) - self.families),
            "dtypes_seen": sorted(self.dtypes),
            "mean_nodes": round(statistics.mean(self.nodes), 3) if n else None,
            "timing": "generation only (z3 + concretise), materialisation and value search excluded",
        }
