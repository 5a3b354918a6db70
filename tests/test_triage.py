"""One root cause, one bug, in the component that owns it: grouping before blame, libraries as voters, identities
free of blame labels, flaky findings kept apart. Real converters and backends on real corpus graphs where the
pinned stack shows the behaviour; the judge's own arithmetic on arrays where a test must pin one rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fuzzer.case.runner import CaseRunner, RunSettings
from fuzzer.corpus.replay import load_entries
from fuzzer.reduce import ReductionTarget, reduce_case
from fuzzer.targets.registry import resolve
from fuzzer.workers.pool import Limits, Worker
from fuzzer.workers.workdir import prepare, worker_env
from oracles.judge import Reference, judge_case
from oracles.outcome import Failure, Outcome

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PAD = CORPUS / "tf2onnx-invalid-model-pad-1175377f"  # tf2onnx emits Pad with a constant_value of the wrong type
ORT = [f"tf>tf2onnx>ort:{level}:cpu" for level in ("disable", "basic", "extended", "all")]


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseRunner]:
    work = prepare(tmp_path_factory.mktemp("triage"))
    with Worker("fuzzer.targets.job:run_job", Limits(stage_timeout_s=120), work / "logs", worker_env(work)) as w:
        yield CaseRunner(w, RunSettings(repeats=1))


def run_entry(runner: CaseRunner, entry: Path, pipelines: list[str]):  # noqa: ANN201 - a CaseResult
    e = load_entries(entry)[0]
    return runner.run_case(e.graph, e.values, resolve(pipelines))


# ----- real systems -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_four_ort_levels_failing_alike_are_one_bug_without_a_level(runner: CaseRunner) -> None:
    pipes = ORT + ["tf>tf2onnx>onnxref"]
    r = run_entry(runner, PAD, pipes)
    assert {r.outcomes[p].failure.stage for p in ORT} == {"compile"}  # each level ran the model and rejected it
    assert len(r.verdict.findings) == 1, r.verdict.findings
    f = r.verdict.findings[0]
    assert set(ORT) <= set(f.pipelines)
    assert not any(level in f.signature for level in ("disable", "basic", "extended", "all"))


@pytest.mark.slow
def test_a_model_independent_libraries_reject_is_the_converters_one_bug(runner: CaseRunner) -> None:
    pipes = ORT + ["tf>tf2onnx>onnxref", "tf>tf2onnx>tvm:O0:llvm"]
    r = run_entry(runner, PAD, pipes)
    assert r.outcomes["tf>tf2onnx>onnxref"].failure.stage == "check"  # onnx's checker rejects it
    assert r.outcomes["tf>tf2onnx>tvm:O0:llvm"].failure is None  # TVM is lenient: a minority of one
    mine = [f for f in r.verdict.findings if "tf>tf2onnx>ort:disable:cpu" in f.pipelines]
    assert len(mine) == 1 and len(r.verdict.findings) == 1, r.verdict.findings
    f = mine[0]
    assert (f.component, f.symptom) == ("tf2onnx", "invalid_model")
    assert set(ORT + ["tf>tf2onnx>onnxref"]) == set(f.pipelines)


@pytest.mark.slow
def test_a_failure_only_onnx_shows_is_onnxs_not_the_converters(runner: CaseRunner) -> None:
    """onnx's checker and its reference evaluator are one voter: alone against TVM, which runs the model and
    agrees with the source, the rejection is onnx's until an independent consumer agrees."""
    r = run_entry(runner, PAD, ["tf>tf2onnx>onnxref", "tf>tf2onnx>tvm:O0:llvm"])
    f = [f for f in r.verdict.findings if "tf>tf2onnx>onnxref" in f.pipelines]
    assert len(f) == 1 and f[0].component == "onnx (checker / shape inference)", r.verdict.findings
    assert "tf2onnx" not in f[0].component


