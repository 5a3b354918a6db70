"""The devices this machine offers the pipelines: the CPU always; CUDA as torch, onnxruntime and TVM each see it.

`parallax devices [--json]` prints the report, `parallax nightly` prints it first, and the Ray engine asks Ray for
a share of a GPU per actor only when a pipeline needs one (`gpus_per_actor`). torch, onnxruntime and TVM are
imported in a child process: a CUDA context (or merely importing torch and TVM, seconds and hundreds of MiB) has
no business in the campaign's parent. The cheap hints (an NVIDIA device node, `nvidia-smi`, `nvcc`) are read here.
Each library is asked separately because each can disagree: a CPU wheel of onnxruntime on a GPU box, torch built
without CUDA, TVM that can generate CUDA code (compile-only with nvcc) but finds no device to run it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from oracles.pipeline_id import PipelineId

PROBE_TIMEOUT_S = 180.0
DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0")
# Runs in a child interpreter; prints one JSON object (each library's answer or why it could not answer).
_PROBE = r"""
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
out = {}
def why(e):
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"
try:
    import torch
    ok = bool(torch.cuda.is_available())
    n = torch.cuda.device_count() if ok else 0
    out["torch"] = {"version": torch.__version__, "cuda_build": torch.version.cuda or "", "available": ok,
                    "devices": [torch.cuda.get_device_name(i) for i in range(n)]}
except Exception as e:
    out["torch"] = {"error": why(e)}
try:
    import onnxruntime
    out["ort"] = {"version": onnxruntime.__version__, "providers": list(onnxruntime.get_available_providers())}
except Exception as e:
    out["ort"] = {"error": why(e)}
try:
    import tvm
    try:
        enabled = bool(tvm.runtime.enabled("cuda"))
    except Exception:
        enabled = None
    out["tvm"] = {"version": getattr(tvm, "__version__", ""), "cuda_runtime": enabled,
                  "exist": bool(tvm.cuda(0).exist)}
except Exception as e:
    out["tvm"] = {"error": why(e)}
print("PARALLAX-PROBE " + json.dumps(out))
"""


@dataclass(frozen=True)
class Cpu:
    cores: int  # usable by this process (affinity)
    logical: int  # on the machine
    model: str
    arch: str


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mb: int
    driver: str


@dataclass(frozen=True)
class Cuda:
    hint: str  # what suggested an NVIDIA GPU ("/dev/nvidiactl", "nvidia-smi") or ""
    gpus: tuple[Gpu, ...]  # as nvidia-smi lists them
    torch: bool  # torch.cuda.is_available()
    torch_devices: int
    ort: bool  # onnxruntime has CUDAExecutionProvider
    tvm: bool  # tvm.cuda(0).exist: TVM can run CUDA code here
    nvcc: str  # path of nvcc ("" when absent): TVM CUDA modules can be built even without a GPU
    notes: dict[str, str] = field(default_factory=dict)  # library -> version, or why it could not answer
    ort_providers: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Some library here can run code on an NVIDIA GPU."""
        return self.torch or self.ort or self.tvm

    @property
    def count(self) -> int:
        return max(self.torch_devices, len(self.gpus))


@dataclass(frozen=True)
class Devices:
    cpu: Cpu
    cuda: Cuda

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["cuda"]["usable"] = self.cuda.usable
        d["cuda"]["count"] = self.cuda.count
        return d

    def lines(self) -> list[str]:
        c, g = self.cpu, self.cuda
        out = [f"cpu: {c.cores} of {c.logical} cores usable ({c.model or c.arch})"]
        if not g.usable and not g.hint:
            out.append("cuda: none (no NVIDIA device node, no nvidia-smi)" +
                       (f"; nvcc at {g.nvcc}: TVM CUDA pipelines are compile-only" if g.nvcc else ""))
        else:
            gpus = ", ".join(f"{x.index}: {x.name} ({x.memory_mb} MiB)" for x in g.gpus) or "none listed"
            out.append(f"cuda: {g.count} GPU(s) [{gpus}]" + (f", driver {g.gpus[0].driver}" if g.gpus else ""))
            out.append(f"  torch: {'yes' if g.torch else 'no'} ({g.torch_devices} devices)")
            out.append(f"  onnxruntime CUDAExecutionProvider: {'yes' if g.ort else 'no'}")
            out.append(f"  tvm.cuda(0).exist: {'yes' if g.tvm else 'no'}")
            out.append(f"  nvcc: {g.nvcc or 'absent'}")
        for lib, note in sorted(g.notes.items()):
            out.append(f"  {lib}: {note}")
        return out


