"""Which pipelines this machine can run, and why not the others (missing package, no device)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from functools import cache

from oracles.pipeline_id import PipelineId, all_pipelines, parse_pipeline

PACKAGES = {"torch": "torch", "tf": "tensorflow", "onnx": "onnx", "onnxscript": "onnxscript", "tf2onnx": "tf2onnx",
            "ort": "onnxruntime", "tvm": "tvm"}


@dataclass(frozen=True)
class Machine:
    gpu: bool  # an NVIDIA GPU that torch can use
    nvcc: str  # path of nvcc, "" when absent (TVM CUDA builds without a GPU need it)
    cxx: str  # a C++ compiler (inductor on CPU needs one)
    ort_providers: tuple[str, ...]


@dataclass(frozen=True)
class Availability:
    pipeline: PipelineId
    available: bool
    reason: str = ""  # why not, or what is limited ("compile-only: no GPU")
    compile_only: bool = False

    def to_json(self) -> dict[str, object]:
        return {"pipeline": self.pipeline.name, "available": self.available, "compile_only": self.compile_only,
                "reason": self.reason}


@cache
def has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@cache
def discover() -> Machine:
    """Cheap checks first: no NVIDIA device node means no GPU, and torch is never imported in the caller."""
    gpu = False
    if os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi"):
        gpu = _probe_torch_cuda()
    providers: tuple[str, ...] = ()
    if gpu and has_package("onnxruntime"):  # only the CUDA provider matters, and only with a GPU
        import onnxruntime

        providers = tuple(onnxruntime.get_available_providers())
    return Machine(gpu, shutil.which("nvcc") or "", shutil.which("g++") or shutil.which("c++") or "", providers)


def _probe_torch_cuda() -> bool:
    """In a child process: importing torch with CUDA in the parent would cost seconds and memory."""
    import subprocess
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip().endswith("True")


def _needs(pid: PipelineId) -> list[str]:
    need = [pid.source]
    if pid.converter.startswith("onnx:"):
        need.append("onnx")
    if pid.converter == "onnx:dynamo":
        need.append("onnxscript")
    if pid.converter == "tf2onnx":
        need += ["tf2onnx", "onnx"]
    if pid.backend in ("ort", "tvm"):
        need.append(pid.backend)
    if pid.backend == "onnxref":
        need.append("onnx")
    return need


def availability(pid: PipelineId, machine: Machine | None = None) -> Availability:
    m = machine or discover()
    missing = [PACKAGES[n] for n in _needs(pid) if not has_package(PACKAGES[n])]
    if missing:
        return Availability(pid, False, f"missing package: {', '.join(missing)}")
    if pid.backend == "inductor" and pid.device == "cpu" and not m.cxx:
        return Availability(pid, False, "no C++ compiler (inductor generates C++)")
    if pid.device != "cuda":
        return Availability(pid, True)
    if pid.backend == "ort":
        if not m.gpu:
            return Availability(pid, False, "no GPU")
        ok = "CUDAExecutionProvider" in m.ort_providers
        return Availability(pid, ok, "" if ok else "onnxruntime has no CUDAExecutionProvider (CPU build)")
    if pid.backend == "tvm":
        if m.gpu:
            return Availability(pid, True)
        if m.nvcc:
            return Availability(pid, True, "compile-only: nvcc present but no GPU", compile_only=True)
        return Availability(pid, False, "no GPU and no nvcc")
    if pid.source == "tf":
        return Availability(pid, False, "tensorflow-cpu has no GPU support")
    return Availability(pid, m.gpu, "" if m.gpu else "no GPU")


def list_availability(machine: Machine | None = None) -> list[Availability]:
    return [availability(p, machine) for p in all_pipelines()]


@dataclass(frozen=True)
class Selection:
    """The pipelines a campaign runs, and every other one with the reason it is left out."""

    run: list[PipelineId]
    left_out: list[tuple[str, str]]  # (pipeline name, why)

    def lines(self) -> list[str]:
        """For the terminal: what runs, then what is left out grouped by reason."""
        out = [f"pipelines: running {len(self.run)}: " + ", ".join(p.name for p in self.run)]
        by_reason: dict[str, list[str]] = {}
        for name, why in self.left_out:
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():
            out.append(f"pipelines: left out {len(names)} ({why}): " + ", ".join(names))
        return out

    def to_json(self) -> dict[str, object]:
        return {"run": [p.name for p in self.run], "left_out": [list(x) for x in self.left_out]}


def select_pipelines(names: list[str] | None = None, compile_only: bool = False,
                     machine: Machine | None = None) -> Selection:
    """`names` when given (raises as `resolve` does); else every available pipeline that really runs here,
    CPU and CUDA alike, plus the compile-only ones when `compile_only` (nightly)."""
    if names:
        chosen = resolve(names)
        return Selection(chosen, [(p.name, "not named in --pipelines") for p in all_pipelines() if p not in chosen])
    run: list[PipelineId] = []
    left: list[tuple[str, str]] = []
    for a in list_availability(machine):
        if not a.available:
            left.append((a.pipeline.name, a.reason))
        elif a.compile_only and not compile_only:
            left.append((a.pipeline.name, f"{a.reason}; runs when named or in `parallax nightly`"))
        else:
            run.append(a.pipeline)
    return Selection(run, left)


def default_pipelines() -> list[PipelineId]:
    """What a campaign runs when no pipeline is named: every available pipeline but the compile-only ones."""
    return select_pipelines().run


def resolve(names: list[str]) -> list[PipelineId]:
    """Parse user-typed names; raise PipelineError for a bad one, ValueError for an unavailable one."""
    out = []
    for name in names:
        pid = parse_pipeline(name)
        a = availability(pid)
        if not a.available:
            raise ValueError(f"pipeline {pid.name} is not available here: {a.reason}")
        if pid not in out:
            out.append(pid)
    return out
