"""Real bugs in real systems under test, pinned: a tiny graph known to break a component yields the right finding.

Each test hand-builds a 1-node Parallax graph with fixed values, runs it through the real converters and
backends in one isolated worker, and asserts the symptom, stage and blamed component, plus that a control
pipeline through an independent implementation passes (so the finding is not the harness's own doing).
The versions pinned here are torch 2.13.0, onnx 1.23.2, onnxruntime 1.32.0, tvm 0.27.0 and TF 2.21: when
a bug is fixed upstream its test fails on purpose; then move the graph to the conformance tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fuzzer.case.runner import CaseResult, CaseRunner, RunSettings
from fuzzer.targets.registry import resolve
from fuzzer.workers.pool import Limits, Worker
from fuzzer.workers.workdir import prepare, worker_env
from generators.ir import Graph, Node, TensorType
from generators.values import Values
from oracles.judge import Finding

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseRunner]:
    work = prepare(tmp_path_factory.mktemp("real_bugs"))
    with Worker("fuzzer.targets.job:run_job", Limits(stage_timeout_s=120), work / "logs", worker_env(work)) as w:
        yield CaseRunner(w, RunSettings(repeats=3))


def one_node(op: str, attrs: dict, inputs: dict[str, np.ndarray], out: TensorType,
             weights: dict[str, np.ndarray] | None = None) -> tuple[Graph, Values]:
    """A graph of one `op` node over the given fixed arrays (inputs first, then weights, in node order)."""
    weights = weights or {}
    leaves = {**inputs, **weights}
    tensors = {name: TensorType(tuple(a.shape), str(a.dtype)) for name, a in leaves.items()}
    tensors["y"] = out
    g = Graph(tensors, list(inputs), list(weights), [Node("n0", op, list(leaves), ["y"], attrs)], ["y"])
    g.validate()
    return g, Values(dict(inputs), dict(weights))


def run(runner: CaseRunner, graph: Graph, values: Values, pipelines: list[str]) -> CaseResult:
    return runner.run_case(graph, values, resolve(pipelines))


def finding_for(result: CaseResult, pipeline: str) -> Finding:
    hits = [f for f in result.verdict.findings if pipeline in f.pipelines]
    assert len(hits) == 1, f"expected one finding on {pipeline}, got {result.verdict.findings}"
    return hits[0]


def assert_passes(result: CaseResult, pipeline: str) -> None:
    """The control: an independent path through the same graph agrees with the eager reference."""
    o = result.outcomes[pipeline]
    assert o.failure is None and o.outputs is not None, f"{pipeline}: {o}"
    assert not [f for f in result.verdict.findings if pipeline in f.pipelines], result.verdict.findings


def test_onnx_reference_evaluator_rejects_smaller_gather_elements_indices(runner: CaseRunner) -> None:
    """onnx 1.23.2 reference evaluator, GatherElements: the spec makes the output the shape of `indices`
    (out[i][j] = data[i][index[i][j]] for axis 1), so indices may be smaller than data outside the axis
    (as in torch.gather); the evaluator demands equal sizes and raises ValueError. onnxruntime agrees with
    torch. Upstream: https://github.com/onnx/onnx/pull/8444.
    """
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[3, 0], [1, 1]], dtype=np.int64)
    g, v = one_node("GatherElements", {"dim": 1}, {"x": x, "idx": idx}, TensorType((2, 2), "float32"))
    r = run(runner, g, v, ["torch>onnx:torchscript>onnxref", "torch>onnx:torchscript>ort:disable:cpu"])
    f = finding_for(r, "torch>onnx:torchscript>onnxref")
    assert (f.symptom, f.stage, f.component) == ("crash", "run", "onnx reference evaluator")
    assert "all dimensions of index and self should be the same size" in f.message
    assert_passes(r, "torch>onnx:torchscript>ort:disable:cpu")


def test_torchscript_exporter_emits_negative_transpose_perm(runner: CaseRunner) -> None:
    """torch 2.13.0 torch.onnx.export(dynamo=False): x.permute(1, 0, -1) is exported as Transpose with
    perm=[1, 0, -1], but ONNX Transpose's perm must be a permutation of 0..r-1 (no negative axes), so
    onnx.checker's full check rejects the model. The dynamo exporter normalises the axes.
    """
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    g, v = one_node("Transpose", {"perm": [1, 0, -1]}, {"x": x}, TensorType((3, 2, 4), "float32"))
    r = run(runner, g, v, ["torch>onnx:torchscript>ort:disable:cpu", "torch>onnx:torchscript>onnxref",
                           "torch>onnx:dynamo>ort:disable:cpu"])
    f = finding_for(r, "torch>onnx:torchscript>ort:disable:cpu")
    # onnx (checker) and onnxruntime both reject the model: the exporter's bug, whichever stage showed it
    assert (f.symptom, f.component) == ("invalid_model", "torch.onnx (torchscript)")
    assert f.stage in ("check", "compile")
    assert "perm" in f.message
    assert_passes(r, "torch>onnx:dynamo>ort:disable:cpu")


def test_torchscript_exporter_breaks_unbatched_circular_pad(runner: CaseRunner) -> None:
    """torch 2.13.0 torch.onnx.export(dynamo=False): F.pad(x, 6 pads, mode="circular") on a 4-D tensor is
    legal in torch (an unbatched C×D×H×W volume: pad the 3 trailing dims), but the exporter's circular-pad
    symbolic assumes a leading batch dim and emits Slice on axis 4 of a rank-4 tensor: an invalid model.
    """
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    attrs = {"mode": "circular", "k": 3, "value": None, "pad0": 1, "pad1": 0, "pad2": 0, "pad3": 1, "pad4": 1,
             "pad5": 1}
    g, v = one_node("Pad", attrs, {"x": x}, TensorType((2, 5, 5, 6), "float32"))
    r = run(runner, g, v, ["torch>onnx:torchscript>ort:disable:cpu", "torch>onnx:torchscript>onnxref",
                           "torch>onnx:dynamo>ort:disable:cpu"])
    f = finding_for(r, "torch>onnx:torchscript>ort:disable:cpu")
    # onnx (checker) and onnxruntime both reject the model: the exporter's bug, whichever stage showed it
    assert (f.symptom, f.component) == ("invalid_model", "torch.onnx (torchscript)")
    assert f.stage in ("check", "compile")
    assert "Slice" in f.message
    assert_passes(r, "torch>onnx:dynamo>ort:disable:cpu")


def test_torchscript_exporter_drops_cumsum_int64_promotion(runner: CaseRunner) -> None:
    """torch 2.13.0 torch.onnx.export(dynamo=False): torch.cumsum of an int32 tensor returns int64 (integer
    cumsums promote, as torch.sum does), but the exporter emits CumSum on int32 with no Cast, so every
    consumer of the model returns int32: a wrong output dtype. The dynamo exporter keeps the promotion.
    """
    x = np.array([[1, -2, 3, 4], [5, 6, -7, 8]], dtype=np.int32)
    g, v = one_node("CumSum", {"axis": 1, "reverse": False, "exclusive": False}, {"x": x},
                    TensorType((2, 4), "int64"))
    pipes = ["torch>onnx:torchscript>ort:disable:cpu", "torch>onnx:torchscript>onnxref",
             "torch>onnx:dynamo>ort:disable:cpu"]
    r = run(runner, g, v, pipes)
    f = finding_for(r, "torch>onnx:torchscript>ort:disable:cpu")
    assert (f.symptom, f.stage, f.component, f.kind) == ("wrong_output", "run", "torch.onnx (torchscript)",
                                                         "dtype")
    assert "torch>onnx:torchscript>onnxref" in f.pipelines
    assert "int32" in f.message and "int64" in f.message
    assert_passes(r, "torch>onnx:dynamo>ort:disable:cpu")


def test_tvm_torch_frontend_drops_cumsum_int64_promotion(runner: CaseRunner) -> None:
    """tvm 0.27.0 Relax torch.export frontend: aten.cumsum of an int32 tensor is typed int64 in the
    exported program (torch promotes integer cumsums), but the frontend lowers it to relax cumsum with no
    dtype, so the compiled module returns int32.
    """
    x = np.array([[1, -2, 3, 4], [5, 6, -7, 8]], dtype=np.int32)
    g, v = one_node("CumSum", {"axis": 1, "reverse": False, "exclusive": False}, {"x": x},
                    TensorType((2, 4), "int64"))
    r = run(runner, g, v, ["torch>export>tvm:O0:llvm", "torch>onnx:dynamo>ort:disable:cpu"])
    f = finding_for(r, "torch>export>tvm:O0:llvm")
    assert (f.symptom, f.stage, f.component) == ("wrong_output", "run", "tvm torch frontend")
    assert "int32" in f.message and "int64" in f.message
    assert_passes(r, "torch>onnx:dynamo>ort:disable:cpu")


def test_tvm_torch_frontend_drops_batch_dims_of_nearest_exact_3d_upsample(runner: CaseRunner) -> None:
    """tvm 0.27.0 Relax torch.export frontend: F.interpolate(mode="nearest-exact") of an N×C×D×H×W tensor
    reaches the frontend decomposed into aten.index with broadcast index tensors; the frontend's
    index_tensor conversion drops the leading N and C dims and returns a rank-3 tensor (with N, C > 1 of
    different sizes it instead fails at import: "index_tensor: cannot broadcast index shapes").
    onnxruntime runs the same graph through the dynamo exporter.
    """
    x = np.arange(1 * 2 * 1 * 2 * 2, dtype=np.float32).reshape(1, 2, 1, 2, 2)
    attrs = {"mode": "nearest-exact", "align_corners": None, "antialias": False,
             "scale": [[2, 1], [5, 2], [3, 2]], "recompute": True}
    g, v = one_node("Interpolate", attrs, {"x": x}, TensorType((1, 2, 2, 5, 3), "float32"))
    r = run(runner, g, v, ["torch>export>tvm:O0:llvm", "torch>onnx:dynamo>ort:disable:cpu"])
    f = finding_for(r, "torch>export>tvm:O0:llvm")
    assert (f.symptom, f.stage, f.component) == ("wrong_output", "run", "tvm torch frontend")
    assert "got float32[2, 5, 3]" in f.message
    assert_passes(r, "torch>onnx:dynamo>ort:disable:cpu")


def test_torchscript_exporter_truncates_integer_floor_divide(runner: CaseRunner) -> None:
    """torch 2.13.0 torch.onnx.export(dynamo=False): torch.floor_divide rounds toward -inf (since torch
    1.13), but for int64 operands the exporter emits a bare ONNX Div, which truncates toward zero, so
    -7 // 2 comes out -3 instead of -4 in every consumer. The dynamo exporter gets it right.
    """
    a = np.array([7, -7, 7, -7, 6, -6], dtype=np.int64)
    b = np.array([2, 2, -2, -2, 3, 3], dtype=np.int64)
    g, v = one_node("FloorDiv", {}, {"a": a, "b": b}, TensorType((6,), "int64"))
    pipes = ["torch>onnx:torchscript>ort:disable:cpu", "torch>onnx:torchscript>onnxref",
             "torch>onnx:dynamo>ort:disable:cpu"]
    r = run(runner, g, v, pipes)
    f = finding_for(r, "torch>onnx:torchscript>ort:disable:cpu")
    assert (f.symptom, f.stage, f.component, f.kind) == ("wrong_output", "run", "torch.onnx (torchscript)",
                                                         "semantic")
    got = r.outcomes["torch>onnx:torchscript>ort:disable:cpu"].outputs
    assert got is not None and got[0].tolist() == [3, -3, -3, 3, 2, -2]  # truncation: the bug itself
    assert_passes(r, "torch>onnx:dynamo>ort:disable:cpu")


def test_tf2onnx_converts_integer_floormod_with_truncating_div(runner: CaseRunner) -> None:
    """tf2onnx 1.17.0: tf.math.floormod of int32 tensors (result takes the divisor's sign, -7 mod 3 = 2)
    is converted to a - (a / b) * b with ONNX Div, which truncates for integers, so every consumer returns
    the C-style remainder (-7 mod 3 = -1). ONNX has Mod(fmod=0) with exactly the floor semantics.
    """
    a = np.array([7, -7, 7, -7, 5, -5], dtype=np.int32)
    b = np.array([3, 3, -3, -3, 5, 5], dtype=np.int32)
    g, v = one_node("Mod", {}, {"a": a, "b": b}, TensorType((6,), "int32"))
    r = run(runner, g, v, ["tf>tf2onnx>ort:disable:cpu", "tf>tf2onnx>onnxref", "torch>onnx:dynamo>ort:disable:cpu"])
    f = finding_for(r, "tf>tf2onnx>ort:disable:cpu")
    assert (f.symptom, f.stage, f.component, f.kind) == ("wrong_output", "run", "tf2onnx", "semantic")
    assert "tf>tf2onnx>onnxref" in f.pipelines
    got = r.outcomes["tf>tf2onnx>ort:disable:cpu"].outputs
    assert got is not None and got[0].tolist() == [1, -1, 1, -1, 0, 0]
    assert_passes(r, "torch>onnx:dynamo>ort:disable:cpu")  # the same graph, floor semantics kept


def test_tvm_llvm_codegen_emits_fcmp_on_bool_equal(runner: CaseRunner) -> None:
    """tvm 0.27.0 LLVM codegen: ONNX Equal on two bool tensors (legal since opset 11) is lowered to an
    LLVM floating-point compare (`fcmp oeq i1`), which LLVM's module verifier rejects: a crash at compile,
    already at O0. onnxruntime runs the same exported model.
    """
    a = np.array([[True, False, True], [False, False, True]])
    b = np.array([True, False, False])
    g, v = one_node("Equal", {}, {"a": a, "b": b}, TensorType((2, 3), "bool"))
    r = run(runner, g, v, ["torch>onnx:torchscript>tvm:O0:llvm", "torch>onnx:torchscript>ort:disable:cpu"])
    f = finding_for(r, "torch>onnx:torchscript>tvm:O0:llvm")
    assert (f.symptom, f.stage, f.component) == ("crash", "compile", "tvm codegen")
    assert "fcmp" in f.message
    assert_passes(r, "torch>onnx:torchscript>ort:disable:cpu")