def cpu_info() -> Cpu:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return Cpu(len(os.sched_getaffinity(0)), os.cpu_count() or 1, model, platform.machine())


def nvidia_hint() -> str:
    for node in DEVICE_NODES:
        if os.path.exists(node):
            return node
    return "nvidia-smi" if shutil.which("nvidia-smi") else ""


def nvidia_smi_gpus(timeout_s: float = 30.0) -> tuple[Gpu, ...]:
    """The GPUs nvidia-smi lists (none when it is absent or fails)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ()
    try:
        out = subprocess.run([exe, "--query-gpu=index,name,memory.total,driver_version",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else ()


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        mem = parts[2].split()[0] if parts[2] else ""
        gpus.append(Gpu(int(parts[0]), parts[1], int(mem) if mem.isdigit() else 0, parts[3]))
    return tuple(gpus)


def probe_libraries(timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, Any]:
    """What torch, onnxruntime and TVM say about CUDA, asked in a child interpreter."""
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout_s,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    except subprocess.TimeoutExpired:
        return {"error": f"the device probe took more than {timeout_s:.0f} s"}
    except OSError as e:
        return {"error": f"cannot run the device probe: {e}"}
    line = next((ln for ln in reversed(out.stdout.splitlines()) if ln.startswith("PARALLAX-PROBE ")), "")
    if not line:
        tail = (out.stderr.strip().splitlines() or [""])[-1][:200]
        return {"error": f"the device probe exited with {out.returncode}: {tail}"}
    return json.loads(line.removeprefix("PARALLAX-PROBE "))


def discover_devices(timeout_s: float = PROBE_TIMEOUT_S) -> Devices:
    """The CPU and what each library says about CUDA (a few seconds: torch and TVM are imported in a child)."""
    probe = probe_libraries(timeout_s)
    t, o, v = probe.get("torch", {}), probe.get("ort", {}), probe.get("tvm", {})
    notes = {}
    if "error" in probe:
        notes["probe"] = probe["error"]
    for lib, ans in (("torch", t), ("onnxruntime", o), ("tvm", v)):
        if "error" in ans:
            notes[lib] = "cannot tell: " + ans["error"]
    if t.get("version") and not t.get("cuda_build"):
        notes["torch"] = f"{t['version']}: a CPU-only build"
    providers = tuple(o.get("providers", ()))
    cuda = Cuda(nvidia_hint(), nvidia_smi_gpus(), bool(t.get("available")), len(t.get("devices", ())),
                "CUDAExecutionProvider" in providers, bool(v.get("exist")), shutil.which("nvcc") or "", notes,
                providers)
    return Devices(cpu_info(), cuda)


def needs_gpu(pid: PipelineId, devices: Devices) -> bool:
    """Whether `pid` runs code on a GPU (TVM CUDA without a GPU only compiles, with nvcc, on the CPU)."""
    if pid.device != "cuda":
        return False
    return not (pid.backend == "tvm" and not devices.cuda.tvm)


def gpus_per_actor(pipelines: list[PipelineId], cluster_gpus: float, actors: int,
                   devices: Devices | None = None) -> float:
    """The GPU share each Ray actor asks for: 0 unless a pipeline runs on CUDA and the cluster has GPUs; then one
    GPU each while there are enough, else an equal fraction so that every actor fits (Ray takes 4 decimals)."""
    if actors < 1 or cluster_gpus <= 0:
        return 0.0
    cuda = [p for p in pipelines if p.device == "cuda"]
    if devices is not None:
        cuda = [p for p in cuda if needs_gpu(p, devices)]
    if not cuda:
        return 0.0
    share = min(1.0, cluster_gpus / actors)
    return max(0.0001, int(share * 10000) / 10000)
