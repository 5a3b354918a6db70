"""Reach (and optionally line/branch coverage) of random generation per component, over a wall-clock budget
or a number of cases.

Each case is generated here (seed -> graph + values, as `parallax gen` does) and replayed through every route
(torch.export -> TVM; TorchScript, dynamo and tf2onnx exports -> TVM ONNX, onnxruntime, the reference
evaluator) in one isolated reach worker, exactly as `parallax coverage` replays saved cases. Worker start-up
counts against the budget. Guided generation (choice streams + atheris) is not built yet: only "random" runs.

    .venv/bin/python bench/coverage.py --minutes 10
    .venv/bin/python bench/coverage.py --count 200 --nodes 10 --no-lines
    .venv/bin/python bench/coverage.py --overhead 20
Prints one JSON line per mode: reach per component, line and branch coverage per package, distinct op pairs.

--overhead N measures what recording costs the campaign: N cases through the campaign's own case job
(fuzzer/reach/covered_job.py, which is fuzzer.targets.job.run_job when no coverage folder is given) on one
worker, each case once plain and once recorded, interleaved so both share the machine's drift; the first pair
(imports) is not counted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

# This file is named like coverage.py's package: take its own folder off the path, or `import coverage` finds it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from fuzzer.reach.linecov import package_report, read_arcs  # noqa: E402
from fuzzer.reach.replay import ROUTES  # noqa: E402
from fuzzer.reach.runner import ReachRunner  # noqa: E402
from generators.generate import GenConfig, generate  # noqa: E402
from generators.values import find_values  # noqa: E402


def run_random(args: argparse.Namespace, work: Path) -> dict:
    deadline = time.monotonic() + 60 * args.minutes if args.minutes else None
    cfg = GenConfig(nodes=args.nodes)
    coverage_dir = None if args.no_lines else work / "arcs"
    t0 = time.monotonic()
    with ReachRunner(work, coverage_dir, tuple(args.routes.split(",")), args.stage_timeout) as runner:
        seed = args.seed
        while (deadline is None or time.monotonic() < deadline) and (args.count is None or
                                                                     runner.tally.cases < args.count):
            graph, _ = generate(seed, cfg)
            values, _ = find_values(graph, seed)
            runner.run_case(f"seed {seed}", graph, values)
            seed += 1
        wall = time.monotonic() - t0
        summary = runner.summary()
    export_failures = {r: sum(1 for e in runner.errors if e["route"] == r and e["error"].startswith("export"))
                       for r in runner.tally.routes}
    line = {"mode": "random", "nodes": args.nodes, "seed": args.seed, "cases": runner.tally.cases,
            "wall_s": round(wall, 1), "cases_per_s": round(runner.tally.cases / wall, 3),
            "reach": {c: {"reached": s["reached"], "of": s["denominator"], "share": s["share"],
                          "registry": s["registry"], "excluded": s["excluded"], "by_route": s["by_route"],
                          "outside_registry": s["outside_registry"],
                          "excluded_but_reached": s["excluded_but_reached"]}
                      for c, s in summary["components"].items()},
            "routes": summary["routes"], "export_failures": export_failures, "worker_crashes": runner.crashes,
            "crashed": [e for e in runner.errors if e["status"] == "crashed"],
            "op_families": summary["graphs"]["op_families"], "op_pairs": summary["graphs"]["op_pairs"],
            "op_sequences": summary["graphs"]["op_sequences"], "distinct_bugs": None}
    if coverage_dir is not None:
        arcs, _ = read_arcs(coverage_dir)
        line["lines"] = {p: {k: s[k] for k in ("line_pct", "branch_pct", "lines_covered", "branches_covered")}
                         for p, s in package_report(arcs).items()}
    return line


def run_overhead(args: argparse.Namespace, work: Path) -> dict:
    from fuzzer.targets.arrays import pack_dict
    from fuzzer.workers.pool import Limits, Worker
    from fuzzer.workers.workdir import prepare, worker_env

    prepare(work)
    cfg = GenConfig(nodes=args.nodes)
    times: dict[str, list[float]] = {"plain": [], "recorded": []}
    with Worker("fuzzer.reach.covered_job:run_job", Limits(stage_timeout_s=args.stage_timeout), work / "logs",
                worker_env(work), name="overhead") as worker:
        for i, seed in enumerate(range(args.seed, args.seed + args.overhead + 1)):
            graph, _ = generate(seed, cfg)
            values, _ = find_values(graph, seed)
            base = {"op": "case", "graph": graph.wire(), "source": "torch", "repeats": 0,
                    "pipelines": args.pipelines.split(","), "stage_timeout_s": args.stage_timeout}
            blobs = {"inputs": pack_dict(values.inputs), "weights": pack_dict(values.weights)}
            recorded = {**base, "coverage_dir": str(work / "arcs"), "lines": i % args.lines_every == 0}
            order = [("plain", base), ("recorded", recorded)]
            for mode, request in order if i % 2 else order[::-1]:
                t0 = time.perf_counter()
                worker.run(request, blobs)
                if i > 0:
                    times[mode].append(time.perf_counter() - t0)
    plain, recorded = sum(times["plain"]), sum(times["recorded"])
    return {"mode": "overhead", "cases": len(times["plain"]), "pipelines": args.pipelines.split(","),
            "plain_cases_per_s": round(len(times["plain"]) / plain, 3),
            "recorded_cases_per_s": round(len(times["recorded"]) / recorded, 3),
            "lines_every": args.lines_every, "cases_per_s_lost": round(1 - plain / recorded, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget per mode")
    ap.add_argument("--count", type=int, default=None, help="stop after this many cases")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--routes", default=",".join(ROUTES))
    ap.add_argument("--no-lines", action="store_true", help="reach only (no coverage.py)")
    ap.add_argument("--stage-timeout", type=float, default=120.0)
    ap.add_argument("--work-dir", default=".work")
    ap.add_argument("--overhead", type=int, default=None, metavar="N",
                    help="instead: the cost of recording in the campaign's case job over N cases")
    ap.add_argument("--lines-every", type=int, default=1, help="with --overhead: trace lines on every k-th case "
                    "(reach is recorded on all)")
    ap.add_argument("--pipelines", default="torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>tvm:O0:llvm,"
                    "torch>onnx:dynamo>onnxref,torch>export>tvm:O3:llvm", help="with --overhead")
    args = ap.parse_args()
    if args.minutes is None and args.count is None:
        args.minutes = 10.0
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-coverage-", dir=args.work_dir))
    try:
        result = run_overhead(args, work) if args.overhead else run_random(args, work)
        print(json.dumps(result, sort_keys=True), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
