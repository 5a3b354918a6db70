"""Which pipelines run which graph: a pipeline that keeps crashing the same known way must not eat the campaign,
and must not go blind either.

Once one (pipeline, crash signature) has shown up on `min_graphs` different graphs and can be pinned on
one op kind, a skip rule is made (kept in the store). The op is, in order of trust: the finding's first
diverging op, the one op kind of the graphs that the error message names, or the only op kind all those
graphs share. The rule is narrowed to a *trigger*: the dtypes and attribute values that a node of that op
had in every crashing graph. A later graph is skipped on that pipeline only when one of its nodes of the
op matches the trigger, so other attribute values and dtypes of the op keep being tested. Even a matching
graph is sent anyway in a share of cases (decided by a hash of the graph and the pipeline, so a replay
decides alike): a second bug behind the same trigger can still surface. A crash with the rule's signature
on a graph that misses the trigger widens the trigger to what the two have in common.

Capability gaps ("X is not supported") are handled by fuzzer.case.gap_book; `SharedGapBook` makes one book
safe to share between the campaign's driver threads and restorable from the store.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fuzzer.campaign.store import describe_trigger
from fuzzer.case.gap_book import GapBook, GapEntry, OpDtype
from generators.ir import Graph
from oracles.judge import Gap
from oracles.pipeline_id import PipelineId

SKIP_AFTER_GRAPHS = 3
SEND_ANYWAY = 0.10  # share of graphs matching a trigger that still run on the pipeline
NOT_CRASHES = ("wrong_output", "slowdown")  # symptoms that cost no more than a passing run
ATTR = "attr."  # feature-key prefix of node attributes; "dtype" and "out_dtype" are the node's tensor dtypes
_MAX_CANDIDATES = 32  # common-trigger candidates kept while folding graphs with several nodes of the op

Feature = tuple[str, str]  # (key, canonical value): ("dtype", "float16"), ("attr.keepdims", "true")


@dataclass(frozen=True)
class SkipRule:
    """Skip `pipeline` on graphs with a node of `op` whose features include every one of `trigger`."""

    pipeline: str
    op: str
    signature: str
    reason: str
    trigger: tuple[Feature, ...] = ()  # sorted; empty: any node of the op (rules of stores before triggers)

    def trigger_json(self) -> dict[str, Any]:
        return trigger_to_json(self.trigger)

    def describe(self) -> str:
        return describe_trigger(self.op, self.trigger_json())


@dataclass(frozen=True)
class RuleHit:
    """A case whose graph matched a rule: the pipeline run was saved, or sent anyway."""

    pipeline: str
    signature: str
    sent: bool


class Scheduler:
    """Skip rules learnt from repeated crashes; read by driver threads, updated by the store writer."""

    def __init__(self, pipelines: list[PipelineId], min_graphs: int = SKIP_AFTER_GRAPHS,
                 send_share: float = SEND_ANYWAY) -> None:
        self.pipelines = list(pipelines)
        self.min_graphs = min_graphs
        self.send_share = send_share
        self._lock = threading.Lock()
        self._rules: dict[tuple[str, str], SkipRule] = {}  # (pipeline, signature) -> rule
        self._seen: dict[tuple[str, str], dict[int, _Seen]] = {}

    def load(self, rows: Iterable[dict[str, Any]]) -> None:
        """Rules from the store (on --resume) or from `asdict(rule)` (a Ray driver's current rules)."""
        with self._lock:
            for r in rows:
                rule = SkipRule(r["pipeline"], r["op"], r["signature"], r["reason"], _trigger_of(r.get("trigger")))
                self._rules[(rule.pipeline, rule.signature)] = rule

    @property
    def rules(self) -> list[SkipRule]:
        with self._lock:
            return list(self._rules.values())

    def plan(self, graph: Graph) -> tuple[list[PipelineId], dict[str, str]]:
        """The pipelines to run `graph` on, and the skipped ones with the reason."""
        run: list[PipelineId] = []
        skipped: dict[str, str] = {}
        for pid, rule, sent in self._matches(graph):
            if rule is not None and not sent:
                skipped[pid.name] = rule.reason
            else:
                run.append(pid)
        return run, skipped

    def hits(self, graph: Graph, ran: Iterable[str], skipped: dict[str, str]) -> list[RuleHit]:
        """What the rules did to a finished case: which pipeline run each saved, or sent anyway. The same
        deterministic decision as `plan`; a pipeline that ran although the rule says skip was planned before
        the rule existed and counts as neither."""
        ran = set(ran)
        out = []
        for pid, rule, sent in self._matches(graph):
            if rule is None:
                continue
            if pid.name in skipped and not sent:
                out.append(RuleHit(pid.name, rule.signature, False))
            elif pid.name in ran and sent:
                out.append(RuleHit(pid.name, rule.signature, True))
        return out

    def _matches(self, graph: Graph) -> list[tuple[PipelineId, SkipRule | None, bool]]:
        """Per pipeline: the first rule whose trigger the graph matches, and whether it is sent anyway."""
        features = node_features(graph)
        with self._lock:
            rules = list(self._rules.values())
        by_pipe: dict[str, SkipRule] = {}
        for rule in rules:
            if rule.pipeline not in by_pipe and _matches(features.get(rule.op, []), rule.trigger):
                by_pipe[rule.pipeline] = rule
        ghash = graph.content_hash() if by_pipe else ""
        return [(pid, by_pipe.get(pid.name),
                 pid.name in by_pipe and self._send_anyway(ghash, by_pipe[pid.name].signature))
                for pid in self.pipelines]

    def _send_anyway(self, graph_hash: str, signature: str) -> bool:
        """Decided per graph and bug, never per pipeline: the pipelines skipped for one bug are its voters (the
        consumers of one model, the levels of one backend), and are sent together or not at all, so a graph
        sent anyway is judged as the bug was, not by a partial vote that files it again under another name."""
        digest = hashlib.sha256(f"{graph_hash}\0{signature}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < self.send_share * (1 << 64)

    def observe(self, case_idx: int, graph: Graph, finding: dict[str, Any]) -> list[SkipRule]:
        """Count a finding of a judged case; the skip rules it newly justifies or widens."""
        if finding.get("symptom") in NOT_CRASHES:
            return []
        features = node_features(graph)
        ops = frozenset(features)
        named = frozenset(op for op in ops if _names_op(finding.get("message", ""), op))
        if finding.get("first_op") in ops:
            named = frozenset([finding["first_op"]])
        sig = finding["signature"]
        new: list[SkipRule] = []
        with self._lock:
            for pipeline in finding.get("pipelines", []):
                if pipeline not in {p.name for p in self.pipelines}:
                    continue
                rule = self._rules.get((pipeline, sig))
                if rule is not None:  # known: widen the trigger when this graph crashed without matching it
                    nodes = features.get(rule.op, [])
                    if nodes and not _matches(nodes, rule.trigger):
                        trigger = _common([[frozenset(rule.trigger)], nodes])
                        rule = SkipRule(pipeline, rule.op, sig, _reason(rule.op, trigger, finding), trigger)
                        self._rules[(pipeline, sig)] = rule
                        new.append(rule)
                    continue
                seen = self._seen.setdefault((pipeline, sig), {})
                seen[case_idx] = _Seen(ops, named, features)
                if len(seen) < self.min_graphs:
                    continue
                op = _attribute([(s.ops, s.named) for s in seen.values()])
                if op is None:
                    continue
                trigger = _common([s.features[op] for s in seen.values()])
                rule = SkipRule(pipeline, op, sig, _reason(op, trigger, finding, len(seen)), trigger)
                self._rules[(pipeline, sig)] = rule
                del self._seen[(pipeline, sig)]  # from now on the rule's trigger is the state
                new.append(rule)
        return new


@dataclass(frozen=True)
class _Seen:
    ops: frozenset[str]
    named: frozenset[str]
    features: dict[str, list[frozenset[Feature]]]


def node_features(graph: Graph) -> dict[str, list[frozenset[Feature]]]:
    """Op kind -> the features of each of the graph's nodes of that kind: input and output dtype, attributes."""
    out: dict[str, list[frozenset[Feature]]] = {}
    for n in graph.nodes:
        feats: set[Feature] = {(ATTR + k, _canon(v)) for k, v in n.attrs.items()}
        first_in = next((graph.tensors[t] for t in n.inputs if t in graph.tensors), None)
        first_out = next((graph.tensors[t] for t in n.outputs if t in graph.tensors), None)
        primary = first_in or first_out
        if primary is not None:
            feats.add(("dtype", primary.dtype))
        if first_out is not None:
            feats.add(("out_dtype", first_out.dtype))
        out.setdefault(n.op, []).append(frozenset(feats))
    return out


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _matches(nodes: list[frozenset[Feature]], trigger: tuple[Feature, ...]) -> bool:
    want = set(trigger)
    return any(want <= f for f in nodes)


def _common(per_graph: list[list[frozenset[Feature]]]) -> tuple[Feature, ...]:
    """The largest feature set that some node of the op has in every graph (one node per graph: with
    several nodes of the op in a graph, which one crashed is unknown, so no features are mixed across them)."""
    cands = set(per_graph[0])
    for nodes in per_graph[1:]:
        cands = {c & f for c in cands for f in nodes}
        ordered = sorted(cands, key=lambda c: (-len(c), sorted(c)))
        cands = {c for c in ordered if not any(c < d for d in ordered)}
        cands = set(sorted(cands, key=lambda c: (-len(c), sorted(c)))[:_MAX_CANDIDATES])
    best = min(cands, key=lambda c: (-len(c), sorted(c)), default=frozenset())
    return tuple(sorted(best))


def _reason(op: str, trigger: tuple[Feature, ...], finding: dict[str, Any], graphs: int | None = None) -> str:
    head = f"crashed the same way on {graphs} graphs with" if graphs else "crashes the same way on"
    return (f"{head} {describe_trigger(op, trigger_to_json(trigger))} "
            f"({finding.get('symptom')} in {finding.get('component')})")


def trigger_to_json(trigger: Iterable[Feature]) -> dict[str, Any]:
    """The trigger as the store and report keep it: {"dtype", "out_dtype", "attrs": {name: value}}."""
    out: dict[str, Any] = {"attrs": {}}
    for key, value in sorted(trigger):
        if key.startswith(ATTR):
            out["attrs"][key[len(ATTR):]] = json.loads(value)
        else:
            out[key] = value
    return out


def _trigger_of(raw: Any) -> tuple[Feature, ...]:
    """A rule's trigger from the store's JSON object, or from `asdict(rule)` pairs; none: the whole op."""
    if not raw:
        return ()
    if isinstance(raw, dict):
        feats = [(k, str(v)) for k, v in raw.items() if k != "attrs" and v is not None]
        feats += [(ATTR + k, _canon(v)) for k, v in (raw.get("attrs") or {}).items()]
        return tuple(sorted(feats))
    return tuple(sorted((str(k), str(v)) for k, v in raw))


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
