"""`parallax check`: bad input, model loading, per-pipeline figures, crash isolation and the HTML page.

Fault localisation and repair are in tests/test_check_faults.py. Real torch, onnxruntime and TVM run in
isolated workers; models are tiny (the built-in tiny_cnn, or a model file written here).
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fuzzer.check import metrics
from fuzzer.check.catalog import builtin_names
from fuzzer.cli import main

MODEL_FILE = '''
import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 6)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def parallax_model():
    torch.manual_seed(1)
    return Net(), torch.randn(1, 3, 8, 8)
'''


def _check(tmp_path: Path, *args: str) -> int:
    return main(["check", *args, "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out")])


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("parallax: error: ")
    return err[0]


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "work").exists()
    assert not (tmp_path / "page.html").exists()


# -- bad input: one line, exit 2, nothing written -----------------------------------------------------------
def test_unknown_builtin_lists_the_builtins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _check(tmp_path, "resnet99", "--html", str(tmp_path / "page.html")) == 2
    line = _one_error_line(capsys)
    assert "resnet99" in line and all(name in line for name in builtin_names())
    _nothing_written(tmp_path)


def test_a_path_that_is_not_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert _check(tmp_path, str(notes)) == 2
    assert "not a model" in _one_error_line(capsys)
    folder = tmp_path / "folder"
    folder.mkdir()
    assert _check(tmp_path, str(folder)) == 2
    assert "saved_model.pb" in _one_error_line(capsys)
    _nothing_written(tmp_path)


def test_python_file_without_the_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "model.py"
    f.write_text("def make_model():\n    return None\n")
    assert _check(tmp_path, str(f)) == 2
    assert "parallax_model()" in _one_error_line(capsys)
    _nothing_written(tmp_path)


def test_onnx_file_failing_the_checker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    node = helper.make_node("Relu", ["undefined_value"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    f = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph), str(f))
    assert _check(tmp_path, str(f)) == 2
    assert "onnx.checker" in _one_error_line(capsys)
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a protobuf\xff" * 3)
    assert _check(tmp_path, str(tmp_path / "junk.onnx")) == 2
    _one_error_line(capsys)
    _nothing_written(tmp_path)


def test_bad_pipeline_name_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _check(tmp_path, "tiny_cnn", "--pipelines", "torch>onnx:nope>ort:all") == 2
    assert "converter" in _one_error_line(capsys)
    _nothing_written(tmp_path)


# -- metrics -----------------------------------------------------------------------------------------------
def test_classifier_agreement_top1_and_kendall_tau() -> None:
    ref = [[np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])], [np.array([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])]]
    same = metrics.classifier_agreement(ref, ref)
    assert same == {"top1_agreement": 1.0, "kendall_tau_top5": pytest.approx(1.0), "rows": 2}
    # first row: top-5 order fully reversed (tau -1) and top-1 flips; second row unchanged
    flipped = [[np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 0.0]])], ref[1]]
    got = metrics.classifier_agreement(ref, flipped)
    assert got["top1_agreement"] == 0.5
    assert got["kendall_tau_top5"] == pytest.approx(0.0)


def test_slowdown_needs_a_ratio_and_a_significant_rank_test() -> None:
    rng = np.random.default_rng(0)
    low = list(0.010 + 0.0002 * rng.random(8))
    slow = metrics.slowdown("x:O3", "x:O0", [t * 3 for t in low], low)
    assert slow.slower and slow.p_value < 0.01 and slow.ratio > 2.5
    same = metrics.slowdown("x:O3", "x:O0", list(0.010 + 0.0002 * rng.random(8)), low)
    assert not same.slower and "ratio" in same.reason
    assert not metrics.slowdown("x:O3", "x:O0", [1.0, 2.0], [0.1, 0.1]).slower


# -- end to end on small models -----------------------------------------------------------------------------
def test_python_model_file_through_ort_and_tvm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "net.py"
    f.write_text(MODEL_FILE)
    pipes = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:dynamo>ort:disable:cpu,torch>export>tvm:O1:llvm"
    html_path = tmp_path / "page.html"
    rc = _check(tmp_path, str(f), "--pipelines", pipes, "--inputs", "3", "--json", "--html", str(html_path))
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report
    assert report["framework"] == "torch" and report["inputs"]["count"] == 3
    assert report["inputs"]["specs"] == [{"name": "input_0", "shape": [1, 3, 8, 8], "dtype": "float32"}]
    assert [r["pipeline"] for r in report["pipelines"]] == pipes.split(",")
    for row in report["pipelines"]:
        assert row["status"] in ("ok", "precision"), row
        assert row["errors"]["max_abs"] < 1e-4 and row["errors"]["inputs_disagreeing"] == 0
        assert row["classifier"]["top1_agreement"] == 1.0
        assert row["classifier"]["kendall_tau_top5"] == pytest.approx(1.0)
        assert row["timing"]["runs"] == 5 and row["timing"]["median_s"] > 0
    assert report["sut_seconds"] > 0 and report["sut_seconds"] < report["seconds"]
    # nothing diverges, yet the per-layer comparison of one conversion is there, every layer agreeing
    diag = report["diagnoses"]["onnx:torchscript"]
    assert not diag["diverging"] and {lay["module"] for lay in diag["layers"]} == {"conv", "fc"}
    page = html_path.read_text()
    _self_contained_with_plot(page)


def _self_contained_with_plot(page: str) -> None:
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)
    found = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert found
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(base64.b64decode(found[0])), format="png")
    assert img.shape[0] > 50 and img.shape[1] > 50


def test_onnx_file_runs_backends_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 5], np.linspace(-1, 1, 20).astype(np.float32).tolist())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Tanh", ["h"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], [w])
    f = tmp_path / "small.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(f))
    rc = _check(tmp_path, str(f), "--pipelines", "onnx>ort:all:cpu,onnx>onnxref,onnx>tvm:O2:llvm", "--json")
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report
    assert report["framework"] == "onnx" and not report["diagnoses"]
    assert [r["status"] for r in report["pipelines"]] == ["ok", "ok", "ok"]


CRASHING_EXPORT = MODEL_FILE.replace("    def forward(self, x):\n", """    def forward(self, x):
        import os
        if torch.compiler.is_exporting():
            os.abort()  # a process crash inside one pipeline's export stage
