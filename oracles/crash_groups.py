"""One root cause, one crash finding: a case's failures are grouped across its pipelines before blame.

A failure's identity is what failed and how, never who is blamed for it: the library whose code raised (the
converter at export, onnx's checker at check, the backend's frontend, compiler or runtime after that), the
stage, the kind, the exception type and the normalised message. The same identity on four onnxruntime levels,
or on the consumers of two exporters, is one finding; its blame is what the failing pipelines share and the
passing ones don't. Blame never enters the signature, so a bug keeps its signature whichever control pipelines
happened to run (the reducer relies on that).

Voters are libraries, not pipelines: onnx's checker, its shape inference and its reference evaluator are one
voter ("onnx"); onnxruntime and TVM are the independent ones. An exported model is the converter's fault when
at least two independent libraries reject it and onnxruntime does not run it.
"""

from __future__ import annotations

from dataclasses import dataclass

from oracles.blame import VOTERS as VOTER
from oracles.blame import backend_component, converter_component, is_plain, lowest_level
from oracles.outcome import STAGES, Failure, Outcome
from oracles.pipeline_id import ONNX_CONVERTERS, PipelineId
from oracles.signature import crash_signature, normalise_message

# Whose words name a rejected model, when several consumers reject it: onnxruntime's are the most precise.
CANONICAL_VOTERS = ("onnxruntime", "onnx", "tvm")
CHECKER = "onnx (checker / shape inference)"
CONSUMER_STAGES = ("check", "import", "compile", "run")


@dataclass(frozen=True)
class FailureKey:
    """What failed and how, independent of which pipeline it was seen on and of any blame."""

    source: str
    raiser: str
    stage: str
    kind: str
    exc_type: str
    text: str  # the normalised message


@dataclass
class CrashGroup:
    """Pipelines of one case that failed the same way, with the blame triangulation gave them."""

    key: FailureKey
    pipelines: list[PipelineId]
    failure: Failure  # one member's failure (its raw message is kept in the finding)
    component: str
    why: str
    signature: str
    symptom_stage: str  # the stage that decides the symptom ("check" for a model its consumers reject)


def raiser(pid: PipelineId, stage: str) -> str:
    """The library whose code was running when the stage failed."""
    if stage == "check":
        return CHECKER
    return backend_component(pid, stage)


def failure_key(pid: PipelineId, f: Failure) -> FailureKey:
    short = f.exc_type.rsplit(".", 1)[-1]
    return FailureKey(pid.source, raiser(pid, f.stage), f.stage, f.kind, short, normalise_message(f.message))


def _failed(o: Outcome) -> bool:
    return o.failure is not None and o.failure.kind != "unsupported" and not o.skipped


def group_crashes(outcomes: dict[str, Outcome], pids: dict[str, PipelineId]) -> list[CrashGroup]:
    """Every non-gap failure of the case in exactly one group."""
    failing = {n: o for n, o in outcomes.items() if _failed(o)}
    groups: list[CrashGroup] = []
    claimed: set[str] = set()
    for rejected in _rejected_models(outcomes, pids):
        groups.append(rejected)
        claimed.update(p.name for p in rejected.pipelines)
    by_key: dict[FailureKey, list[str]] = {}
    for name in sorted(failing):
        if name not in claimed:
            by_key.setdefault(failure_key(pids[name], failing[name].failure), []).append(name)  # type: ignore[arg-type]
    for key, names in by_key.items():
        members = [pids[n] for n in names]
        component, why = _blame(key, members, outcomes, pids)
        f = failing[names[0]].failure
        assert f is not None
        groups.append(CrashGroup(key, members, f, component, why,
                                 crash_signature(key.raiser, key.stage, key.kind, f.exc_type, f.message), key.stage))
    return groups


