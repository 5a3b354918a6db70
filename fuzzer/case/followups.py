"""Second looks at a judged case: where a mismatch starts, whether a slowdown is real, which TVM pass.

Each follow-up runs more jobs on the same worker and edits the verdict in place; each returns notes
saying what it did (or why it could not), so reports never hide a step that was skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fuzzer.case.noise_check import explain_as_noise
from fuzzer.case.settings import RunSettings
from fuzzer.targets.arrays import pack_dict, pack_list
from fuzzer.workers.pool import Event
from generators.ir import Graph
from generators.values import Values
from generators.variants import expose_intermediates, producer_ops
from oracles.blame import optimiser_component
from oracles.compare import compare_outputs
from oracles.crash_groups import failure_key
from oracles.judge import Finding, Reference, Verdict, resign, set_first_op, tolerance_pairs
from oracles.mismatch_groups import mechanism
from oracles.outcome import Outcome
from oracles.pipeline_id import parse_pipeline
from oracles.signature import mismatch_signature, normalise_message
from oracles.slowdown import judge_slowdown
from oracles.taxonomy import location_for


class CaseJobs(Protocol):
    """What a follow-up needs from the case runner: its settings and a way to run more jobs on its worker."""

    settings: RunSettings

    def submit(self, request: dict[str, Any], blobs: dict[str, bytes]) -> tuple[list[Event], Any]: ...

    def fresh_worker(self) -> None: ...

    def run_source(self, graph: Graph, values: Values, source: str, pipelines: list[str],
                   reference: bool = True) -> tuple[Reference | None, dict[str, Outcome], dict[str, bytes]]: ...


def localise_mismatches(runner: CaseJobs, graph: Graph, values: Values, verdict: Verdict) -> list[str]:
    """Re-run the pipeline on the probe graph (every intermediate an output): the first op whose output
    diverges from the reference's names the mismatch in its signature."""
    notes = []
    probe = expose_intermediates(graph)
    ops = producer_ops(probe, probe.outputs)
    noise: list[Finding] = []
    for f in verdict.findings:
        if f.symptom != "wrong_output" or f.first_op:
            continue
        pipeline = f.pipelines[0]
        pid = parse_pipeline(pipeline)
        ref, outs, _ = runner.run_source(probe, values, pid.source, [pipeline])
        got = outs.get(pipeline)
        if ref is None or ref.outputs is None or got is None or got.outputs is None:
            fallback = _first_bad_output_op(graph, f)
            set_first_op(f, fallback)
            notes.append(f"{pipeline}: probe run failed; first op taken from the outputs ({fallback})")
            continue
        tols = ref.tolerances()
        recs = compare_outputs(ref.outputs, got.outputs, tols)
        bad = [i for i, r in enumerate(recs) if r.mismatch]
        if bad:
            set_first_op(f, ops[bad[0]])
            f.detail["first_tensor"] = probe.outputs[bad[0]]
            node = probe.producers()[probe.outputs[bad[0]]]
            leaves = {**values.inputs, **values.weights}
            ref_env = {**leaves, **dict(zip(probe.outputs, ref.outputs))}
            got_env = {**leaves, **dict(zip(probe.outputs, got.outputs))}
            why = explain_as_noise(node, probe, ref_env, got_env, [got_env[t] for t in node.outputs],
                                   dict(zip(probe.outputs, tols)))
            if why:
                noise.append(f)
                notes.append(f"{pipeline}: dropped a mismatch as noise: {why}")
        else:
            fallback = _first_bad_output_op(graph, f)
            set_first_op(f, fallback)
            notes.append(f"{pipeline}: the mismatch vanishes when intermediates are outputs; "
                         f"first op taken from the outputs ({fallback})")
    verdict.findings[:] = [f for f in verdict.findings if f not in noise]
    verdict.noise.extend(noise)
    return notes