@pytest.mark.slow
def test_a_new_finding_that_a_fresh_worker_does_not_show_is_flaky(tmp_path: Path) -> None:
    """A segfault that depends on the worker's state (here: it fires once per marker file) is re-run in a fresh
    worker before it is filed; it does not reproduce there, so it is kept apart and never counted."""
    work = prepare(tmp_path / "work")
    marker = tmp_path / "fired"
    pipe = "torch>onnx:torchscript>ort:all:cpu"
    env = dict(worker_env(work), FAULT_INJECTION_SPEC=f"{pipe}|compile|segfault|{marker}")
    e = load_entries(CORPUS / "tf2onnx-wrong-output-mod-a308de22")[0]
    with Worker("tests.fault_pipeline:run_job", Limits(stage_timeout_s=120), work / "logs", env) as w:
        r = CaseRunner(w, RunSettings(repeats=1), known=lambda sig: False).run_case(
            e.graph, e.values, resolve([pipe, "torch>onnx:torchscript>ort:disable:cpu"]))
    assert marker.exists() and r.outcomes[pipe].failure.kind == "segfault"
    assert not [f for f in r.verdict.findings if pipe in f.pipelines], r.verdict.findings
    flaky = [f for f in r.verdict.flaky if pipe in f.pipelines]
    assert flaky and "passed" in flaky[0].detail["flaky"]


@pytest.mark.slow
def test_an_o3_only_crash_still_reduces_when_o3_runs_alone(tmp_path: Path) -> None:
    """Blamed on the O3 level while O0 runs beside it; its identity is the crash itself, so the reducer's
    predicate holds with O3 alone."""
    work = prepare(tmp_path / "work")
    o0, o3 = "torch>export>tvm:O0:llvm", "torch>export>tvm:O3:llvm"
    e = load_entries(CORPUS / "tvm-torch-frontend-wrong-output-selu-fb2a74e4")[0]
    with Worker("tests.fault_o3:run_job", Limits(stage_timeout_s=120), work / "logs", worker_env(work)) as w:
        r = CaseRunner(w, RunSettings(repeats=1)).run_case(e.graph, e.values, resolve([o0, o3]))
        f = [f for f in r.verdict.findings if o3 in f.pipelines and f.symptom == "crash"]
        assert len(f) == 1 and f[0].component.startswith("tvm optimisation"), r.verdict.findings
        target = ReductionTarget.from_finding(f[0], [o3])  # O3 alone: no control to blame the level
        result = reduce_case(e.graph, e.values, target, w, budget_s=120)
    assert result.finding.signature == f[0].signature


# ----- the judge's rules on arrays ----------------------------------------------------------------------------
ORT_PAD_MESSAGE = ("[ONNXRuntimeError] : 1 : FAIL : Type Error: Type parameter (T) of Optype (Pad) bound to "
                   "different types (tensor(int32) and tensor(int64) in node (PadV2).")  # onnxruntime 1.32, PAD above


def test_levels_failing_alike_are_the_backends_bug_and_the_level_is_not_in_its_identity() -> None:
    torch_ort = [p.replace("tf>tf2onnx", "torch>onnx:torchscript") for p in ORT]
    fails = {p: Outcome(p, failure=Failure("compile", "exception", "Fail", ORT_PAD_MESSAGE)) for p in torch_ort}
    ok = np.zeros(3, dtype=np.float32)
    runs = {p: Outcome(p, [ok]) for p in ("torch>onnx:torchscript>onnxref", "torch>onnx:torchscript>tvm:O0:llvm")}
    v = judge_case({"torch": _ref(ok)}, {**fails, **runs})
    assert len(v.findings) == 1 and sorted(v.findings[0].pipelines) == sorted(torch_ort)
    assert v.findings[0].component == "onnxruntime" and "every level" in v.findings[0].why
    only_all = judge_case({"torch": _ref(ok)}, {torch_ort[-1]: fails[torch_ort[-1]], **runs})
    assert only_all.findings[0].signature == v.findings[0].signature  # fewer levels ran: the same bug
    upper = judge_case({"torch": _ref(ok)}, {**{p: fails[p] for p in torch_ort[1:]},
                                             torch_ort[0]: Outcome(torch_ort[0], [ok]), **runs})
    assert upper.findings[0].component == "onnxruntime optimizer (basic)"  # the lowest level that shows it
    assert upper.findings[0].signature == v.findings[0].signature


def _ref(out: np.ndarray) -> Reference:
    return Reference("torch", [out], [out.astype(np.float64) if out.dtype.kind == "f" else out])


