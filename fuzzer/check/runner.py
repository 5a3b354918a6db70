"""One `parallax check`: describe the model, make inputs, run the reference, convert, run every pipeline,
judge, and diagnose each conversion that diverges. Every step is a job in an isolated worker process
(fuzzer.workers.pool.Worker), so a crash costs one pipeline and is reported with its stage.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fuzzer.check import metrics
from fuzzer.check.arrays import pack_sets, unpack_sets
from fuzzer.check.inputs import make_inputs
from fuzzer.check.spec import ModelSpec
from fuzzer.targets.arrays import unpack_list
from oracles.outcome import Failure, Outcome
from oracles.pipeline_id import ONNX_CONVERTERS, PipelineId, parse_pipeline

HANDLER = "fuzzer.check.job:run_check_job"
CHECK_BACKENDS = ("ort", "onnxref", "tvm")
ORT_LEVELS = ("disable", "basic", "extended", "all")
TVM_LEVELS = ("O0", "O1", "O2", "O3")


class CheckError(RuntimeError):
    """The check cannot go on (the model does not load, or its reference fails)."""


@dataclass
class CheckSettings:
    inputs: int = 4
    seed: int = 0
    repeats: int = 5
    stage_timeout_s: float = 300.0
    onnxref_timeout_s: float = 120.0
    memory_mb: int = 8192
    pipelines: list[str] | None = None  # None: every applicable one
    skip_onnxref: bool = False
    diagnose: bool = True
    converted: Path | None = None  # diagnose this ONNX file as the model's conversion
    out: Path = Path(".work/check")
    work: Path = Path(".work")


@dataclass
class Run:
    """Everything one check gathered; `report()` turns it into the JSON the renderers read."""

    spec: ModelSpec
    framework: str = ""
    input_specs: list[dict] = field(default_factory=list)
    inputs: list[list[np.ndarray]] = field(default_factory=list)
    reference: list[list[np.ndarray]] = field(default_factory=list)
    reference64: list[list[np.ndarray]] | None = None
    converters: dict[str, Any] = field(default_factory=dict)  # name -> ONNX bytes | Failure
    converter_times: dict[str, dict[str, float]] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    outputs: dict[str, list[list[np.ndarray]]] = field(default_factory=dict)
    diagnoses: dict[str, dict] = field(default_factory=dict)
    sut_seconds: float = 0.0  # inside the systems under test: the stages the workers timed
    stage_seconds: dict[str, float] = field(default_factory=dict)  # the same, per stage name
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)


def default_pipelines(framework: str) -> list[PipelineId]:
    """Every pipeline of the registry that check runs for this source (CUDA ones where available)."""
    from fuzzer.targets.registry import availability

    if framework == "onnx":
        base = [parse_pipeline(f"torch>onnx:torchscript>{t}") for t in
                [f"ort:{lv}:cpu" for lv in ORT_LEVELS[1:]] + ["onnxref"] + [f"tvm:{lv}:llvm" for lv in TVM_LEVELS]]
        pids = [PipelineId("onnx", "", p.backend, p.level, p.device) for p in base]
        cuda = [p for p in (PipelineId("onnx", "", "ort", "all", "cuda"),) if
                availability(PipelineId("torch", "onnx:torchscript", "ort", "all", "cuda")).available]
        return pids + cuda
    from fuzzer.targets.registry import default_pipelines as registry_default

    return [p for p in registry_default() if p.source == framework and p.backend in CHECK_BACKENDS]


def resolve_pipelines(names: list[str], framework: str) -> list[PipelineId]:
    """User-typed names; raise ValueError for a name that is not this model's or not available."""
    from fuzzer.check.job import parse_pid
    from fuzzer.targets.registry import availability

    out = []
    for name in names:
        pid = parse_pid(name)
        if pid.source != framework:
            raise ValueError(f"pipeline {pid.name}: this model's source is {framework}, not {pid.source}")
        if pid.backend not in CHECK_BACKENDS:
            raise ValueError(f"pipeline {pid.name}: check runs the backends {', '.join(CHECK_BACKENDS)}")
        probe = pid if pid.source != "onnx" else PipelineId("torch", "onnx:torchscript", pid.backend, pid.level,
                                                            pid.device)
        a = availability(probe)
        if not a.available:
            raise ValueError(f"pipeline {pid.name} is not available here: {a.reason}")
        out.append(pid)
    return out


def image_layout(framework: str, specs: list[dict]) -> str:
    if len(specs) != 1 or len(specs[0]["shape"]) != 4 or np.dtype(specs[0]["dtype"]).kind != "f":
        return ""
    shape = specs[0]["shape"]
    if framework in ("torch", "onnx") and shape[1] == 3:
        return "NCHW"
    if framework == "tf" and shape[3] == 3:
        return "NHWC"
    return ""


