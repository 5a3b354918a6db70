"""The reducer's predicate: "the same bug", never merely "a bug".

A candidate reproduces the target when its judged verdict holds a finding with the same identity, symptom
and stage on the target's pipeline (and the same culprit pass when one was named). The identity is the failure
itself, never a blame label that depends on which control pipelines ran: for a crash its signature (what raised,
stage, kind, type, normalised message), for a mismatch the first diverging op and the mechanism (dtype, shape,
NaN/Inf, or the values' error class). The controls the blame was triangulated with are never dropped, so a
mismatch must also keep its component: the fixed controls saying something else is another situation. A
reduction that moves the divergence to another op, or changes how the outputs differ, fails the predicate
instead of sliding onto another bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fuzzer.case.runner import CaseResult, CaseRunner, RunSettings
from generators.ir import Graph
from generators.values import Values
from oracles.judge import Finding, Verdict
from oracles.pipeline_id import parse_pipeline

# Rough cost of one run through a backend: the primary pipeline is the cheapest that shows the bug.
_BACKEND_COST = {"onnxref": 1, "ort": 2, "eager": 3, "xla": 4, "inductor": 6, "tvm": 8}
_CONVERTER_COST = {"": 0, "onnx:torchscript": 0, "tf2onnx": 1, "export": 1, "onnx:dynamo": 2}


def identity(f: Finding) -> str:
    """The failure itself: a crash's signature (free of blame), or a mismatch's first op and mechanism."""
    if f.symptom == "wrong_output":
        return f"mismatch|{f.stage}|{f.first_op}|{f.kind}"
    return f.signature


class DoesNotReproduce(RuntimeError):
    """The case does not show the target bug at the start: there is nothing to reduce."""


def pipeline_cost(name: str) -> tuple[int, int, str]:
    pid = parse_pipeline(name)
    return (_BACKEND_COST.get(pid.backend, 9) + _CONVERTER_COST.get(pid.converter, 2), pid.level_rank, name)


@dataclass
class ReductionTarget:
    """What to keep: the finding's identity, the pipeline that must show it and the pipelines to run."""

    signature: str
    symptom: str
    stage: str
    pipeline: str  # the pipeline that must keep showing it
    pipelines: list[str]  # what each candidate runs through: the finding's and the controls of its blame
    component: str = ""
    culprit: str = ""
    first_tensor: str = ""  # mismatches: the first diverging tensor, when localisation named it
    anchor: str = ""  # the run pipeline never dropped (the target's own; for a reference failure, one of its source)
    identity: str = ""  # what must stay the same (see `identity`); derived from the finding

    @classmethod
    def from_finding(cls, finding: Finding, run_pipelines: list[str]) -> ReductionTarget:
        """The target for `finding` as judged over `run_pipelines` (the set it was found with)."""
        if finding.stage == "reference":  # the eager source failed: any pipeline of that source runs it
            source = finding.pipelines[0].split(">")[0]
            mine = [p for p in run_pipelines if p.split(">")[0] == source]
            if not mine:
                raise ValueError(f"finding {finding.signature}: no pipeline of source {source} is run")
            return cls(finding.signature, finding.symptom, finding.stage, finding.pipelines[0], list(run_pipelines),
                       finding.component, finding.culprit, anchor=min(mine, key=pipeline_cost),
                       identity=identity(finding))
        shown = [p for p in finding.pipelines if p in run_pipelines]
        if not shown:
            raise ValueError(f"finding {finding.signature}: none of its pipelines {finding.pipelines} is run")
        # a slowdown names (high, low): the high level is the one that is slow
        primary = shown[0] if finding.symptom == "slowdown" else min(shown, key=pipeline_cost)
        return cls(finding.signature, finding.symptom, finding.stage, primary, list(run_pipelines),
                   finding.component, finding.culprit, str(finding.detail.get("first_tensor", "")),
                   identity=identity(finding))

    def __post_init__(self) -> None:
        self.anchor = self.anchor or self.pipeline
        self.identity = self.identity or self.signature

    def settings(self, stage_timeout_s: float = 120.0) -> RunSettings:
        """Follow-ups only where the signature depends on them: localisation always (a mismatch signature
        holds the first diverging op), slowdown confirmation and timed runs only for slowdowns, pass
        bisection only when the finding names a culprit pass."""
        slow = self.symptom == "slowdown"
        return RunSettings(repeats=10 if slow else 0, stage_timeout_s=stage_timeout_s, localise=True,
                           confirm_slowdowns=slow, bisect_passes=bool(self.culprit))

    def match(self, verdict: Verdict) -> Finding | None:
        for f in verdict.findings:
            if (identity(f) == self.identity and f.symptom == self.symptom and f.stage == self.stage
                    and self._same_blame(f)
                    and self.pipeline in f.pipelines and (not self.culprit or f.culprit == self.culprit)):
                return f
        return None

    def _same_blame(self, f: Finding) -> bool:
        """A mismatch keeps its component too: the reducer always keeps the controls its blame was triangulated
        with, so a different component means those controls now say something else (one crashed, or agrees):
        another situation, not a smaller copy of this one. A crash's signature already says what it needs."""
        return f.symptom != "wrong_output" or not self.component or f.component == self.component

    def to_json(self) -> dict[str, Any]:
        return {"signature": self.signature, "symptom": self.symptom, "stage": self.stage,
                "pipeline": self.pipeline, "pipelines": list(self.pipelines), "component": self.component,
                "culprit": self.culprit, "anchor": self.anchor, "identity": self.identity}


class SameBug:
    """Runs a candidate (graph, values, pipelines) in the reducer's worker; the matching finding or None."""

    def __init__(self, target: ReductionTarget, runner: CaseRunner) -> None:
        self.target = target
        self.runner = runner
        self.harness_errors: list[str] = []
        self.last_match: CaseResult | None = None  # the run behind the latest match: the best candidate's evidence

    def __call__(self, graph: Graph, values: Values, pipelines: list[str]) -> Finding | None:
        try:
            result = self.runner.run_case(graph, values, [parse_pipeline(p) for p in pipelines])
        except RuntimeError as e:  # the job handler itself raised: a harness problem, not the bug
            self.harness_errors.append(str(e)[:300])
            return None
        found = self.target.match(result.verdict)
        if found is not None:
            self.last_match = result
        return found
