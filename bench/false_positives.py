"""False-positive rate of the numeric oracle: random float32 graphs through the CPU pipelines.

Every mismatch finding the oracle reports is rechecked against the float64 reference (the same graph
with every float tensor in float64, run by the eager source): a reported mismatch is rounding noise
when each of the pipeline's outputs is at least as close to the float64 answer as allowed by the
float32 reference's own error there, i.e. |got - ref64| <= max(2 * |ref32 - ref64|_max, 8 * eps32 *
max(1, |ref64|_max)) for floats, and got == ref64 for ints/bools. The printed `false_positive_share`
is noise / reported mismatches; the target is <= 0.01.

    .venv/bin/python bench/false_positives.py --cases 300 [--workers 2] [--pipelines ...]
Progress goes to stderr as JSON lines; the result is one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzzer.case.runner import CaseRunner, RunSettings  # noqa: E402
from fuzzer.targets.registry import default_pipelines, resolve  # noqa: E402
from fuzzer.workers.pool import Limits, WorkerPool  # noqa: E402
from fuzzer.workers.workdir import prepare, worker_env  # noqa: E402
from generators.generate import GenConfig, generate  # noqa: E402
from generators.values import find_values  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)


def is_rounding_noise(got: list[np.ndarray], ref32: list[np.ndarray], ref64: list[np.ndarray]) -> bool:
    for g, r, w in zip(got, ref32, ref64):
        g, r, w = np.asarray(g), np.asarray(r), np.asarray(w)
        if g.shape != w.shape:
            return False
        if w.dtype.kind != "f":
            if not np.array_equal(g, w):
                return False
            continue
        if w.size == 0:
            continue
        w64, g64, r64 = w.astype(np.float64), g.astype(np.float64), r.astype(np.float64)
        finite = np.isfinite(w64)
        if not np.array_equal(np.isfinite(g64), finite):
            return False
        scale = max(1.0, float(np.max(np.abs(w64[finite]))) if finite.any() else 1.0)
        allowed = max(2.0 * float(np.max(np.abs(r64 - w64)[finite], initial=0.0)), 8 * EPS32 * scale)
        if float(np.max(np.abs(g64 - w64)[finite], initial=0.0)) > allowed:
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pipelines", help="comma-separated (default: every available CPU pipeline)")
    args = ap.parse_args()
    pipelines = resolve(args.pipelines.split(",")) if args.pipelines else [
        p for p in default_pipelines() if p.device in ("cpu", "llvm")]
    work = prepare(Path(tempfile.mkdtemp(prefix="parallax-fp-")))
    lock = threading.Lock()
    seeds = iter(range(args.seed, args.seed + 10 * args.cases))
    stats = {"cases": 0, "skipped_invalid": 0, "mismatch_findings": 0, "noise": 0, "not_rechecked": 0,
             "dropped_by_oracle_as_noise": 0, "crash_findings": 0, "gaps": 0}
    examples: list[dict] = []
    t0 = time.perf_counter()

    def next_case():
        with lock:
            while stats["cases"] < args.cases:
                s = next(seeds)
                g, _ = generate(s, GenConfig(nodes=args.nodes, dtypes=("float32",)))
                v, rep = find_values(g, s)
                if not rep.ok:
                    stats["skipped_invalid"] += 1
                    continue
                stats["cases"] += 1
                return s, g, v
        return None

    def drive(worker) -> None:
        runner = CaseRunner(worker, RunSettings(repeats=3, confirm_slowdowns=False, bisect_passes=False))
        while (item := next_case()) is not None:
            s, g, v = item
            r = runner.run_case(g, v, pipelines)
            with lock:
                stats["dropped_by_oracle_as_noise"] += len(r.verdict.noise)
                stats["gaps"] += len(r.verdict.gaps)
                for f in r.verdict.findings:
                    if f.symptom != "wrong_output":
                        stats["crash_findings"] += f.symptom in ("crash", "hang", "oom", "invalid_model")
                        continue
                    for p in f.pipelines:
                        stats["mismatch_findings"] += 1
                        src = p.split(">")[0]
                        ref = r.references[src]
                        out = r.outcomes[p].outputs
                        if ref.outputs64 is None or out is None:
                            stats["not_rechecked"] += 1
                            continue
                        noise = is_rounding_noise(out, ref.outputs, ref.outputs64)
                        stats["noise"] += noise
                        if len(examples) < 20:
                            examples.append({"seed": s, "pipeline": p, "component": f.component,
                                             "first_op": f.first_op, "noise": noise, "message": f.message[:200]})
                print(json.dumps({"seed": s, "done": stats["cases"], "elapsed_s": round(time.perf_counter() - t0, 1),
                                  **{k: stats[k] for k in ("mismatch_findings", "noise")}}), file=sys.stderr,
                      flush=True)

    with WorkerPool(args.workers, "fuzzer.targets.job:run_job", Limits(stage_timeout_s=120), work / "logs",
                    worker_env(work)) as pool:
        threads = [threading.Thread(target=drive, args=(w,)) for w in pool.workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    checked = stats["mismatch_findings"] - stats["not_rechecked"]
    print(json.dumps({
        "bench": "false_positives", "pipelines": [p.name for p in pipelines], "nodes": args.nodes,
        "dtypes": ["float32"], **stats,
        "false_positive_share": round(stats["noise"] / checked, 4) if checked else 0.0,
        "false_positives_per_case": round(stats["noise"] / max(stats["cases"], 1), 4),
        "seconds": round(time.perf_counter() - t0, 1), "examples": examples,
        "how": "each reported mismatch (per pipeline) is rechecked against the float64 reference; noise = the "
               "pipeline is within 2x the float32 reference's own error of the float64 answer",
    }))


if __name__ == "__main__":
    main()
