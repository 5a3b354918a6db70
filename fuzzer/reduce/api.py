"""The reducer's library entry points: find what to reduce, and reduce it in a given worker.

The campaign calls `reduce_case` for every new signature (in the background, with its own worker);
`parallax reduce` calls the same. A budget (seconds, predicate runs) bounds the work: when it runs
out the best candidate so far comes back, still showing the same bug.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fuzzer.case.runner import CaseResult, CaseRunner, RunSettings
from fuzzer.reduce.passes import DEFAULT_PASSES, Pass
from fuzzer.reduce.shrinker import Candidate, Shrinker, complexity
from fuzzer.reduce.target import DoesNotReproduce, ReductionTarget, SameBug, pipeline_cost
from fuzzer.workers.pool import Worker
from generators.ir import Graph
from generators.values import Values
from oracles.blame import lowest_level
from oracles.judge import Finding
from oracles.pipeline_id import ONNX_CONVERTERS, parse_pipeline


@dataclass
class ReductionResult:
    graph: Graph
    values: Values
    finding: Finding  # the target as the reduced case shows it
    pipelines: list[str]  # the pipelines needed to show it (the target's and the controls of its blame)
    stats: dict[str, Any] = field(default_factory=dict)
    evidence: CaseResult | None = None  # the run that showed `finding` on the reduced case (outcomes, models)


def find_target(graph: Graph, values: Values, worker: Worker, pipelines: list[str], signature: str | None = None,
                stage_timeout_s: float = 120.0) -> ReductionTarget:
    """Run the case once with every follow-up and pick its first finding (or the one with `signature`)."""
    runner = CaseRunner(worker, RunSettings(repeats=3, stage_timeout_s=stage_timeout_s))
    result = runner.run_case(graph, values, [parse_pipeline(p) for p in pipelines])
    findings = result.verdict.findings
    if signature:
        findings = [f for f in findings if f.signature == signature or f.signature.startswith(signature)]
    if not findings:
        what = f"no finding with signature {signature!r}" if signature else "no finding"
        raise DoesNotReproduce(f"does not reproduce: {what} over {len(pipelines)} pipeline(s)")
    return ReductionTarget.from_finding(findings[0], pipelines)


def control_pipelines(finding_pipelines: list[str], available: list[str]) -> list[str]:
    """A compact pipeline set that can still show a finding and its blame: the finding's pipelines, the
    lowest opt level of each, and the unoptimised consumers of the same exported model."""
    keep = list(dict.fromkeys(finding_pipelines))
    for name in finding_pipelines:
        pid = parse_pipeline(name)
        low = lowest_level(pid)
        if low is not None:
            keep.append(low.name)
        if pid.converter in ONNX_CONVERTERS:
            for other in available:
                q = parse_pipeline(other)
                if (q.source, q.converter) == (pid.source, pid.converter) and (
                        q.backend == "onnxref" or (q.backend == "ort" and q.level == "disable")):
                    keep.append(other)
    return sorted(set(p for p in keep if p in available or p in finding_pipelines), key=pipeline_cost)


def reduce_case(graph: Graph, values: Values, target: ReductionTarget, worker: Worker, budget_s: float | None = None,
                progress: Callable[[str], None] | None = None, max_runs: int | None = None,
                stage_timeout_s: float = 120.0, passes: list[tuple[str, Pass]] | None = None) -> ReductionResult:
    """The smallest case found that still shows `target` (same signature, symptom and stage on its pipeline).

    Raises DoesNotReproduce when the case does not show it at the start."""
    t0 = time.perf_counter()
    test = SameBug(target, CaseRunner(worker, target.settings(stage_timeout_s)))
    found = test(graph, values, target.pipelines)
    if found is None:
        extra = f" (harness: {test.harness_errors[-1]})" if test.harness_errors else ""
        raise DoesNotReproduce(f"does not reproduce: no finding {target.signature} on {target.pipeline}{extra}")
    start = Candidate(graph, values, tuple(sorted(target.pipelines)))
    remaining = None if budget_s is None else max(0.0, budget_s - (time.perf_counter() - t0))
    sh = Shrinker(start, found, test, remaining, None if max_runs is None else max(0, max_runs - 1), progress,
                  required_pipeline=target.anchor,
                  controls=tuple(control_pipelines([target.pipeline], list(target.pipelines))))
    best = sh.run(passes or DEFAULT_PASSES)
    s = sh.stats
    before, after = complexity(start), complexity(best)
    stats = {
        "nodes_before": len(graph.nodes), "nodes_after": len(best.graph.nodes),
        "elements_before": before[1], "elements_after": after[1],
        "pipelines_before": len(start.pipelines), "pipelines_after": len(best.pipelines),
        "candidates_tried": s.candidates, "predicate_runs": s.predicate_runs + 1, "cache_hits": s.cache_hits,
        "invalid_candidates": s.invalid, "not_simpler": s.not_simpler, "accepted": s.accepted,
        "accepted_by_pass": dict(s.accepted_by_pass), "budget_exhausted": s.budget_exhausted,
        "harness_errors": test.harness_errors[-5:], "pass_errors": list(s.pass_errors),
        "seconds": round(time.perf_counter() - t0, 3), "signature": target.signature, "pipeline": target.pipeline,
    }
    return ReductionResult(best.graph, best.values, sh.finding, list(best.pipelines), stats, test.last_match)