class Checker:
    """Runs one check: each step is a job in one Worker, respawned after a crash, so a crash costs one step."""

    def __init__(self, spec: ModelSpec, settings: CheckSettings) -> None:
        self.spec = spec
        self.s = settings
        self.run = Run(spec)

    def _job(self, worker: Any, request: dict, blobs: dict[str, bytes] | None = None) -> tuple[Any, list]:
        events: list = []
        req = {"model": self.spec.to_json(), "stage_timeout_s": self.s.stage_timeout_s, **request}
        result = worker.run(req, blobs or {}, events.append)
        for e in events:
            times = e.header.get("stage_times")
            if isinstance(times, dict):
                for stage, seconds in times.items():
                    self.run.sut_seconds += float(seconds)
                    self.run.stage_seconds[stage] = self.run.stage_seconds.get(stage, 0.0) + float(seconds)
        return result, events

    def check(self) -> Run:
        """Describe, reference, convert, every pipeline, then diagnose; raise CheckError if the model cannot
        be loaded or run by its own framework (nothing is written then)."""
        from fuzzer.workers.pool import Limits, Worker
        from fuzzer.workers.workdir import prepare, worker_env

        t0 = time.perf_counter()
        work = prepare(self.s.work)
        limits = Limits(stage_timeout_s=self.s.stage_timeout_s, memory_mb=self.s.memory_mb)
        with Worker(HANDLER, limits, work / "logs", worker_env(work), name="check") as worker:
            self._describe(worker)
            if self.s.converted is not None and self.run.framework != "torch":
                raise CheckError(f"--converted needs a PyTorch source model; {self.spec.name} is {self.run.framework}")
            self._reference(worker)
            pids = self._pipelines()
            self._convert(worker, pids)
            for pid in pids:
                self._pipeline(worker, pid)
            if self.s.diagnose and self.run.framework == "torch":
                self._diagnose_all(worker)
        self.run.seconds = time.perf_counter() - t0
        return self.run

    # -- steps -------------------------------------------------------------------------------------------
    def _describe(self, worker: Any) -> None:
        result, events = self._job(worker, {"op": "describe"})
        found = [e for e in events if e.event == "described"]
        if not found:
            raise CheckError(f"{self.spec.name}: the model does not load: {_why(result)}")
        d = found[0]
        self.run.framework = d.header["framework"]
        self.run.input_specs = d.header["inputs"]
        example = unpack_list(d.blobs["example"]) if "example" in d.blobs else None
        self.run.inputs = make_inputs(self.run.input_specs, self.s.inputs, self.s.seed, example,
                                      image_layout(self.run.framework, self.run.input_specs))

    def _reference(self, worker: Any) -> None:
        result, events = self._job(worker, {"op": "reference"}, {"inputs": pack_sets(self.run.inputs)})
        found = [e for e in events if e.event == "reference"]
        if not found or found[0].header.get("failure"):
            why = found[0].header["failure"]["message"] if found else _why(result)
            raise CheckError(f"{self.spec.name}: the reference run failed: {why.splitlines()[0][:300] if why else ''}")
        self.run.reference = unpack_sets(found[0].blobs["outputs"])
        if "outputs64" in found[0].blobs:
            self.run.reference64 = unpack_sets(found[0].blobs["outputs64"])

    def _pipelines(self) -> list[PipelineId]:
        if self.s.converted is not None:
            return []
        if self.s.pipelines:
            return resolve_pipelines(self.s.pipelines, self.run.framework)
        return default_pipelines(self.run.framework)

    def _convert(self, worker: Any, pids: list[PipelineId]) -> None:
        self.s.out.mkdir(parents=True, exist_ok=True)
        if self.s.converted is not None:
            self.run.converters["given"] = self.s.converted.read_bytes()
            return
        if self.run.framework == "onnx":
            self.run.converters[""] = Path(self.spec.ref).read_bytes()
            return
        needed = sorted({p.converter for p in pids if p.converter in ONNX_CONVERTERS})
        for conv in needed:
            result, events = self._job(worker, {"op": "convert", "converter": conv},
                                       {"inputs": pack_sets(self.run.inputs[:1])})
            ok = [e for e in events if e.event == "artefact"]
            bad = [e for e in events if e.event == "convert_failed"]
            if ok:
                model = ok[0].blobs["model"]
                self.run.converters[conv] = model
                self.run.converter_times[conv] = ok[0].header.get("stage_times", {})
                path = self.s.out / f"{self.spec.name}.{_safe(conv)}.onnx"
                path.write_bytes(model)
                self.run.files.append(str(path))
            elif bad:
                self.run.converters[conv] = Failure.from_json(bad[0].header["failure"])
            else:
                self.run.converters[conv] = _crash_failure(result, "export")

    def _pipeline(self, worker: Any, pid: PipelineId) -> None:
        name = pid.name
        if pid.backend == "onnxref" and self.s.skip_onnxref:
            self.run.outcomes[name] = Outcome(name, skipped="skipped: --skip-onnxref")
            return
        blobs = {"inputs": pack_sets(self.run.inputs)}
        conv = pid.converter if pid.source != "onnx" else ""
        if conv in self.run.converters:
            model = self.run.converters[conv]
            if isinstance(model, Failure):
                self.run.outcomes[name] = Outcome(name, failure=model)
                return
            blobs["onnx"] = model
        request: dict[str, Any] = {"op": "pipeline", "pipeline": name, "repeats": self.s.repeats}
        if pid.backend == "onnxref":
            request["stage_timeout_s"] = self.s.onnxref_timeout_s
        result, events = self._job(worker, request, blobs)
        found = [e for e in events if e.event == "outcome"]
        if found:
            outs = unpack_sets(found[0].blobs["outputs"]) if "outputs" in found[0].blobs else None
            self.run.outcomes[name] = Outcome.from_meta_json(found[0].header, None)
            if outs is not None:
                self.run.outputs[name] = outs
            return
        if pid.backend == "onnxref" and result.crash_kind == "timeout":
            self.run.outcomes[name] = Outcome(name, skipped=f"skipped: the ONNX reference evaluator took over "
                                              f"{self.s.onnxref_timeout_s:g} s (--onnxref-timeout)")
            return
        self.run.outcomes[name] = Outcome(name, failure=_crash_failure(result, "run"))

    def diverging_converters(self) -> list[str]:
        """Converters whose own ONNX model (run by onnxruntime without optimisations, else any ONNX
        backend) disagrees with the source: a conversion fault, not a backend one."""
        out = []
        for conv, model in self.run.converters.items():
            if isinstance(model, Failure):
                continue
            if conv == "given":
                out.append(conv)
                continue
            names = [n for n in self.run.outputs if f">{conv}>" in n or (not conv and n.startswith("onnx>"))]
            plain = [n for n in names if "ort:disable" in n] or [n for n in names if ">ort:" in n]
            tols = metrics.tolerances(self.run.reference, self.run.reference64)
            if plain and all(any(metrics.disagreeing(metrics.records(self.run.reference, self.run.outputs[n],
                                                                       tols))) for n in plain):
                out.append(conv)
        return out

    def _diagnose_all(self, worker: Any) -> None:
        tols = metrics.tolerances(self.run.reference, self.run.reference64)
        tol_json = [[[t.atol, t.rtol] for t in ts] for ts in tols]
        todo = self.diverging_converters()
        if not todo:  # nothing diverges: still show the per-layer errors of one conversion
            todo = [c for c in ("onnx:torchscript", "onnx:dynamo", "given") if isinstance(
                self.run.converters.get(c), bytes)][:1]
        for conv in todo:
            model = self.run.converters[conv]
            result, events = self._job(worker, {"op": "diagnose", "tolerances": tol_json},
                                       {"inputs": pack_sets(self.run.inputs), "onnx": model,
                                        "expected": pack_sets(self.run.reference)})
            found = [e for e in events if e.event == "diagnosis"]
            if not found:
                self.run.diagnoses[conv] = {"error": _why(result)}
                continue
            diag = dict(found[0].header)
            if "repaired" in found[0].blobs:
                base = self.s.converted if conv == "given" else self.s.out / f"{self.spec.name}.{_safe(conv)}.onnx"
                repaired = base.with_name(base.stem + ".repaired.onnx")
                log = base.with_name(base.stem + ".repair.log")
                repaired.write_bytes(found[0].blobs["repaired"])
                log.write_text("".join(f"{c}\n" for c in diag.get("changes", [])), encoding="utf-8")
                diag["repaired_model"], diag["repair_log"] = str(repaired), str(log)
                self.run.files += [str(repaired), str(log)]
            self.run.diagnoses[conv] = diag


def _safe(name: str) -> str:
    return name.replace(":", "-").replace(">", "_") or "model"


def _why(result: Any) -> str:
    if result.error:
        return f"{result.error.get('exc_type', '')}: {str(result.error.get('message', '')).splitlines()[0][:300]}"
    if result.crash_kind:
        return f"worker {result.crash_kind}: {result.detail.splitlines()[0][:300] if result.detail else ''}"
    return "no answer from the worker"


def _crash_failure(result: Any, default_stage: str) -> Failure:
    stage = (result.last_stage or {}).get("stage", default_stage)
    if result.crash_kind:
        return Failure(stage, result.crash_kind, "", result.detail[-2000:])
    err = result.error or {}
    return Failure(stage, "exception", err.get("exc_type", ""), str(err.get("message", _why(result))))


def dump_json(obj: Any) -> str:
    """Strict JSON: infinities and NaN (no passing tolerance, a NaN delta) become strings."""
    return json.dumps(_strict(obj), indent=1, default=_default, allow_nan=False)


def _strict(obj: Any) -> Any:
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return str(float(obj))
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    return obj


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)
