"""Generator benchmark: prints one JSON line per graph size, then a coverage line.

For 10-, 20- and 30-node graphs (200 seeds each): generation time (z3 + concretise only,
measured with perf_counter around `generate`), validity (value search, then eager torch AND
eager TF with all-finite outputs and IR-exact shapes/dtypes), families seen. Then 1,000
10-node graphs (generation only) for family coverage.
Usage: .venv/bin/python bench/generate.py [--seeds 200] [--coverage 1000] [--sizes 10,20,30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fuzzer.cli.gen import percentile  # noqa: E402
from generators.eager_check import eager_check  # noqa: E402
from generators.generate import GenConfig, generate  # noqa: E402
from generators.ops import REGISTRY  # noqa: E402
from generators.values import find_values  # noqa: E402


def size_run(nodes: int, seeds: int) -> dict:
    ms, made, fams = [], [], set()
    valid, vs_fail = 0, 0
    why: Counter = Counter()
    for seed in range(seeds):
        t0 = time.perf_counter()
        g, _ = generate(seed, GenConfig(nodes=nodes))
        ms.append((time.perf_counter() - t0) * 1000)
        made.append(len(g.nodes))
        fams.update(n.op for n in g.nodes)
        values, rep = find_values(g, seed)
        if not rep.ok:
            vs_fail += 1
            why["value search gave up: " + rep.problems[0].split(": ", 1)[-1][:60]] += 1
            continue
        res = eager_check(g, values)
        if res.ok:
            valid += 1
        else:
            why[f"{res.framework}: {res.reason[:80]}"] += 1
    return {"bench": "generate", "nodes": nodes, "seeds": seeds, "median_ms": round(statistics.median(ms), 2),
            "p90_ms": round(percentile(ms, 0.9), 2), "mean_nodes": round(statistics.mean(made), 2),
            "validity": round(valid / seeds, 4), "valid": valid, "value_search_gave_up": vs_fail,
            "invalid_reasons": dict(why.most_common(6)), "families_seen": len(fams)}


def coverage_run(count: int) -> dict:
    seen: Counter = Counter()
    for seed in range(count):
        g, _ = generate(10_000 + seed, GenConfig(nodes=10))
        seen.update(n.op for n in g.nodes)
    missing = sorted(set(REGISTRY) - set(seen))
    return {"bench": "coverage", "graphs": count, "nodes": 10, "families_total": len(REGISTRY),
            "families_seen": len(seen), "missing": missing, "rarest": seen.most_common()[-5:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--coverage", type=int, default=1000)
    ap.add_argument("--sizes", default="10,20,30")
    a = ap.parse_args()
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
           "how": "median/p90 of wall time of generate() per graph; validity = eager torch and TF both ran, "
                  "finite outputs, shapes/dtypes equal the IR"}
    print(json.dumps({"bench": "env", **env}), flush=True)
    for n in (int(x) for x in a.sizes.split(",")):
        print(json.dumps(size_run(n, a.seeds)), flush=True)
    if a.coverage:
        print(json.dumps(coverage_run(a.coverage)), flush=True)


if __name__ == "__main__":
    main()
