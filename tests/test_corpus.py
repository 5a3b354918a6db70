"""Corpus entries from real findings: write_entry's layout, repro.py run where Parallax cannot be imported,
controls that must print NOT REPRODUCED, and `parallax replay` (table, JSON, fixed, corrupt input)."""

from __future__ import annotations

import copy
import json
import runpy
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_corpus_replay import make_clean_python, run_clean, verdict_lines
from test_real_bugs import one_node

from fuzzer.case.runner import CaseResult, CaseRunner, RunSettings
from fuzzer.cli import main
from fuzzer.corpus.entry import EntryError, message_keys, read_entry, write_entry
from fuzzer.corpus.test_data import read_data_set
from fuzzer.targets.registry import resolve
from fuzzer.workers.pool import Limits, Worker
from fuzzer.workers.workdir import prepare, worker_env
from generators.ir import Graph, TensorType
from generators.values import Values
from oracles.judge import Finding

# name -> (graph builder args, pipelines run, pipeline of the entry)
CASES = {
    "floordiv": (("FloorDiv", {}, {"a": np.array([7, -7, 7, -7, 6, -6], dtype=np.int64),
                                   "b": np.array([2, 2, -2, -2, 3, 3], dtype=np.int64)}, TensorType((6,), "int64")),
                 ["torch>onnx:torchscript>ort:disable:cpu", "torch>onnx:torchscript>onnxref",
                  "torch>onnx:dynamo>ort:disable:cpu"], "torch>onnx:torchscript>ort:disable:cpu"),
    "floormod": (("Mod", {}, {"a": np.array([7, -7, 7, -7, 5, -5], dtype=np.int32),
                              "b": np.array([3, 3, -3, -3, 5, 5], dtype=np.int32)}, TensorType((6,), "int32")),
                 ["tf>tf2onnx>ort:disable:cpu", "tf>tf2onnx>onnxref"], "tf>tf2onnx>ort:disable:cpu"),
    "gather": (("GatherElements", {"dim": 1}, {"x": np.arange(12, dtype=np.float32).reshape(3, 4),
                                               "idx": np.array([[3, 0], [1, 1]], dtype=np.int64)},
                TensorType((2, 2), "float32")),
               ["torch>onnx:torchscript>onnxref", "torch>onnx:torchscript>ort:disable:cpu"],
               "torch>onnx:torchscript>onnxref"),
    "cumsum": (("CumSum", {"axis": 1, "reverse": False, "exclusive": False},
                {"x": np.array([[1, -2, 3, 4], [5, 6, -7, 8]], dtype=np.int32)}, TensorType((2, 4), "int64")),
               ["torch>export>tvm:O0:llvm", "torch>onnx:dynamo>ort:disable:cpu"], "torch>export>tvm:O0:llvm"),
}


def test_message_keys_are_stable_fragments_of_the_raw_text() -> None:
    """The keys repro.py checks survive another graph: no names, shapes or numbers, and verbatim in the text."""
    a = "ValueError: Except for dimension 1, all dimensions of index and self should be the same size (got [2, 2])."
    b = "ValueError: Except for dimension 0, all dimensions of index and self should be the same size (got [5, 1])."
    (key,) = message_keys(a)
    assert message_keys(b) == [key] and "all dimensions of index and self should be the same size" in key
    assert not any(c.isdigit() for c in key) and key in a
    assert message_keys("x_12 3") == []


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseRunner]:
    work = prepare(tmp_path_factory.mktemp("corpus_work"))
    with Worker("fuzzer.targets.job:run_job", Limits(stage_timeout_s=120), work / "logs", worker_env(work)) as w:
        yield CaseRunner(w, RunSettings(repeats=1, confirm_slowdowns=False, bisect_passes=False))


@pytest.fixture(scope="module")
def cases(runner: CaseRunner) -> dict[str, tuple[Graph, Values, Finding, CaseResult, str]]:
    out = {}
    for name, (args, pipelines, target) in CASES.items():
        graph, values = one_node(*args)
        result = runner.run_case(graph, values, resolve(pipelines))
        hits = [f for f in result.verdict.findings if target in f.pipelines]
        assert len(hits) == 1, f"{name}: {result.verdict.findings}"
        out[name] = (graph, values, hits[0], result, target)
    return out