def test_two_routes_with_the_same_wrong_values_on_tvm_are_one_bug() -> None:
    ref = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    wrong = np.array([1.0, 2.5, 3.0, 4.5], dtype=np.float32)
    outs = {"torch>onnx:torchscript>ort:disable:cpu": ref, "torch>onnx:torchscript>onnxref": ref,
            "torch>onnx:torchscript>tvm:O0:llvm": wrong, "torch>onnx:torchscript>tvm:O3:llvm": wrong,
            "torch>export>tvm:O0:llvm": wrong, "torch>export>tvm:O3:llvm": wrong, "torch>inductor:cpu": ref}
    v = judge_case({"torch": _ref(ref)}, {n: Outcome(n, [o]) for n, o in outs.items()})
    assert len(v.findings) == 1, [(f.component, f.pipelines) for f in v.findings]
    f = v.findings[0]
    assert f.component == "tvm (below both frontends)"
    assert f.detail["suspects"] == ["tvm onnx frontend", "tvm torch frontend"]
    assert len(f.pipelines) == 4


def test_different_libraries_making_different_mistakes_stay_apart() -> None:
    ref = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    outs = {"torch>onnx:torchscript>ort:disable:cpu": ref, "torch>onnx:torchscript>onnxref": ref,
            "torch>onnx:torchscript>tvm:O0:llvm": ref + 1, "torch>export>tvm:O0:llvm": ref * 3}
    v = judge_case({"torch": _ref(ref)}, {n: Outcome(n, [o]) for n, o in outs.items()})
    assert sorted(f.component for f in v.findings) == ["tvm onnx frontend", "tvm torch frontend"]


def test_a_dtype_difference_is_never_blamed_on_the_source() -> None:
    """Three pipelines on two paths return int32 where eager torch returns int64 and agree among themselves:
    the source defines the dtype, so the paths are blamed, not eager torch."""
    ref = np.array([1, 3, 6], dtype=np.int64)
    got = ref.astype(np.int32)
    outs = {"torch>onnx:torchscript>ort:disable:cpu": got, "torch>onnx:torchscript>onnxref": got,
            "torch>export>tvm:O0:llvm": got}
    v = judge_case({"torch": _ref(ref)}, {n: Outcome(n, [o]) for n, o in outs.items()})
    assert v.findings and all(f.component != "torch eager" for f in v.findings)
    assert {f.kind for f in v.findings} == {"dtype"}
    # the same agreement on values (not dtype) does make the source the odd one out
    v2 = judge_case({"torch": _ref(ref)}, {n: Outcome(n, [ref + 1]) for n in outs})
    assert [f.component for f in v2.findings] == ["torch eager"]


def test_a_multi_op_unsupported_message_is_one_gap_per_op() -> None:
    """The TVM torch frontend's real wording (tvm 0.27, ExportedProgramImporter._check_unsupported_func_type)."""
    msg = "Unsupported function types ['amax.default', 'amin.default']"
    pipe = "torch>export>tvm:O0:llvm"
    v = judge_case({}, {pipe: Outcome(pipe, failure=Failure("import", "unsupported", "AssertionError", msg))})
    assert not v.findings
    assert sorted(g.op for g in v.gaps) == ["amax", "amin"]
    one = judge_case({}, {pipe: Outcome(pipe, failure=Failure(
        "import", "unsupported", "AssertionError", "Unsupported function types ['amax.default']"))})
    assert one.gaps[0].signature in {g.signature for g in v.gaps}  # the same declined op is the same gap


def test_a_model_onnxruntime_runs_is_not_the_converters_fault() -> None:
    """The ONNX reference evaluator's GatherElements rejects index shapes that ONNX allows (its real message,
    onnx 1.23); TVM fails on the same model for its own reason. Two rejections, but onnxruntime runs the model
    and agrees with the source: each rejection is its library's, the exporter is not blamed."""
    ok = np.arange(6, dtype=np.float32)
    ref_msg = "Except for dimension 0, all dimensions of index and self should be the same size."
    outs = {"torch>onnx:torchscript>ort:disable:cpu": Outcome("torch>onnx:torchscript>ort:disable:cpu", [ok]),
            "torch>onnx:torchscript>onnxref": Outcome("torch>onnx:torchscript>onnxref", failure=Failure(
                "run", "exception", "ValueError", ref_msg)),
            "torch>onnx:torchscript>tvm:O0:llvm": Outcome("torch>onnx:torchscript>tvm:O0:llvm", failure=Failure(
                "import", "exception", "TypeError", "Reshape requires the input new shape to be Shape."))}
    v = judge_case({"torch": _ref(ok)}, outs)
    assert sorted(f.component for f in v.findings) == ["onnx reference evaluator", "tvm onnx frontend"]