""")


def test_a_crash_costs_one_pipeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "crashing.py"
    f.write_text(CRASHING_EXPORT)
    pipes = "torch>export>tvm:O0:llvm,torch>onnx:torchscript>ort:all:cpu"
    rc = _check(tmp_path, str(f), "--pipelines", pipes, "--json", "--no-diagnose")
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    crashed, fine = report["pipelines"]
    assert crashed["status"] == "crash:abort" and crashed["failed_stage"] == "export"
    assert fine["status"] == "ok"
    assert report["crashes_by_stage"] == {"export": 1}


def test_python_model_that_raises_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "broken.py"
    f.write_text("def parallax_model():\n    raise RuntimeError('cannot build this one')\n")
    assert _check(tmp_path, str(f)) == 2
    assert "does not load" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_resnet18_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pipes = ("torch>onnx:torchscript>ort:disable:cpu,torch>onnx:torchscript>ort:all:cpu,"
             "torch>onnx:dynamo>ort:all:cpu,torch>onnx:torchscript>onnxref,torch>export>tvm:O3:llvm")
    html_path = tmp_path / "resnet18.html"
    rc = _check(tmp_path, "resnet18", "--pipelines", pipes, "--inputs", "3", "--json", "--html", str(html_path))
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, [(r["pipeline"], r["status"], r["message"]) for r in report["pipelines"]]
    for row in report["pipelines"]:
        assert row["classifier"]["top1_agreement"] == 1.0, row
    layers = report["diagnoses"]["onnx:torchscript"]["layers"]
    assert len(layers) == 40  # 3 + 8 blocks x (conv1, relu, relu#1, conv2) + 3 downsample convs + avgpool, fc
    assert all(not lay["diverged"] for lay in layers)
    assert {"layer1.0.bn1", "layer3.0.downsample.1"} <= {lay["compared_with"] for lay in layers}  # folded BNs
    _self_contained_with_plot(html_path.read_text())
    assert (tmp_path / "out" / "resnet18.onnx-torchscript.onnx").is_file()


KERAS_FILE = '''
import numpy as np


def parallax_model():
    import keras
    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5)(x)
    return keras.Model(inp, out), np.random.default_rng(0).standard_normal((1, 8, 8, 3)).astype(np.float32)
'''


@pytest.mark.slow
def test_keras_file_and_saved_model_through_tf2onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "kmodel.py"
    f.write_text(KERAS_FILE)
    rc = _check(tmp_path, str(f), "--pipelines", "tf>tf2onnx>ort:all:cpu,tf>tf2onnx>tvm:O1:llvm", "--json")
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["framework"] == "tf"
    assert [r["status"] for r in report["pipelines"]] == ["ok", "ok"]
    assert (tmp_path / "out" / "kmodel.tf2onnx.onnx").is_file()

    import tensorflow as tf

    class Small(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def __call__(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.nn.relu(tf.matmul(x, self.w))}

    small = Small()
    tf.saved_model.save(small, str(tmp_path / "saved"), signatures=small.__call__)
    rc = _check(tmp_path, str(tmp_path / "saved"), "--pipelines", "tf>tf2onnx>ort:disable:cpu", "--json")
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["inputs"]["specs"] == [{"name": "x", "shape": [1, 4], "dtype": "float32"}]
    assert report["pipelines"][0]["status"] == "ok"