@pytest.fixture(scope="module")
def entries(cases: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    return {name: write_entry(root / name, g, v, f, r, target) for name, (g, v, f, r, target) in cases.items()}


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clean_python(tmp_path_factory.mktemp("clean_venv"))


def control_entry(cases: dict, name: str, pipeline: str, out: Path, component: str = "") -> Path:
    """The entry of a real finding, written for a pipeline that does not show the bug (blamed on `component`:
    a converter makes repro.py start from the source model, a backend from model.onnx)."""
    graph, values, finding, result, _ = cases[name]
    other = copy.deepcopy(finding)
    other.pipelines = [pipeline]
    other.component = component or other.component
    return write_entry(out, graph, values, other, result, pipeline)


@pytest.mark.slow
def test_entry_layout(entries: dict[str, Path], cases: dict) -> None:
    folder = entries["floordiv"]
    graph, values, finding, result, _ = cases["floordiv"]
    for f in ("graph.json", "finding.json", "model.onnx", "repro.py", "report.md", "weights.npz"):
        assert (folder / f).is_file(), f
    record, g, v = read_entry(folder)
    assert g == graph and record["signature"] == finding.signature
    assert record["versions"]["torch"].startswith("2.") and record["versions"]["onnxruntime"]
    assert record["tolerances"] == [{"output": "y", "dtype": "int64", "atol": 0.0, "rtol": 0.0, "exact": True}]
    assert record["records"] and record["records"][0]["klass"] == "semantic"
    inputs, outputs = read_data_set(folder)
    assert [n for n, _ in inputs] == ["a", "b"] and np.array_equal(inputs[0][1], values.inputs["a"])
    assert outputs[0][1].tolist() == [3, -4, -4, 3, 2, -2]  # floor division: the eager reference
    report = (folder / "report.md").read_text()
    assert report.startswith("# [ONNX] TorchScript exporter") and "int64 FloorDiv" in report.splitlines()[0]
    assert "torch>onnx:torchscript>ort:disable:cpu" in report and "python repro.py" in report
    repro = (folder / "repro.py").read_text()
    assert repro in report
    for name in ("fuzzer", "generators", "oracles"):
        assert f"import {name}" not in repro and f"from {name}" not in repro
    tf_entry = entries["floormod"]
    assert (tf_entry / "saved_model" / "saved_model.pb").is_file()
    assert (entries["gather"] / "model.onnx").is_file()
    assert 'model_bytes = (HERE / "model.onnx").read_bytes()' in (entries["gather"] / "repro.py").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_repro_reproduces_without_parallax(name: str, entries: dict[str, Path], clean_python: Path,
                                          tmp_path: Path) -> None:
    proc = run_clean(clean_python, entries[name], tmp_path)
    lines = verdict_lines(proc)
    assert proc.returncode == 0 and lines[-2:-1] == ["REPRODUCED"], f"{proc.stdout}\n{proc.stderr[-3000:]}"
    detail = lines[-1]
    expected = {"floordiv": "got -3, expected -4", "floormod": "got -1, expected 2",
                "gather": "ValueError at run", "cumsum": "got int32[2, 4], expected int64[2, 4]"}[name]
    assert expected in detail, detail


@pytest.mark.slow
def test_control_expected_outputs_equal_to_the_backend(entries: dict[str, Path], clean_python: Path,
                                                       tmp_path: Path) -> None:
    """The same repro, with expected outputs replaced by what the buggy pipeline gives: NOT REPRODUCED."""
    from onnx import numpy_helper

    entry = tmp_path / "entry"
    shutil.copytree(entries["floordiv"], entry)
    truncated = np.array([3, -3, -3, 3, 2, -2], dtype=np.int64)
    (entry / "test_data_set_0" / "output_0.pb").write_bytes(
        numpy_helper.from_array(truncated, "y").SerializeToString())
    proc = run_clean(clean_python, entry, tmp_path / "run")
    assert proc.returncode == 1 and verdict_lines(proc)[-2:] == [
        "NOT REPRODUCED", "torch>onnx:torchscript>ort:disable:cpu matches the expected outputs"], proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name, pipeline, component", [
    ("floordiv", "torch>onnx:dynamo>ort:disable:cpu", "torch.onnx (dynamo)"),
    ("gather", "torch>onnx:torchscript>ort:disable:cpu", ""),
    ("floormod", "tf>xla:cpu", "xla")])
def test_control_pipeline_without_the_bug(name: str, pipeline: str, component: str, cases: dict,
                                          clean_python: Path, tmp_path: Path) -> None:
    entry = control_entry(cases, name, pipeline, tmp_path / "entry", component)
    mode = json.loads((entry / "finding.json").read_text())["mode"]
    assert mode == ("onnx" if name == "gather" else "source")
    proc = run_clean(clean_python, entry, tmp_path / "run")
    lines = verdict_lines(proc)
    assert proc.returncode == 1 and lines[-2:-1] == ["NOT REPRODUCED"], f"{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "different failure" not in lines[-1]