def _rejected_models(outcomes: dict[str, Outcome], pids: dict[str, PipelineId]) -> list[CrashGroup]:
    """Exported models that independent consumers reject and none runs: one group per model, on the converter.
    It holds every consumer whose failure is the same as one of the unoptimised consumers' (an optimiser's own
    bug on the same model stays apart)."""
    out: list[CrashGroup] = []
    models = sorted({(p.source, p.converter) for p in pids.values() if p.converter in ONNX_CONVERTERS})
    for source, converter in models:
        consumers = [n for n, p in pids.items() if p.source == source and p.converter == converter
                     and not outcomes[n].skipped]
        plain = [n for n in consumers if is_plain(pids[n])]
        rejecting = {VOTER[pids[n].backend]: n for n in sorted(plain) if _failed(outcomes[n])
                     and outcomes[n].failure.stage in CONSUMER_STAGES}  # type: ignore[union-attr]
        running = {VOTER[pids[n].backend] for n in plain if outcomes[n].failure is None}
        # at least two independent libraries reject it, and onnxruntime, the runtime that defines ONNX's
        # behaviour in practice, is not among those that run it (TVM alone is lenient, e.g. with mixed types)
        if len(rejecting) < 2 or "onnxruntime" in running:
            continue
        canon = rejecting[next(v for v in CANONICAL_VOTERS if v in rejecting)]
        f = outcomes[canon].failure
        assert f is not None
        keys = {failure_key(pids[n], outcomes[n].failure) for n in rejecting.values()}  # type: ignore[arg-type]
        members = [pids[n] for n in sorted(consumers) if _failed(outcomes[n])
                   and failure_key(pids[n], outcomes[n].failure) in keys]  # type: ignore[arg-type]
        component = converter_component(pids[canon])
        why = (f"independent consumers reject the exported model: {', '.join(sorted(rejecting))} "
               f"({', '.join(sorted(rejecting.values()))})"
               + (f"; only {', '.join(sorted(running))} runs it" if running else ""))
        out.append(CrashGroup(failure_key(pids[canon], f), members, f, component, why,
                              crash_signature(component, f.stage, f.kind, f.exc_type, f.message), "check"))
    return out


def _blame(key: FailureKey, members: list[PipelineId], outcomes: dict[str, Outcome],
           pids: dict[str, PipelineId]) -> tuple[str, str]:
    """(component, why) for one group of identical failures."""
    pid = members[0]
    if key.stage == "export":
        return converter_component(pid), ""
    if key.stage == "check":
        return _blame_checker(members, outcomes, pids)
    component, why = key.raiser, ""
    levelled = [p for p in members if lowest_level(p) is not None]
    if levelled and len(levelled) == len(members):
        verdicts = {_level_verdict(p, key.stage, members, outcomes) for p in members}
        if "backend" in verdicts:
            shown = [p.level for p in sorted(set(members), key=lambda p: p.level_rank)]
            why = f"fails alike at every level it ran ({', '.join(shown)})" if len(shown) > 1 else ""
        elif verdicts == {"optimiser"}:
            component = _optimiser_name(members)
            why = f"the unoptimised level passes this stage; fails from {component.split('(')[-1].rstrip(')')} on"
        else:
            why = "no unoptimised control of the same backend ran"
    no_control = _no_control(members, outcomes, pids)
    if no_control and key.stage in ("import", "compile") and component == key.raiser:
        return f"{no_control} or {component}", "converter or backend: no control pipeline"
    return component, why


def _blame_checker(members: list[PipelineId], outcomes: dict[str, Outcome],
                   pids: dict[str, PipelineId]) -> tuple[str, str]:
    """onnx's checker rejected the model: onnx's bug if an independent consumer runs it, else the converter's."""
    pid = members[0]
    independent = [n for n, p in pids.items() if p.source == pid.source and p.converter == pid.converter
                   and p.backend in ("ort", "tvm") and not outcomes[n].skipped]
    running = sorted(n for n in independent if outcomes[n].failure is None)
    if running:
        return CHECKER, f"independent consumers run the model the checker rejects: {', '.join(running)}"
    if any(_failed(outcomes[n]) and outcomes[n].failure.stage != "check" for n in independent):  # type: ignore
        return converter_component(pid), "the checker and independent consumers reject the exported model"
    return f"{converter_component(pid)} or {CHECKER}", "converter or onnx checker: no control pipeline"


def _level_verdict(p: PipelineId, stage: str, members: list[PipelineId], outcomes: dict[str, Outcome]) -> str:
    """'backend' when its unoptimised sibling fails alike, 'optimiser' when that sibling got past the stage."""
    low = lowest_level(p)
    assert low is not None
    if low in members or low == p:
        return "backend"
    o = outcomes.get(low.name)
    if o is None or o.skipped:
        return "unknown"
    if o.failure is None or STAGES.index(o.failure.stage) > STAGES.index(stage):
        return "optimiser"
    return "unknown"


def _optimiser_name(members: list[PipelineId]) -> str:
    """The optimiser at fault, named by the lowest level that shows the bug (the level that introduced it)."""
    low = min(members, key=lambda p: p.level_rank)
    return f"onnxruntime optimizer ({low.level})" if low.backend == "ort" else f"tvm optimisation ({low.level})"


def _no_control(members: list[PipelineId], outcomes: dict[str, Outcome], pids: dict[str, PipelineId]) -> str:
    """The converter, when every failing member consumes an exported model that only one library consumed."""
    converters = {(p.source, p.converter) for p in members}
    if len(converters) != 1:
        return ""
    source, converter = next(iter(converters))
    if converter not in ONNX_CONVERTERS:
        return ""
    voters = {VOTER[p.backend] for n, p in pids.items() if p.source == source and p.converter == converter
              and not outcomes[n].skipped}
    return converter_component(members[0]) if len(voters) < 2 else ""
