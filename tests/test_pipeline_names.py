"""The pipeline grammar users type, and `parallax targets` on this machine."""

import json

import pytest

from fuzzer.cli import main
from fuzzer.targets.registry import Machine, availability, list_availability
from oracles.pipeline_id import PipelineError, all_pipelines, parse_pipeline


def test_every_pipeline_round_trips_through_its_name():
    pids = all_pipelines()
    assert len({p.name for p in pids}) == len(pids)
    for p in pids:
        assert parse_pipeline(p.name) == p


@pytest.mark.parametrize("name, source, converter, backend, level, device", [
    ("torch>onnx:dynamo>tvm:O3:llvm", "torch", "onnx:dynamo", "tvm", "O3", "llvm"),
    ("tf>tf2onnx>ort:all:cpu", "tf", "tf2onnx", "ort", "all", "cpu"),
    ("torch>inductor:cpu", "torch", "", "inductor", "", "cpu"),
    ("tf>xla:cpu", "tf", "", "xla", "", "cpu"),
    ("torch>onnx:torchscript>onnxref", "torch", "onnx:torchscript", "onnxref", "", "cpu"),
    ("torch>export>tvm:O0:llvm", "torch", "export", "tvm", "O0", "llvm"),
    (" torch > onnx:torchscript > ort:basic ", "torch", "onnx:torchscript", "ort", "basic", "cpu"),
])
def test_names_parse(name, source, converter, backend, level, device):
    p = parse_pipeline(name)
    assert (p.source, p.converter, p.backend, p.level, p.device) == (source, converter, backend, level, device)


@pytest.mark.parametrize("name, says", [
    ("torch>ort:all:cpu", "needs one of the converters"),
    ("tf>onnx:dynamo>ort:all:cpu", "unknown converter"),
    ("jax>xla:cpu", "unknown source"),
    ("torch>onnx:dynamo>tvm:O9:llvm", "needs a level"),
    ("torch>onnx:dynamo>tvm:O3:cpu", "runs on llvm, cuda"),
    ("torch>xla:cpu", "runs tf directly"),
    ("torch>onnx:dynamo>ort:all:cpu:extra", "unexpected"),
    ("torch", "expected source>"),
])
def test_bad_names_say_what_is_wrong(name, says):
    with pytest.raises(PipelineError, match=says):
        parse_pipeline(name)


def test_cuda_pipelines_need_a_gpu_but_tvm_cuda_compiles_with_nvcc():
    no_gpu = Machine(gpu=False, nvcc="/usr/bin/nvcc", cxx="/usr/bin/g++", ort_providers=("CPUExecutionProvider",))
    a = availability(parse_pipeline("torch>onnx:torchscript>tvm:O3:cuda"), no_gpu)
    assert a.available and a.compile_only and "compile-only" in a.reason
    assert not availability(parse_pipeline("torch>eager:cuda"), no_gpu).available
    assert "no GPU" in availability(parse_pipeline("torch>onnx:dynamo>ort:all:cuda"), no_gpu).reason
    bare = Machine(gpu=False, nvcc="", cxx="", ort_providers=())
    assert not availability(parse_pipeline("torch>onnx:torchscript>tvm:O3:cuda"), bare).available
    assert "C++ compiler" in availability(parse_pipeline("torch>inductor:cpu"), bare).reason


def test_targets_lists_every_pipeline_as_json(capsys):
    assert main(["targets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["pipeline"] for r in rows} == {p.name for p in all_pipelines()}
    by_name = {r["pipeline"]: r for r in rows}
    # the installed stack: every CPU pipeline is available here
    for name in ("torch>onnx:torchscript>ort:all:cpu", "tf>tf2onnx>ort:disable:cpu", "torch>onnx:dynamo>tvm:O3:llvm",
                 "torch>export>tvm:O0:llvm", "tf>xla:cpu", "torch>inductor:cpu", "tf>tf2onnx>onnxref"):
        assert by_name[name]["available"], by_name[name]
    assert all(r["reason"] for r in rows if not r["available"])
    assert len(list_availability()) == len(rows)


def test_targets_table(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "torch>onnx:torchscript>ort:all:cpu" in out and "pipelines available" in out