def _first_bad_output_op(graph: Graph, f: Finding) -> str:
    recs = f.detail.get("records", [])
    ops = producer_ops(graph, graph.outputs)
    for i, r in enumerate(recs):
        if r.get("klass", "ok") != "ok" and i < len(ops):
            return ops[i]
    return ops[0] if ops else "?"


def confirm_slowdowns(runner: CaseJobs, graph: Graph, values: Values, outcomes: dict[str, Outcome],
                      verdict: Verdict) -> list[str]:
    """A higher opt level > 2x slower than the lowest level of the same backend and device, in the first
    measurement, gets a second independent one (fresh builds, interleaved runs) and a U test."""
    notes = []
    groups: dict[tuple, list] = {}
    for name, o in outcomes.items():
        pid = parse_pipeline(name)
        if pid.backend in ("ort", "tvm") and o.run_times:
            groups.setdefault((pid.source, pid.converter, pid.backend, pid.device), []).append(pid)
    for members in groups.values():
        members.sort(key=lambda p: p.level_rank)
        low = members[0]
        for high in members[1:]:
            first = judge_slowdown(outcomes[low.name].run_times, outcomes[high.name].run_times, None, None)
            if first.reason != "unconfirmed":
                continue
            request = {"op": "time", "graph": graph.wire(), "source": low.source,
                       "pipelines": [low.name, high.name], "repeats": max(runner.settings.repeats, 10),
                       "stage_timeout_s": runner.settings.stage_timeout_s}
            blobs = {"inputs": pack_dict(values.inputs), "weights": pack_dict(values.weights)}
            events, result = runner.submit(request, blobs)
            times = {e.header["pipeline"]: e.header["run_times"] for e in events if e.event == "timing"}
            if not result.completed or low.name not in times or high.name not in times:
                notes.append(f"slowdown {high.name} vs {low.name}: confirmation run failed ({result.detail})")
                continue
            v = judge_slowdown(outcomes[low.name].run_times, outcomes[high.name].run_times,
                               times[low.name], times[high.name])
            if not v.slow:
                notes.append(f"slowdown {high.name} vs {low.name}: not confirmed ({v.reason})")
                continue
            component = optimiser_component(high)
            verdict.findings.append(Finding(
                "slowdown", "run", location_for("compile", component), component, [high.name, low.name],
                "slowdown", mismatch_signature(component, "run", f"{low.level}->{high.level}", "slowdown"),
                message=f"{high.level} is {v.ratio:.1f}x slower than {low.level} (p={v.p_value:.2g}; "
                        f"confirmed {v.confirm_ratio:.1f}x, p={v.confirm_p_value:.2g})",
                why=f"same backend and device, {low.level} vs {high.level}", detail={"slowdown": v.__dict__}))
    return notes


def bisect_tvm_passes(runner: CaseJobs, graph: Graph, values: Values, refs: dict[str, Reference],
                      artefacts: dict[str, bytes], verdict: Verdict) -> list[str]:
    """A finding blamed on a TVM opt level gets the pass at fault named (re-builds with passes disabled)."""
    notes = []
    for f in verdict.findings:
        if not f.component.startswith("tvm optimisation") or f.culprit:
            continue
        pid = parse_pipeline(f.pipelines[0])
        ref = refs.get(pid.source)
        blobs = {"inputs": pack_dict(values.inputs), "weights": pack_dict(values.weights)}
        request = {"op": "bisect", "graph": graph.wire(), "source": pid.source, "pipeline": pid.name,
                   "stage_timeout_s": runner.settings.stage_timeout_s * 10}
        if f.symptom == "wrong_output" and ref is not None and ref.outputs is not None:
            blobs["expected"] = pack_list(ref.outputs)
            request["tolerances"] = tolerance_pairs(ref.tolerances())
        model = artefacts.get(f"{pid.source}>{pid.converter}")
        if model is not None:
            blobs[f"model:{pid.converter}"] = model
        events, result = runner.submit(request, blobs)
        found = [e.header for e in events if e.event == "bisect"]
        if not result.completed or not found:
            notes.append(f"{pid.name}: pass bisection did not finish ({result.detail or result.error})")
            continue
        guilty = found[0].get("guilty_pass")
        if guilty:
            f.culprit = guilty
            f.component = f"tvm pass {guilty}"
            f.location = "backend optimisation"
            resign(f)
        else:
            notes.append(f"{pid.name}: no single TVM pass makes the problem vanish when disabled")
    return notes


