"""Test cases per second through chosen pipelines on one worker, and the harness overhead.

Measured: generation (seed -> graph + values) in this process; each case then goes through
`CaseRunner.run_case` on one persistent worker exactly as `parallax run` does (reference, every stage,
the timed runs of the slowdown oracle, follow-ups). "Inside the systems under test" is the sum of the
stage times the worker measured around each call into torch/TF/ONNX/ORT/TVM; harness overhead is the
rest of the time the caller spent waiting on the worker (IPC, (de)serialisation, materialising
modules, bookkeeping), as a share of that wait. The first case (worker start-up, library imports) is
a warm-up and is not counted.

    .venv/bin/python bench/throughput.py --pipelines 'torch>onnx:torchscript>ort:all:cpu' --cases 100
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzzer.case.runner import CaseRunner, RunSettings  # noqa: E402
from fuzzer.targets.registry import resolve  # noqa: E402
from fuzzer.workers.pool import Limits, Worker  # noqa: E402
from fuzzer.workers.workdir import prepare, worker_env  # noqa: E402
from generators.generate import GenConfig, generate  # noqa: E402
from generators.values import find_values  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pipelines", default="torch>onnx:torchscript>ort:all:cpu")
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per opt level (slowdown oracle)")
    args = ap.parse_args()
    pipelines = resolve([p for p in args.pipelines.split(",") if p])

    t0 = time.perf_counter()
    cases = []
    for s in range(args.seed, args.seed + args.cases + 1):
        g, _ = generate(s, GenConfig(nodes=args.nodes))
        v, _ = find_values(g, s)
        cases.append((g, v))
    gen_s = time.perf_counter() - t0

    work = prepare(Path(tempfile.mkdtemp(prefix="parallax-bench-")))
    sut = wait = wall = 0.0
    per_case = []
    findings = 0
    with Worker("fuzzer.targets.job:run_job", Limits(stage_timeout_s=120), work / "logs", worker_env(work)) as w:
        runner = CaseRunner(w, RunSettings(repeats=args.repeats))
        runner.run_case(*cases[0], pipelines)  # warm-up: worker start-up and first imports
        for g, v in cases[1:]:
            r = runner.run_case(g, v, pipelines)
            per_case.append(r.seconds)
            wall += r.seconds
            wait += r.worker_seconds
            sut += r.sut_seconds
            findings += len(r.verdict.findings)
    out = {
        "bench": "throughput", "python": platform.python_version(), "pipelines": [p.name for p in pipelines],
        "cases": args.cases, "nodes": args.nodes, "workers": 1,
        "cases_per_s": round(args.cases / wall, 2),
        "cases_per_s_with_generation": round(args.cases / (wall + gen_s * args.cases / (args.cases + 1)), 2),
        "median_case_ms": round(1000 * statistics.median(per_case), 2),
        "generation_ms_per_case": round(1000 * gen_s / (args.cases + 1), 2),
        "worker_wait_s": round(wait, 3), "inside_systems_under_test_s": round(sut, 3),
        "harness_overhead_share": round((wait - sut) / wait, 4) if wait else None,
        "caller_overhead_s": round(wall - wait, 3), "findings": findings,
        "how": "one worker; stage times measured in the worker around each call into a system under test; "
               "overhead = (time waiting on the worker - time inside systems under test) / time waiting; "
               "the first case is a warm-up and is excluded",
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
