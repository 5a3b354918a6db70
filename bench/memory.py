"""Resident memory of a long campaign: does it stay flat after the first minutes?

Runs a real `parallax fuzz` (default 30 minutes, every CPU pipeline) into a temporary folder and reads
the store's `snapshots` table: every ~10 s the campaign records the resident memory of all its processes
(the parent, each worker and the background reducer's worker, with their children, summed from /proc).
Baseline = mean over minute 5-6; end = mean over the last minute (the shutdown snapshot left out);
growth = end / baseline - 1 (target < 10%); the largest snapshot after minute 5 is reported too.

    .venv/bin/python bench/memory.py [--time 30m] [--workers 2] [--pipelines ...]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fuzzer.cli.fuzz import parse_duration  # noqa: E402


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", default="30m")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pipelines", help="comma-separated (default: every available CPU pipeline)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    seconds = parse_duration(args.time)
    out = Path(tempfile.mkdtemp(prefix="parallax-memory-")) / "crashes"
    cmd = [sys.executable, "-m", "fuzzer.cli", "fuzz", "--time", str(int(seconds)), "--workers", str(args.workers),
           "--seed", str(args.seed), "--out", str(out), "--quiet", "--work-dir", str(out.parent / "work")]
    if args.pipelines:
        cmd += ["--pipelines", args.pipelines]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True,
                          text=True)
    con = sqlite3.connect(out / "parallax.db")
    snaps = con.execute("SELECT time, rss_mb, cases FROM snapshots ORDER BY time").fetchall()
    start = con.execute("SELECT min(started) FROM runs").fetchone()[0]
    # The last snapshot is taken at shutdown, after the workers were told to go: not a running campaign.
    rel = [(t - start, rss, cases) for t, rss, cases in snaps if rss][:-1]
    base = mean([r for t, r, _ in rel if 300 <= t < 360])
    end_t = rel[-1][0] if rel else 0.0
    end = mean([r for t, r, _ in rel if t >= end_t - 60])
    after5 = [r for t, r, _ in rel if t >= 300]
    result = {
        "bench": "memory", "exit_code": proc.returncode, "campaign_seconds": round(time.time() - t0, 1),
        "workers": args.workers, "pipelines": args.pipelines or "every available CPU pipeline",
        "cases": rel[-1][2] if rel else 0, "snapshots": len(rel),
        "rss_mb_first": rel[0][1] if rel else None, "rss_mb_at_5_to_6_min": base and round(base, 1),
        "rss_mb_last_minute": end and round(end, 1), "rss_mb_max_after_5_min": max(after5) if after5 else None,
        "growth_after_5_min": round(end / base - 1, 4) if base and end else None,
        "max_growth_after_5_min": round(max(after5) / base - 1, 4) if base and after5 else None,
        "series": [[round(t), round(r)] for t, r, _ in rel[:: max(1, len(rel) // 60)]],
        "how": "RSS of the campaign's parent, workers and reducer worker (and their children) from /proc, "
               "recorded by the campaign every ~10 s; growth = mean(last minute) / mean(minute 5-6) - 1",
        "stderr_tail": proc.stderr[-500:] if proc.returncode else "",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
