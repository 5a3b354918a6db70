"""Capability gaps seen so far, fed back so a pipeline stops wasting cases on what it can't do.

A gap ("Exporting the operator 'aten::expm1' ... is not supported") is recorded once per signature,
never counted as a bug. Which op of the graph caused it is narrowed down: by the op the message names
when it matches one of the graph's op families, else by intersecting the (op, dtype) pairs of every
graph that showed it. Once one pair remains, graphs containing it skip the pipelines the gap covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from generators.ir import Graph
from oracles.blame import CONVERTER_NAMES
from oracles.judge import Gap
from oracles.pipeline_id import PipelineId, parse_pipeline

OpDtype = tuple[str, str]


@dataclass
class GapEntry:
    component: str
    path: tuple[str, ...]  # (source, converter) for converter gaps, (source, converter, backend) otherwise
    message: str
    op_hint: str
    candidates: set[OpDtype] = field(default_factory=set)
    seen: int = 0

    def culprit(self) -> OpDtype | None:
        return next(iter(self.candidates)) if len(self.candidates) == 1 else None


def graph_pairs(graph: Graph) -> set[OpDtype]:
    return {(n.op, graph.tensors[n.inputs[0]].dtype if n.inputs else "") for n in graph.nodes}


def _path(pid: PipelineId, component: str) -> tuple[str, ...]:
    if component in CONVERTER_NAMES.values():
        return (pid.source, pid.converter)
    return (pid.source, pid.converter, pid.backend)


def _covers(path: tuple[str, ...], pid: PipelineId) -> bool:
    return (pid.source, pid.converter, pid.backend)[:len(path)] == path


class GapBook:
    def __init__(self) -> None:
        self.entries: dict[str, GapEntry] = {}

    def record(self, gap: Gap, graph: Graph) -> GapEntry:
        pid = parse_pipeline(gap.pipelines[0])
        entry = self.entries.get(gap.signature)
        if entry is None:
            entry = self.entries[gap.signature] = GapEntry(gap.component, _path(pid, gap.component), gap.message,
                                                           gap.op)
        pairs = graph_pairs(graph)
        # "aten::layer_norm", "layer_norm.default", "LayerNorm": one op whatever the library's spelling
        hints = {t.replace("_", "").lower() for t in entry.op_hint.split("::")[-1].split(".") if t}
        named = {p for p in pairs if p[0].replace("_", "").lower() in hints}
        pairs = named or pairs
        entry.candidates = (entry.candidates & pairs) or pairs if entry.candidates else pairs
        entry.seen += 1
        return entry

    def skip_reason(self, pid: PipelineId, pairs: set[OpDtype]) -> str:
        """Why `pid` should skip a graph with these (op, dtype) pairs (see graph_pairs), or ''."""
        for e in self.entries.values():
            c = e.culprit()
            if c is not None and c in pairs and _covers(e.path, pid):
                return f"known capability gap of {e.component}: {c[0]} on {c[1]} ({e.message.splitlines()[0][:120]})"
        return ""

    def to_json(self) -> list[dict[str, Any]]:
        return [{"signature": s, "component": e.component, "path": list(e.path), "message": e.message,
                 "op_hint": e.op_hint, "candidates": sorted(map(list, e.candidates)), "seen": e.seen}
                for s, e in sorted(self.entries.items())]
