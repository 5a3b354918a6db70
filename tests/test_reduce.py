"""The reducer: pure graph edits, the shrinker's order and cache, and real bugs reduced through real systems.

The bug graphs are the one-node real bugs of tests/test_real_bugs.py grown by unrelated nodes before,
after and beside the buggy op; the reducer must get back to a handful of nodes with the same signature,
and never touch the input folder.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fuzzer.case.files import read_case, write_case
from generators import graph_edit as edit
from generators.ir import Graph, GraphError, Node, TensorType
from generators.values import Values
from tests.test_cli_gen import _one_line_error, parallax

T = TensorType
FLOORDIV_PIPES = ["torch>onnx:torchscript>ort:disable:cpu", "torch>onnx:torchscript>onnxref",
                  "torch>onnx:dynamo>ort:disable:cpu"]
GATHER_PIPES = ["torch>onnx:torchscript>onnxref", "torch>onnx:torchscript>ort:disable:cpu"]


def floordiv_padded() -> tuple[Graph, Values]:
    """torch.onnx (torchscript) truncates int64 floor_divide (a mismatch), with two Negs before it, an Add and
    an Abs after it, and an unrelated float branch: 7 nodes, 2 outputs."""
    a = np.array([7, -7, 7, -7, 6, -6], dtype=np.int64)
    b = np.array([2, 2, -2, -2, 3, 3], dtype=np.int64)
    i6 = T((6,), "int64")
    tensors = {"a0": i6, "a1": i6, "a": i6, "b": i6, "y": i6, "c": i6, "z": i6, "z2": i6,
               "x": T((2, 3), "float32"), "r": T((2, 3), "float32"), "s": T((2, 3), "float32")}
    nodes = [Node("n0", "Neg", ["a0"], ["a1"]), Node("n1", "Neg", ["a1"], ["a"]),
             Node("n2", "FloorDiv", ["a", "b"], ["y"]), Node("n3", "Add", ["y", "c"], ["z"]),
             Node("n4", "Abs", ["z"], ["z2"]), Node("n5", "Relu", ["x"], ["r"]), Node("n6", "Sigmoid", ["r"], ["s"])]
    g = Graph(tensors, ["a0", "b", "x"], ["c"], nodes, ["z2", "s"])
    g.validate()
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    return g, Values({"a0": -a, "b": b, "x": x}, {"c": np.arange(1, 7, dtype=np.int64)})


def gather_padded() -> tuple[Graph, Values]:
    """The ONNX reference evaluator rejects GatherElements indices smaller than the data (a crash), with a
    Relu before it, a Sigmoid and a Mul after it, and a Tanh/Add branch beside it: 6 nodes, 2 outputs."""
    f34, f22 = T((3, 4), "float32"), T((2, 2), "float32")
    tensors = {"x0": f34, "x": f34, "idx": T((2, 2), "int64"), "y": f22, "z": f22, "w": f22, "u": f34, "v": f34}
    nodes = [Node("n0", "Relu", ["x0"], ["x"]), Node("n1", "GatherElements", ["x", "idx"], ["y"], {"dim": 1}),
             Node("n2", "Sigmoid", ["y"], ["z"]), Node("n3", "Mul", ["z", "y"], ["w"]),
             Node("n4", "Tanh", ["x0"], ["u"]), Node("n5", "Add", ["u", "x"], ["v"])]
    g = Graph(tensors, ["x0", "idx"], [], nodes, ["w", "v"])
    g.validate()
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    return g, Values({"x0": x, "idx": np.array([[3, 0], [1, 1]], dtype=np.int64)}, {})


def clean_graph() -> tuple[Graph, Values]:
    g = Graph({"x": T((2, 3), "float32"), "y": T((2, 3), "float32")}, ["x"], [], [Node("n0", "Relu", ["x"], ["y"])],
              ["y"])
    g.validate()
    return g, Values({"x": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)}, {})


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# -- pure graph edits -------------------------------------------------------------------------------------
def test_keep_ancestors_drops_the_other_branch() -> None:
    g, _ = floordiv_padded()
    cut = edit.keep_ancestors(g, ["y"])
    assert [n.op for n in cut.nodes] == ["Neg", "Neg", "FloorDiv"]
    assert cut.outputs == ["y"] and cut.inputs == ["a0", "b"] and cut.weights == []
    assert set(cut.tensors) == {"a0", "a1", "a", "b", "y"}
    assert len(g.nodes) == 7  # the original is untouched
    with pytest.raises(GraphError):
        edit.keep_ancestors(g, ["a0"])  # a leaf cannot be an output


def test_make_leaves_replaces_a_prefix_by_inputs() -> None:
    g, _ = floordiv_padded()
    cut = edit.make_leaves(g, {"a": "input"})
    assert "n0" not in [n.name for n in cut.nodes] and "n1" not in [n.name for n in cut.nodes]
    assert "a" in cut.inputs and "a0" not in cut.inputs
    cut.validate()
    assert [n.op for n in cut.topological_nodes()][0] == "FloorDiv"


def test_remove_node_rewires_consumers() -> None:
    g, _ = floordiv_padded()
    out = edit.remove_node(g, "n1", {"a": "a1"})  # bypass the second Neg
    floordiv = next(n for n in out.nodes if n.op == "FloorDiv")
    assert floordiv.inputs == ["a1", "b"] and len(out.nodes) == 6
    with pytest.raises(GraphError):
        edit.remove_node(g, "n2", {"y": "x"})  # float32[2,3] cannot stand for int64[6]
    with pytest.raises(GraphError):
        edit.remove_node(g, "n2", {})  # y is consumed: it needs a substitute


def test_resize_leaves_reinfers_downstream_and_rejects_broken_rules() -> None:
    g, _ = floordiv_padded()
    small = edit.resize_leaves(g, {"x": (1, 3)})
    assert small.tensors["r"].shape == (1, 3) and small.tensors["s"].shape == (1, 3)
    both = edit.resize_leaves(g, {"a0": (2,), "b": (2,), "c": (2,)})
    assert both.tensors["z2"].shape == (2,)
    with pytest.raises(GraphError):
        edit.resize_leaves(g, {"a0": (4,), "b": (3,)})  # 4 and 3 do not broadcast


def test_set_attrs_moves_coupled_leaf_dims() -> None:
    x, w = T((1, 2, 5), "float32"), T((3, 2, 3), "float32")
    attrs = {"rank": 1, "has_bias": False, "uniform": False, "padding": "explicit", "padding_mode": "zeros",
             "depthwise": False, "kernel0": 3, "stride0": 1, "pad0": 0, "dilation0": 1, "groups": 1,
             "out_per_group": 3}
    g = Graph({"x": x, "w": w, "y": T((1, 3, 3), "float32")}, ["x"], ["w"],
              [Node("c", "Conv", ["x", "w"], ["y"], attrs)], ["y"])
    g.validate()
    with pytest.raises(GraphError):
        edit.set_attrs(g, "c", {"kernel0": 1})  # the weight still carries kernel 3
    k1 = edit.set_attrs(g, "c", {"kernel0": 1}, {"w": (3, 2, 1)})
    assert k1.tensors["y"].shape == (1, 3, 5)


# -- the target: which pipeline, which follow-ups, what counts as the same bug ---------------------------------
def test_target_keeps_the_cheapest_pipeline_and_only_the_followups_its_signature_needs() -> None:
    from fuzzer.reduce import ReductionTarget, control_pipelines
    from oracles.judge import Finding, Verdict

    run = ["torch>onnx:torchscript>onnxref", "torch>onnx:torchscript>ort:disable:cpu",
           "torch>onnx:torchscript>tvm:O3:llvm", "tf>tf2onnx>onnxref"]
    f = Finding("wrong_output", "run", "", "torch.onnx (torchscript)", [run[2], run[0]], "semantic", "sig-a")
    t = ReductionTarget.from_finding(f, run)
    assert t.pipeline == t.anchor == "torch>onnx:torchscript>onnxref"
    s = t.settings()
    assert (s.localise, s.confirm_slowdowns, s.bisect_passes, s.repeats) == (True, False, False, 0)
    f.culprit = "FuseOps"
    assert ReductionTarget.from_finding(f, run).settings().bisect_passes
    slow = Finding("slowdown", "run", "", "tvm optimisation (O3)", [run[2], "torch>onnx:torchscript>tvm:O0:llvm"],
                   "slowdown", "sig-s")
    st = ReductionTarget.from_finding(slow, run + ["torch>onnx:torchscript>tvm:O0:llvm"])
    assert st.pipeline == run[2] and st.settings().confirm_slowdowns and st.settings().repeats > 0
    ref = Finding("crash", "reference", "", "tensorflow eager", ["tf>reference"], "exception", "sig-r")
    assert ReductionTarget.from_finding(ref, run).anchor == "tf>tf2onnx>onnxref"
    # the same failure on another pipeline, or another failure on this one (another first op, another mechanism),
    # or the same failure that the kept controls now blame elsewhere: not the same bug
    other = Finding("wrong_output", "run", "", "x", [run[1]], "semantic", "sig-a")
    assert t.match(Verdict([other], [], {}, [])) is None
    moved = Finding("wrong_output", "run", "", "x", [run[0]], "semantic", "sig-b", first_op="Add")
    assert t.match(Verdict([moved], [], {}, [])) is None
    assert t.match(Verdict([Finding("wrong_output", "run", "", "x", [run[0]], "dtype", "sig-c")], [], {}, [])) is None
    relabelled = Finding("wrong_output", "run", "", "onnx reference evaluator", [run[0]], "semantic", "sig-d")
    assert t.match(Verdict([relabelled], [], {}, [])) is None
    assert t.match(Verdict([other, f], [], {}, [])) is f
    controls = control_pipelines(["torch>onnx:torchscript>tvm:O3:llvm"], run + ["torch>onnx:torchscript>tvm:O0:llvm"])
    assert {"torch>onnx:torchscript>tvm:O0:llvm", "torch>onnx:torchscript>onnxref",
            "torch>onnx:torchscript>ort:disable:cpu"} <= set(controls)
    assert "tf>tf2onnx>onnxref" not in controls


# -- the shrinker on a structural predicate (no system under test: it checks the order, passes and cache) --
def test_shrinker_reaches_the_one_node_a_predicate_needs() -> None:
    from fuzzer.reduce.passes import DEFAULT_PASSES
    from fuzzer.reduce.shrinker import Candidate, Shrinker, complexity
    from oracles.judge import Finding

    g, v = floordiv_padded()
    runs: list[int] = []

    def has_floordiv(graph: Graph, values: Values, pipelines: list[str]) -> Finding | None:
        runs.append(len(graph.nodes))
        ok = any(n.op == "FloorDiv" for n in graph.nodes) and bool((values.inputs.get("b", 1) != 0).all())
        return Finding("crash", "run", "", "x", list(pipelines), "exception", "sig") if ok else None

    start = Candidate(g, v, ("p1", "p2"))
    sh = Shrinker(start, has_floordiv(g, v, ["p1", "p2"]), has_floordiv, required_pipeline="p1")
    best = sh.run(DEFAULT_PASSES)
    assert [n.op for n in best.graph.nodes] == ["FloorDiv"]
    assert best.pipelines == ("p1",)
    assert complexity(best) < complexity(start)
    assert sh.stats.predicate_runs == len(runs) - 1  # the first call above was ours
    assert sh.stats.cache_hits > 0  # the fixpoint's last round re-proposes candidates already judged
    assert sh.stats.predicate_runs + sh.stats.cache_hits + sh.stats.invalid + sh.stats.not_simpler \
        == sh.stats.candidates


# -- real systems -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from fuzzer.workers.pool import Limits, Worker
    from fuzzer.workers.workdir import prepare, worker_env

    work = prepare(tmp_path_factory.mktemp("reduce"))
    with Worker("fuzzer.targets.job:run_job", Limits(stage_timeout_s=120), work / "logs", worker_env(work)) as w:
        yield w


@pytest.mark.slow
def test_reduces_a_padded_crash_to_the_buggy_op(worker: object) -> None:
    from fuzzer.case.runner import CaseRunner, RunSettings
    from fuzzer.reduce import find_target, reduce_case
    from oracles.pipeline_id import parse_pipeline

    g, v = gather_padded()
    target = find_target(g, v, worker, GATHER_PIPES)
    assert (target.symptom, target.component) == ("crash", "onnx reference evaluator")
    r = reduce_case(g, v, target, worker, budget_s=300)
    assert len(r.graph.nodes) <= 3 and "GatherElements" in [n.op for n in r.graph.nodes]
    assert r.finding.signature == target.signature and r.stats["nodes_before"] == 6
    assert r.stats["predicate_runs"] >= 2 and r.stats["seconds"] > 0
    # an independent re-run of the reduced case shows the same bug
    again = CaseRunner(worker, RunSettings(repeats=1)).run_case(r.graph, r.values,
                                                                 [parse_pipeline(p) for p in r.pipelines])
    assert target.signature in [f.signature for f in again.verdict.findings]


@pytest.mark.slow
def test_cli_reduces_a_padded_mismatch_and_leaves_the_case_alone(tmp_path: Path) -> None:
    g, v = floordiv_padded()
    case, out = tmp_path / "case", tmp_path / "out"
    write_case(case, g, v, {"note": "padded floor_divide"})
    before = snapshot(case)
    r = parallax("reduce", str(case), "--out", str(out), "--pipelines", ",".join(FLOORDIV_PIPES),
                 "--work-dir", str(tmp_path / "w"), "--quiet", "--corpus-entry")
    assert r.returncode == 0, r.stderr
    assert snapshot(case) == before
    assert {"graph.json", "inputs.npz", "weights.npz", "case.json", "finding.json", "reduce.json"} <= {
        p.name for p in out.iterdir()}
    stats = json.loads((out / "reduce.json").read_text())
    finding = json.loads((out / "finding.json").read_text())
    assert stats["nodes_before"] == 7 and stats["nodes_after"] <= 5
    assert stats["predicate_runs"] >= 1 and stats["candidates_tried"] >= stats["predicate_runs"]
    assert finding["signature"] == stats["signature"]
    assert (finding["symptom"], finding["component"], finding["first_op"]) == (
        "wrong_output", "torch.onnx (torchscript)", "FloorDiv")
    assert "torch>onnx:torchscript>onnxref" in finding["pipelines_needed"]
    assert f"{stats['nodes_before']} -> {stats['nodes_after']} nodes" in r.stdout
    graph, _ = read_case(out)
    assert len(graph.nodes) == stats["nodes_after"]
    assert (out / "entry" / "repro.py").is_file(), r.stderr  # the corpus entry of the reduced case
    # independently: `parallax run` on the reduced case shows the same signature
    run = parallax("run", str(out), "--pipelines", ",".join(finding["pipelines_needed"]), "--json",
                   "--work-dir", str(tmp_path / "w"))
    assert run.returncode == 1, run.stderr
    assert finding["signature"] in [f["signature"] for f in json.loads(run.stdout)["findings"]]
    # a reduced case with its finding.json reduces again from the recorded target, to no more nodes
    again = parallax("reduce", str(out), "--out", str(tmp_path / "again"), "--work-dir", str(tmp_path / "w"),
                     "--json", "--quiet")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["nodes_after"] <= stats["nodes_after"]


@pytest.mark.slow
def test_cli_case_that_does_not_reproduce_exits_1(tmp_path: Path) -> None:
    g, v = clean_graph()
    case = tmp_path / "case"
    write_case(case, g, v, {})
    claim = {"signature": "crash|onnxruntime|run|exception|RuntimeError|0123456789abcdef", "symptom": "crash",
             "stage": "run", "component": "onnxruntime", "pipelines": ["torch>onnx:torchscript>ort:disable:cpu"],
             "pipelines_needed": ["torch>onnx:torchscript>ort:disable:cpu"]}
    (case / "finding.json").write_text(json.dumps(claim))
    before = snapshot(case)
    r = parallax("reduce", str(case), "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w"))
    assert r.returncode == 1
    assert "does not reproduce" in r.stderr
    assert snapshot(case) == before and not (tmp_path / "out").exists()


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    """`parallax ARGS` in this process (bad input never starts a worker): no interpreter start per call."""
    from fuzzer.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["parallax", *args], code, out, err)


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parallax = lambda *args: in_process(capsys, *args)  # noqa: E731
    g, v = clean_graph()
    case = tmp_path / "case"
    write_case(case, g, v, {})
    before = snapshot(case)
    _one_line_error(parallax("reduce", str(tmp_path / "nope")), "not a folder")
    _one_line_error(parallax("reduce", str(case), "--out", str(case / "inside")), "must not be the case folder")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    _one_line_error(parallax("reduce", str(case), "--out", str(busy)), "not a reduce output")
    assert (busy / "keep.txt").read_text() == "mine"
    _one_line_error(parallax("reduce", str(case), "--pipelines", "torch>nope:cpu"), "unknown backend 'nope'")
    (case / "finding.json").write_text("{broken")
    _one_line_error(parallax("reduce", str(case)), "finding.json")
    (case / "finding.json").write_text(json.dumps({"signature": "x"}))
    _one_line_error(parallax("reduce", str(case)), "missing")
    (case / "finding.json").unlink()
    broken = tmp_path / "broken"
    write_case(broken, g, v, {})
    (broken / "inputs.npz").write_bytes(b"not an npz")
    _one_line_error(parallax("reduce", str(broken)), "inputs.npz")
    assert snapshot(case) == before
    assert not (tmp_path / "case-reduced").exists()
