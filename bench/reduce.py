"""Reducer benchmark: how small, how fast, and whether the reduced case keeps the same signature.

Cases: the checked-in corpus's originals (`corpus/*/original/`, with their finding.json) and fresh
findings: random 10-node graphs from seeds --seed.. run through a cheap-but-varied pipeline set
(--pipelines; by default the TorchScript and dynamo exporters and tf2onnx into the ONNX reference
evaluator and onnxruntime, plus TVM O0/O3 through the TorchScript model) until --findings findings
with distinct signatures are collected. Each is reduced with its own budget; then the reduced case is
re-run in a fresh worker with every follow-up on, and must show a finding with the same signature; when
it does not, the original case is re-run there too, to tell an unstable finding from a reducer slip.

Prints one JSON object: median reduced size for crashes (crash, invalid model, hang) and for
mismatches, median reduction time, the share that kept the signature, and one row per case.

    .venv/bin/python bench/reduce.py --findings 20 --budget 150
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_PIPELINES = ("torch>onnx:torchscript>onnxref", "torch>onnx:torchscript>ort:disable:cpu",
                     "torch>onnx:torchscript>ort:all:cpu", "torch>onnx:dynamo>onnxref",
                     "torch>onnx:dynamo>ort:disable:cpu", "tf>tf2onnx>onnxref", "tf>tf2onnx>ort:disable:cpu",
                     "torch>onnx:torchscript>tvm:O0:llvm", "torch>onnx:torchscript>tvm:O3:llvm")
CRASH_SYMPTOMS = ("crash", "invalid_model", "hang")


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 3) if xs else None


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 3) if flags else None


def corpus_cases(corpus: Path) -> list[dict[str, Any]]:
    """Each `corpus/*/original/` case with the finding it was filed for."""
    from fuzzer.case.files import CaseError, read_case
    from fuzzer.cli.reduce import finding_from_json, read_finding

    out = []
    for folder in sorted(corpus.glob("*/original")):
        try:
            graph, values = read_case(folder)
            recorded = read_finding(folder) or read_finding(folder.parent)
        except (CaseError, Exception) as e:  # a broken entry is reported, not fatal
            out.append({"case": str(folder), "error": str(e)[:200]})
            continue
        if recorded is None:
            out.append({"case": str(folder), "error": "no finding.json"})
            continue
        pipes = list(recorded.get("pipelines_needed") or recorded["pipelines"])
        out.append({"case": str(folder), "graph": graph, "values": values, "finding": finding_from_json(recorded),
                    "pipelines": pipes})
    return out


def fresh_cases(runner: Any, pipelines: list[str], want: int, seed: int, max_seeds: int, nodes: int,
                deadline: float) -> tuple[list[dict[str, Any]], int]:
    """Random cases until `want` findings with distinct signatures (or the seeds or the time run out)."""
    from generators.generate import GenConfig, generate
    from generators.values import find_values
    from oracles.pipeline_id import parse_pipeline

    pids = [parse_pipeline(p) for p in pipelines]
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    scanned = 0
    for s in range(seed, seed + max_seeds):
        if len(out) >= want or time.perf_counter() > deadline:
            break
        scanned += 1
        graph, _ = generate(s, GenConfig(nodes=nodes))
        values, report = find_values(graph, s)
        if not report.ok:
            continue
        try:
            result = runner.run_case(graph, values, pids)
        except RuntimeError as e:
            print(f"seed {s}: harness error {e}", file=sys.stderr)
            continue
        for f in result.verdict.findings:
            if f.signature in seen or f.symptom == "slowdown":
                continue
            seen.add(f.signature)
            out.append({"case": f"seed {s}", "graph": graph, "values": values, "finding": f,
                        "pipelines": list(pipelines)})
            print(f"seed {s}: {f.signature} ({len(out)}/{want})", file=sys.stderr, flush=True)
            if len(out) >= want:
                break
    return out, scanned


def verify(worker: Any, graph: Any, values: Any, signature: str, pipelines: list[str]) -> bool:
    """An independent re-run (fresh runner, every follow-up on): the same signature must come out."""
    from fuzzer.case.runner import CaseRunner, RunSettings
    from oracles.pipeline_id import parse_pipeline

    runner = CaseRunner(worker, RunSettings(repeats=3))
    result = runner.run_case(graph, values, [parse_pipeline(p) for p in pipelines])
    return any(f.signature == signature for f in result.verdict.findings)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--findings", type=int, default=20, help="fresh findings with distinct signatures to reduce")
    ap.add_argument("--seed", type=int, default=0, help="first generator seed")
    ap.add_argument("--max-seeds", type=int, default=400, help="give up collecting after this many seeds")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--pipelines", default=",".join(DEFAULT_PIPELINES))
    ap.add_argument("--budget", type=float, default=150.0, help="seconds per reduction")
    ap.add_argument("--collect-budget", type=float, default=1800.0, help="seconds for collecting fresh findings")
    ap.add_argument("--corpus", default=str(ROOT / "corpus"))
    ap.add_argument("--work-dir", default=str(ROOT / ".work" / "bench_reduce"))
    args = ap.parse_args()

    from fuzzer.case.runner import CaseRunner, RunSettings
    from fuzzer.reduce import DoesNotReproduce, ReductionTarget, reduce_case
    from fuzzer.workers.pool import Limits, Worker
    from fuzzer.workers.workdir import prepare, worker_env

    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    work = prepare(Path(args.work_dir))
    limits = Limits(stage_timeout_s=60)
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with Worker("fuzzer.targets.job:run_job", limits, work / "logs", worker_env(work)) as worker:
        cases = corpus_cases(Path(args.corpus))
        n_corpus = len(cases)
        collect = CaseRunner(worker, RunSettings(repeats=0, confirm_slowdowns=False, stage_timeout_s=60))
        fresh, scanned = fresh_cases(collect, pipelines, args.findings, args.seed, args.max_seeds, args.nodes,
                                     time.perf_counter() + args.collect_budget)
        cases += fresh
        collect_s = time.perf_counter() - t_start
        for c in cases:
            if "error" in c:
                rows.append({"case": c["case"], "error": c["error"]})
                continue
            f = c["finding"]
            target = ReductionTarget.from_finding(f, c["pipelines"])
            row: dict[str, Any] = {"case": c["case"], "symptom": f.symptom, "signature": f.signature,
                                   "pipeline": target.pipeline, "nodes_before": len(c["graph"].nodes)}
            t0 = time.perf_counter()
            try:
                r = reduce_case(c["graph"], c["values"], target, worker, budget_s=args.budget, stage_timeout_s=60)
            except Exception as e:  # DoesNotReproduce, or a reducer bug: a row says so, the bench goes on
                kind = "" if isinstance(e, DoesNotReproduce) else f"{type(e).__name__}: "
                row.update(error=f"{kind}{e}"[:300], seconds=round(time.perf_counter() - t0, 2))
                rows.append(row)
                print(f"{c['case']}: {e}", file=sys.stderr, flush=True)
                continue
            row.update(nodes_after=r.stats["nodes_after"], elements_before=r.stats["elements_before"],
                       elements_after=r.stats["elements_after"], pipelines_needed=r.pipelines,
                       predicate_runs=r.stats["predicate_runs"], cache_hits=r.stats["cache_hits"],
                       budget_exhausted=r.stats["budget_exhausted"], seconds=round(time.perf_counter() - t0, 2),
                       reduced=(r.graph, r.values), original=(c["graph"], c["values"], c["pipelines"]))
            rows.append(row)
            print(f"{c['case']}: {row['nodes_before']} -> {row['nodes_after']} nodes in {row['seconds']} s "
                  f"({f.signature})", file=sys.stderr, flush=True)
    # independent re-check in a fresh worker
    with Worker("fuzzer.targets.job:run_job", limits, work / "logs", worker_env(work)) as checker:
        for row in rows:
            if "reduced" in row:
                g, v = row.pop("reduced")
                try:
                    row["same_signature"] = verify(checker, g, v, row["signature"], row["pipelines_needed"])
                    if not row["same_signature"]:  # is the finding itself stable in a fresh worker?
                        og, ov, opipes = row["original"]
                        row["original_reproduces_fresh"] = verify(checker, og, ov, row["signature"], opipes)
                except RuntimeError as e:
                    row["same_signature"] = False
                    row["verify_error"] = str(e)[:200]
            row.pop("original", None)
    done = [r for r in rows if "nodes_after" in r]
    crashes = [r["nodes_after"] for r in done if r["symptom"] in CRASH_SYMPTOMS]
    mismatches = [r["nodes_after"] for r in done if r["symptom"] == "wrong_output"]
    report = {
        "bench": "reduce", "pipelines": pipelines, "corpus_cases": n_corpus, "fresh_findings": len(fresh),
        "seeds_scanned": scanned, "collect_seconds": round(collect_s, 1), "budget_s": args.budget,
        "reduced": len(done), "failed": len(rows) - len(done),
        "crash": {"count": len(crashes), "median_nodes_after": _median(crashes), "target": 3},
        "mismatch": {"count": len(mismatches), "median_nodes_after": _median(mismatches), "target": 5},
        "median_nodes_before": _median([r["nodes_before"] for r in done]),
        "median_seconds": _median([r["seconds"] for r in done]), "target_seconds": 90,
        "same_signature_share": _share([bool(r.get("same_signature")) for r in done]),
        # findings whose original case shows the signature again in a fresh worker (the others depend on the
        # worker's history or hash seed: no reduction can be checked against them)
        "same_signature_share_stable": _share([bool(r.get("same_signature")) for r in done
                                               if r.get("original_reproduces_fresh", True)]),
        "unstable_findings": [r["signature"] for r in done if r.get("original_reproduces_fresh") is False],
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "rows": rows,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
