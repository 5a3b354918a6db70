"""Campaign throughput with 1 worker vs 2 (the local engine), on the same seed range: the scaling ratio.

Each configuration is a real campaign (store, scheduler, gap feedback, follow-ups) into a fresh temporary
store, stopped after --cases cases. Throughput is measured from the store's case finish times, after the
first case of each worker (start-up and first imports are a warm-up): (cases - workers) divided by the time
from the workers-th finish to the last. Also printed: the parent's CPU seconds per case (generation, judging,
store writes), the share of one core the parent needs at that rate.

Default pipelines: a cheap subset (TorchScript export to ORT and the ONNX reference evaluator, tf2onnx to
ORT) so a run takes minutes, not hours; pass --pipelines to measure others. Skip rules are not learnt
(both configurations do the same work per case). Prints one JSON object.

    .venv/bin/python bench/scaling.py --cases 40
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzzer.campaign.engine_local import LocalEngine  # noqa: E402
from fuzzer.campaign.loop import Campaign, CampaignSettings  # noqa: E402
from fuzzer.campaign.scheduler import Scheduler, SharedGapBook  # noqa: E402
from fuzzer.campaign.store import DB_NAME, EVENTS_NAME, EventLog, Store  # noqa: E402
from fuzzer.case.runner import RunSettings  # noqa: E402
from fuzzer.targets.registry import resolve  # noqa: E402
from fuzzer.workers.pool import Limits  # noqa: E402
from fuzzer.workers.workdir import prepare, worker_env  # noqa: E402

CHEAP = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>onnxref,tf>tf2onnx>ort:disable:cpu"


def measure(workers: int, args: argparse.Namespace, root: Path) -> dict:
    pipelines = resolve([p for p in args.pipelines.split(",") if p])
    out = root / f"w{workers}"
    store = Store.create(out, args.seed, args.nodes, {"pipelines": [p.name for p in pipelines]})
    scheduler = Scheduler(pipelines, min_graphs=10**9)  # no skip rules: same work per case in both configurations
    gaps = SharedGapBook()
    work = prepare(root / "work")
    engine = LocalEngine(workers, scheduler, gaps, RunSettings(repeats=args.repeats), Limits(stage_timeout_s=120),
                         work / "logs", worker_env(work))
    events = EventLog(out / EVENTS_NAME)
    campaign = Campaign(store, engine, scheduler, gaps, events, CampaignSettings(None, args.cases, workers))
    cpu0, t0 = time.process_time(), time.perf_counter()
    summary = campaign.run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    events.close()
    store.close()
    con = sqlite3.connect(out / DB_NAME)
    finished = sorted(t for (t,) in con.execute("SELECT finished FROM cases"))
    statuses = dict(con.execute("SELECT status, count(*) FROM cases GROUP BY status").fetchall())
    con.close()
    steady = (len(finished) - workers) / (finished[-1] - finished[workers - 1]) if len(finished) > workers else 0.0
    return {"workers": workers, "cases": len(finished), "statuses": statuses, "wall_s": round(wall, 2),
            "cases_per_s": round(steady, 3), "cases_per_s_with_startup": round(len(finished) / wall, 3),
            "parent_cpu_s_per_case": round(cpu / max(1, len(finished)), 4), "stop_reason": summary.reason}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=40, help="cases per configuration")
    ap.add_argument("--pipelines", default=CHEAP)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per opt level (slowdown oracle)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="parallax-scaling-") as tmp:
        one = measure(1, args, Path(tmp))
        two = measure(2, args, Path(tmp))
    ratio = two["cases_per_s"] / one["cases_per_s"] if one["cases_per_s"] else None
    print(json.dumps({"bench": "scaling", "pipelines": args.pipelines.split(","), "nodes": args.nodes,
                      "seed": args.seed, "cores": len(os.sched_getaffinity(0)),
                      "load_avg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version(),
                      "one": one, "two": two, "ratio": round(ratio, 3) if ratio else None, "target": 1.7}))


if __name__ == "__main__":
    main()
