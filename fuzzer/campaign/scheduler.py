"""Which pipelines run which graph: a pipeline that keeps crashing the same known way must not eat the campaign.

Once one (pipeline, crash signature) has shown up on `min_graphs` different graphs and can be pinned on
one op kind, graphs containing that op kind are no longer run on that pipeline (a skip rule, kept in the
store's `skips` table). The op is, in order of trust: the finding's first diverging op, the one op kind
of the graphs that the error message names, or the only op kind all those graphs share.

Capability gaps ("X is not supported") are handled by fuzzer.case.gap_book; `SharedGapBook` makes one book
safe to share between the campaign's driver threads and restorable from the store.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from fuzzer.case.gap_book import GapBook, GapEntry, OpDtype
from generators.ir import Graph
from oracles.judge import Gap
from oracles.pipeline_id import PipelineId

SKIP_AFTER_GRAPHS = 3
NOT_CRASHES = ("wrong_output", "slowdown")  # symptoms that cost no more than a passing run


@dataclass(frozen=True)
class SkipRule:
    pipeline: str
    op: str
    signature: str
    reason: str


class Scheduler:
    """Skip rules learnt from repeated crashes; read by driver threads, updated by the store writer."""

    def __init__(self, pipelines: list[PipelineId], min_graphs: int = SKIP_AFTER_GRAPHS) -> None:
        self.pipelines = list(pipelines)
        self.min_graphs = min_graphs
        self._lock = threading.Lock()
        self._rules: dict[tuple[str, str], SkipRule] = {}
        self._seen: dict[tuple[str, str], dict[int, tuple[frozenset[str], frozenset[str]]]] = {}

    def load(self, rows: list[dict[str, Any]]) -> None:
        """Rules from the store's skips table (on --resume)."""
        with self._lock:
            for r in rows:
                self._rules[(r["pipeline"], r["op"])] = SkipRule(r["pipeline"], r["op"], r["signature"], r["reason"])

    @property
    def rules(self) -> list[SkipRule]:
        with self._lock:
            return list(self._rules.values())

    def plan(self, graph: Graph) -> tuple[list[PipelineId], dict[str, str]]:
        """The pipelines to run `graph` on, and the skipped ones with the reason."""
        ops = {n.op for n in graph.nodes}
        run: list[PipelineId] = []
        skipped: dict[str, str] = {}
        with self._lock:
            for pid in self.pipelines:
                rule = next((self._rules[(pid.name, op)] for op in sorted(ops) if (pid.name, op) in self._rules), None)
                if rule is None:
                    run.append(pid)
                else:
                    skipped[pid.name] = rule.reason
        return run, skipped

    def observe(self, case_idx: int, graph: Graph, finding: dict[str, Any]) -> list[SkipRule]:
        """Count a finding of a judged case; the skip rules it newly justifies."""
        if finding.get("symptom") in NOT_CRASHES:
            return []
        ops = frozenset(n.op for n in graph.nodes)
        named = frozenset(op for op in ops if _names_op(finding.get("message", ""), op))
        if finding.get("first_op") in ops:
            named = frozenset([finding["first_op"]])
        sig = finding["signature"]
        new: list[SkipRule] = []
        with self._lock:
            for pipeline in finding.get("pipelines", []):
                if pipeline not in {p.name for p in self.pipelines}:
                    continue
                seen = self._seen.setdefault((pipeline, sig), {})
                seen[case_idx] = (ops, named)
                if len(seen) < self.min_graphs:
                    continue
                op = _attribute(list(seen.values()))
                if op is None or (pipeline, op) in self._rules:
                    continue
                rule = SkipRule(pipeline, op, sig, f"crashed the same way on {len(seen)} graphs with {op} "
                                                   f"({finding.get('symptom')} in {finding.get('component')})")
                self._rules[(pipeline, op)] = rule
                new.append(rule)
        return new


def _names_op(message: str, op: str) -> bool:
    return bool(message) and re.search(rf"(?<![A-Za-z0-9_]){re.escape(op)}(?![A-Za-z0-9_])", message,
                                       re.IGNORECASE) is not None


def _attribute(graphs: list[tuple[frozenset[str], frozenset[str]]]) -> str | None:
    """The one op kind to blame, or None when the evidence does not single one out."""
    named = [n for _, n in graphs if n]
    if len(named) == len(graphs):
        common = frozenset.intersection(*named)
        if len(common) == 1:
            return next(iter(common))
    shared = frozenset.intersection(*(ops for ops, _ in graphs))
    return next(iter(shared)) if len(shared) == 1 else None


class SharedGapBook(GapBook):
    """A GapBook that the driver threads share (a lock around every access), restorable from the store."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def record(self, gap: Gap, graph: Graph) -> GapEntry:
        with self._lock:
            return super().record(gap, graph)

    def skip_reason(self, pid: PipelineId, pairs: set[OpDtype]) -> str:
        with self._lock:
            return super().skip_reason(pid, pairs)

    def snapshot(self, signature: str) -> dict[str, Any] | None:
        """What the store keeps of one gap: component, culprit op/dtype (once narrowed down), the entry."""
        with self._lock:
            e = self.entries.get(signature)
            if e is None:
                return None
            culprit = e.culprit()
            return {"component": e.component, "op": culprit[0] if culprit else e.op_hint,
                    "dtype": culprit[1] if culprit else "", "message": e.message,
                    "entry": {"path": list(e.path), "op_hint": e.op_hint,
                              "candidates": sorted(map(list, e.candidates)), "seen": e.seen}}

    def load(self, rows: list[dict[str, Any]]) -> None:
        """Entries from the store's gaps table (on --resume)."""
        with self._lock:
            for r in rows:
                ent = r.get("entry") or {}
                if not ent.get("path"):
                    continue
                self.entries[r["signature"]] = GapEntry(
                    r["component"], tuple(ent["path"]), r["message"] or "", ent.get("op_hint", ""),
                    {(str(a), str(b)) for a, b in ent.get("candidates", [])}, int(ent.get("seen", 0)))
