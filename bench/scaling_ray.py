"""The same campaign through the Ray engine (2 actors, a private Ray instance) and the local engine (2 worker
processes): cases/s of each and their ratio. Target: Ray within 15% of local (ratio >= 0.85).

Each configuration is a real campaign (store, scheduler, gap feedback, follow-ups) into a fresh temporary store,
over the same seed range, stopped after --cases cases. Throughput is steady state, from the store's case finish
times after each worker's first case (Ray's start, the actors' placement and the workers' first imports are
warm-up): (cases - workers) / (last finish - workers-th finish). With --rounds > 1 the two engines alternate
(local, ray, local, ray, ...) so that a machine shared with other work penalises both alike; the medians are
compared. Default pipelines: the cheap subset of bench/scaling.py. Prints one JSON object.

    .venv/bin/python bench/scaling_ray.py --cases 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzzer.campaign.engine_ray import make_engine  # noqa: E402
from fuzzer.campaign.loop import Campaign, CampaignSettings  # noqa: E402
from fuzzer.campaign.scheduler import Scheduler, SharedGapBook  # noqa: E402
from fuzzer.campaign.store import DB_NAME, EVENTS_NAME, EventLog, Store  # noqa: E402
from fuzzer.case.runner import RunSettings  # noqa: E402
from fuzzer.targets.registry import resolve  # noqa: E402
from fuzzer.workers.pool import Limits  # noqa: E402
from fuzzer.workers.workdir import prepare, worker_env  # noqa: E402

CHEAP = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>onnxref,tf>tf2onnx>ort:disable:cpu"
WORKERS = 2


def measure(kind: str, args: argparse.Namespace, root: Path, round_no: int) -> dict:
    pipelines = resolve([p for p in args.pipelines.split(",") if p])
    out = root / f"{kind}{round_no}"
    store = Store.create(out, args.seed, args.nodes, {"pipelines": [p.name for p in pipelines]})
    scheduler = Scheduler(pipelines, min_graphs=10**9)  # no skip rules: the same work per case in both engines
    gaps = SharedGapBook()
    work = prepare(root / "work")
    engine = make_engine(kind, WORKERS, scheduler, gaps, RunSettings(repeats=args.repeats),
                         Limits(stage_timeout_s=120), work, worker_env(work))
    events = EventLog(out / EVENTS_NAME)
    campaign = Campaign(store, engine, scheduler, gaps, events, CampaignSettings(None, args.cases, WORKERS))
    cpu0, t0, start = time.process_time(), time.perf_counter(), time.time()
    summary = campaign.run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    events.close()
    store.close()
    con = sqlite3.connect(out / DB_NAME)
    finished = sorted(t for (t,) in con.execute("SELECT finished FROM cases"))
    statuses = dict(con.execute("SELECT status, count(*) FROM cases GROUP BY status").fetchall())
    con.close()
    n = len(finished)
    steady = (n - WORKERS) / (finished[-1] - finished[WORKERS - 1]) if n > WORKERS else 0.0
    return {"engine": kind, "cases": n, "statuses": statuses, "wall_s": round(wall, 2),
            "warmup_s": round(finished[WORKERS - 1] - start, 2) if n >= WORKERS else None,
            "cases_per_s": round(steady, 3), "cases_per_s_with_startup": round(n / wall, 3),
            "driver_cpu_s_per_case": round(cpu / max(1, n), 4), "stop_reason": summary.reason,
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=30, help="cases per configuration")
    ap.add_argument("--rounds", type=int, default=1, help="alternating local/ray measurements of each")
    ap.add_argument("--pipelines", default=CHEAP)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=10, help="timed runs per opt level (slowdown oracle)")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"local": [], "ray": []}
    (Path(__file__).resolve().parent.parent / ".work").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scray", dir=Path(__file__).resolve().parent.parent / ".work") as tmp:
        for r in range(args.rounds):
            for kind in ("local", "ray"):
                runs[kind].append(measure(kind, args, Path(tmp), r))
    local = statistics.median(m["cases_per_s"] for m in runs["local"])
    ray = statistics.median(m["cases_per_s"] for m in runs["ray"])
    ratio = ray / local if local else None
    print(json.dumps({"bench": "scaling_ray", "pipelines": args.pipelines.split(","), "nodes": args.nodes,
                      "seed": args.seed, "workers": WORKERS, "cores": len(os.sched_getaffinity(0)),
                      "python": platform.python_version(), "local": runs["local"], "ray": runs["ray"],
                      "local_cases_per_s": round(local, 3), "ray_cases_per_s": round(ray, 3),
                      "ratio": round(ratio, 3) if ratio else None, "target": 0.85,
                      "within_target": bool(ratio and ratio >= 0.85)}))


if __name__ == "__main__":
    main()
