"""Device discovery: the CPU is always there; what it says of CUDA agrees with torch and onnxruntime asked directly."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os

import onnxruntime
import pytest
import torch

from fuzzer.cli.devices import add_parser
from fuzzer.devices import Cpu, Cuda, Devices, gpus_per_actor, parse_nvidia_smi
from oracles.pipeline_id import parse_pipeline

CPU_ONLY = [parse_pipeline("torch>onnx:torchscript>ort:all:cpu"), parse_pipeline("tf>tf2onnx>onnxref")]
CUDA = [parse_pipeline("torch>eager:cuda"), parse_pipeline("torch>onnx:torchscript>ort:all:cpu")]
TVM_CUDA = [parse_pipeline("torch>onnx:torchscript>tvm:O3:cuda")]


@pytest.fixture(scope="module")
def reported() -> dict:
    """`parallax devices --json` (the subcommand as fuzzer.devices registers it), run once for the module: the
    probe imports torch and TVM in a child process."""
    parser = argparse.ArgumentParser(prog="parallax")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["devices", "--json"])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert args.run(args) == 0
    return json.loads(buf.getvalue())


def test_cpu_always_present(reported: dict) -> None:
    cpu = reported["cpu"]
    assert cpu["cores"] == len(os.sched_getaffinity(0)) >= 1
    assert cpu["logical"] >= cpu["cores"] and cpu["arch"]


def test_cuda_agrees_with_the_libraries(reported: dict) -> None:
    cuda = reported["cuda"]
    assert cuda["torch"] == torch.cuda.is_available()
    assert cuda["torch_devices"] == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert cuda["ort"] == ("CUDAExecutionProvider" in onnxruntime.get_available_providers())
    assert cuda["usable"] == (cuda["torch"] or cuda["ort"] or cuda["tvm"])
    if not torch.cuda.is_available():
        assert cuda["count"] == len(cuda["gpus"])  # nvidia-smi may still list a GPU that torch cannot use


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU that torch can use")
def test_gpus_torch_sees_are_listed(reported: dict) -> None:
    names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
    assert reported["cuda"]["count"] >= len(names) >= 1 and reported["cuda"]["usable"]
    if reported["cuda"]["gpus"]:  # nvidia-smi answered
        assert names <= {g["name"] for g in reported["cuda"]["gpus"]}


def test_nvidia_smi_parsing() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 81559, 550.54.15\n1, NVIDIA H100 80GB HBM3, 81559, 550.54.15\n\n"
    gpus = parse_nvidia_smi(text)
    assert [(g.index, g.name, g.memory_mb, g.driver) for g in gpus] == [
        (0, "NVIDIA H100 80GB HBM3", 81559, "550.54.15"), (1, "NVIDIA H100 80GB HBM3", 81559, "550.54.15")]
    assert parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the driver") == ()


def _devices(tvm: bool) -> Devices:
    return Devices(Cpu(2, 2, "", "x86_64"), Cuda("", (), False, 0, False, tvm, "/usr/bin/nvcc"))


def test_gpu_share_per_actor() -> None:
    assert gpus_per_actor(CPU_ONLY, 4, 2) == 0.0  # nothing runs on CUDA: no GPU asked for
    assert gpus_per_actor(CUDA, 0, 2) == 0.0  # no GPU in the cluster: the actors must still be placeable
    assert gpus_per_actor(CUDA, 1, 1) == 1.0
    assert gpus_per_actor(CUDA, 1, 4) == 0.25  # four actors share the one GPU
    assert gpus_per_actor(CUDA, 1, 3) == 0.3333  # Ray takes four decimals; rounded down so that all three fit
    assert gpus_per_actor(CUDA, 8, 2) == 1.0
    # TVM CUDA where TVM finds no device only compiles (nvcc): no GPU needed; where it finds one, it runs there
    assert gpus_per_actor(TVM_CUDA, 1, 2, _devices(tvm=False)) == 0.0
    assert gpus_per_actor(TVM_CUDA, 1, 2, _devices(tvm=True)) == 0.5
