"""`parallax run CASE_DIR` end to end: real pipelines in a real worker, the JSON report, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_cli_gen import _one_line_error, parallax


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("case") / "c"
    r = parallax("gen", "--seed", "11", "--nodes", "5", "--dtypes", "float32", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_run_reports_every_pipeline(case: Path, tmp_path: Path) -> None:
    pipes = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>ort:disable:cpu,tf>tf2onnx>onnxref"
    r = parallax("run", str(case), "--pipelines", pipes, "--json", "--work-dir", str(tmp_path / "w"))
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    assert [row["pipeline"] for row in report["pipelines"]] == sorted(pipes.split(","))
    for row in report["pipelines"]:
        assert row["outcome"] in ("ok", "MISMATCH", "unsupported", "exception", "invalid_model"), row
        if row["outcome"] in ("ok", "MISMATCH"):
            assert row["stage"] == "run" and row["max_abs_error"] is not None
    assert report["references"] == {"torch": "ok", "tf": "ok"}
    assert (r.returncode == 1) == bool(report["findings"])
    assert (tmp_path / "w" / "logs").is_dir()


def test_run_table(case: Path, tmp_path: Path) -> None:
    r = parallax("run", str(case), "--pipelines", "torch>onnx:torchscript>onnxref", "--work-dir", str(tmp_path / "w"))
    assert r.returncode in (0, 1), r.stderr
    assert "torch>onnx:torchscript>onnxref" in r.stdout and "outcome" in r.stdout


def test_run_bad_input(case: Path, tmp_path: Path) -> None:
    _one_line_error(parallax("run", str(tmp_path / "nope")), "not a folder")
    broken = tmp_path / "broken"
    shutil.copytree(case, broken)
    (broken / "graph.json").write_text("{not json")
    _one_line_error(parallax("run", str(broken)), "graph.json")
    (broken / "graph.json").unlink()
    _one_line_error(parallax("run", str(broken)), "graph.json: missing")
    _one_line_error(parallax("run", str(case), "--pipelines", "torch>nope:cpu"), "unknown backend 'nope'")
    _one_line_error(parallax("run", str(case), "--pipelines", "torch>eager:cuda"), "not available here")
    assert (case / "graph.json").exists()