def confirm_new_findings(runner: CaseJobs, graph: Graph, values: Values, outcomes: dict[str, Outcome],
                         refs: dict[str, Reference], verdict: Verdict, known: Callable[[str], bool]) -> list[str]:
    """A finding whose signature was never seen is re-run in a fresh worker before it is filed: one that does
    not reproduce there depended on the worker's state (a library's cache, a corrupted heap) and is kept apart
    as flaky, never counted as a bug."""
    new = [f for f in verdict.findings if f.symptom != "slowdown" and not known(f.signature)]
    if not new:
        return []
    runner.fresh_worker()
    notes = []
    for f in new:
        why = _reproduces(runner, graph, values, f, outcomes, refs)
        if why:
            f.detail["flaky"] = why
            verdict.flaky.append(f)
            notes.append(f"{f.pipelines[0]}: new finding not reproduced in a fresh worker ({why}): kept as flaky")
    verdict.findings[:] = [f for f in verdict.findings if f not in verdict.flaky]
    return notes


def _reproduces(runner: CaseJobs, graph: Graph, values: Values, f: Finding, outcomes: dict[str, Outcome],
                refs: dict[str, Reference]) -> str:
    """'' when a fresh worker shows the same failure (same raiser, stage, kind, type and normalised message) or
    the same mismatch mechanism on the finding's first pipeline(s); else what it saw instead."""
    if f.stage == "reference":
        source = f.pipelines[0].split(">")[0]
        ref, _, _ = runner.run_source(graph, values, source, [])
        old = refs[source].failure
        if ref is not None and ref.failure is not None and old is not None and (
                ref.failure.kind, ref.failure.exc_type, normalise_message(ref.failure.message)) == (
                old.kind, old.exc_type, normalise_message(old.message)):
            return ""
        return "the eager source ran"
    sample = f.pipelines[:2]
    pid = parse_pipeline(sample[0])
    # the onnx voter of the same exported model, when the case had one: it decides whether onnx's checker gates
    # the model for the other consumers, so the fresh run must see the model the way the case did
    sample += [n for n in outcomes if n not in sample and parse_pipeline(n).backend == "onnxref"
               and (parse_pipeline(n).source, parse_pipeline(n).converter) == (pid.source, pid.converter)]
    ref, outs, _ = runner.run_source(graph, values, pid.source, [p for p in sample if parse_pipeline(p).source
                                                                   == pid.source])
    seen = []
    for name in f.pipelines[:2]:
        o = outs.get(name)
        if o is None:
            continue
        before = outcomes.get(name)
        if f.symptom == "wrong_output":
            if ref is None or ref.outputs is None or o.outputs is None:
                seen.append(f"{name} failed" if o.failure else f"{name}: no reference")
                continue
            recs = compare_outputs(ref.outputs, o.outputs, ref.tolerances())
            if any(r.mismatch for r in recs) and mechanism(recs) == f.kind:
                return ""
            seen.append(f"{name} agrees with the source")
        elif before is not None and before.failure is not None and o.failure is not None:
            if failure_key(parse_pipeline(name), o.failure) == failure_key(parse_pipeline(name), before.failure):
                return ""
            seen.append(f"{name} failed otherwise ({o.failure.stage} {o.failure.kind})")
        else:
            seen.append(f"{name} passed" if o.failure is None else f"{name}: no earlier failure to compare")
    return "; ".join(seen) or "nothing ran"