@pytest.mark.slow
def test_first_difference_is_nan_and_inf_aware(entries: dict[str, Path]) -> None:
    """The comparison inside repro.py: NaN equals NaN, infinities equal by sign, ints exact."""
    ns = runpy.run_path(str(entries["gather"] / "repro.py"), run_name="repro")
    diff = ns["first_difference"]
    e = np.array([np.nan, 1.0, np.inf], dtype=np.float32)
    assert diff(e, e.copy(), 0.0, 0.0) is None
    assert diff(e, np.array([np.nan, 1.0, -np.inf], dtype=np.float32), 1.0, 1.0) is not None
    assert "index [0]" in diff(np.array([1.0], np.float32), np.array([np.nan], np.float32), 10.0, 1.0)
    assert diff(np.array([1.0], np.float32), np.array([1.05], np.float32), 0.1, 0.0) is None
    assert diff(np.array([2], np.int64), np.array([3], np.int64), 10.0, 10.0) is not None
    assert "expected int64" in diff(np.array([2], np.int64), np.array([2], np.int32), 0.0, 0.0)


@pytest.mark.slow
def test_replay_two_entries(entries: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    for name in ("gather", "floordiv"):
        shutil.copytree(entries[name], corpus / name)
    before = _files(corpus)
    work = ["--work-dir", str(tmp_path / "work")]
    assert main(["replay", str(corpus), "--json", *work]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["summary"] == {"reproduces": 2}
    assert {e["entry"]: e["status"] for e in report["entries"]} == {"floordiv": "reproduces", "gather": "reproduces"}
    assert all(e["new_signature"] == e["signature"] for e in report["entries"])
    assert main(["replay", str(corpus), "--no-signature-check", *work]) == 0
    table = capsys.readouterr().out
    assert "floordiv" in table and "gather" in table and "2 entries: 2 reproduces" in table
    assert _files(corpus) == before


@pytest.mark.slow
def test_replay_reports_a_fixed_entry(cases: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    control_entry(cases, "gather", "torch>onnx:torchscript>ort:disable:cpu", tmp_path / "corpus" / "fixed")
    assert main(["replay", str(tmp_path / "corpus"), "--json", "--work-dir", str(tmp_path / "work")]) == 1
    (entry,) = json.loads(capsys.readouterr().out)["entries"]
    assert entry["status"] == "fixed" and "ran without error" in entry["detail"]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated finding.json", "truncated model.onnx", "missing output_0.pb"])
def test_replay_rejects_a_corrupt_entry(damage: str, entries: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    for name in ("gather", "floordiv"):
        shutil.copytree(entries[name], corpus / name)
    target = {"truncated finding.json": corpus / "gather" / "finding.json",
              "truncated model.onnx": corpus / "floordiv" / "model.onnx",
              "missing output_0.pb": corpus / "gather" / "test_data_set_0" / "output_0.pb"}[damage]
    if damage.startswith("missing"):
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    before = _files(corpus)
    assert main(["replay", str(corpus), "--work-dir", str(tmp_path / "work")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and target.name in err
    assert _files(corpus) == before


def test_replay_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_write_entry_never_overwrites_or_leaves_debris(cases: dict, entries: dict[str, Path]) -> None:
    graph, values, finding, result, target = cases["floordiv"]
    before = _files(entries["floordiv"])
    with pytest.raises(EntryError, match="already exists"):
        write_entry(entries["floordiv"], graph, values, finding, result, target)
    slow = copy.deepcopy(finding)
    slow.symptom = "slowdown"
    parent = entries["floordiv"].parent
    with pytest.raises(EntryError, match="slowdown"):
        write_entry(parent / "slow", graph, values, slow, result, target)
    with pytest.raises(EntryError, match="not one of the finding's"):
        write_entry(parent / "other", graph, values, finding, result, "torch>inductor:cpu")
    with pytest.raises(KeyError):  # fails half-way through: the temporary folder must go
        write_entry(parent / "half", graph, Values({}, values.weights), finding, result, target)
    assert _files(entries["floordiv"]) == before
    assert not [p for p in parent.iterdir() if p.name.startswith(".")]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("stdout, code, status", [
    ("REPRODUCED\nValueError at run: x\n", 0, "reproduces"),
    ("noise\nNOT REPRODUCED\np matches the expected outputs\n", 1, "fixed"),
    ("NOT REPRODUCED\ndifferent failure: TypeError at export: y\n", 1, "changed-signature"),
    ("", 1, "error"),
    ("REPRODUCED\nbut the exit code disagrees\n", 3, "error")])
def test_replay_maps_repro_output_to_a_status(stdout: str, code: int, status: str, tmp_path: Path) -> None:
    """The harness side of replay, with a stand-in repro.py (it only prints what a real one prints)."""
    from fuzzer.corpus.replay import Entry, run_repro

    (tmp_path / "repro.py").write_text(f"import sys\nsys.stdout.write({stdout!r})\nsys.exit({code})\n")
    got, _ = run_repro(Entry(tmp_path, {}, Graph({}, [], [], [], []), Values({}, {})), 60, {})
    assert got == status
