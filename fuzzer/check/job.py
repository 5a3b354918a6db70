"""The worker-side handler of `parallax check`: `fuzzer.check.job:run_check_job`.

One job per step, so a crash (a TVM segfault, an exporter abort) costs one step, never the check:
  {"op": "describe", "model"}                         -> "described" {framework, inputs, example?}
  {"op": "reference", "model"} + inputs               -> "reference" outputs (float32 and float64 twin)
  {"op": "convert", "model", "converter"} + inputs    -> "artefact" ONNX bytes, or "convert_failed"
  {"op": "pipeline", "model", "pipeline", "repeats"} + inputs [+ onnx] -> "outcome"
  {"op": "diagnose", "model", "tolerances"} + inputs + onnx + expected -> "diagnosis" (+ repaired ONNX)
Inputs travel as one packed array set, "<input index>:<array index>" (fuzzer.check.arrays).
The source model is loaded once per worker process and kept.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from fuzzer.check.arrays import pack_sets, unpack_sets
from fuzzer.check.spec import ModelSpec
from fuzzer.targets.arrays import pack_list
from fuzzer.targets.stages import Emit, StageFailed, StageRunner
from oracles.outcome import Outcome
from oracles.pipeline_id import PipelineId

_loaded: dict[str, Any] = {}
_pinned: list[bool] = []


def _pin_threads() -> None:
    if _pinned:
        return
    _pinned.append(True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import torch

        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    except (ImportError, RuntimeError):
        pass


def source_for(spec: ModelSpec) -> Any:
    from fuzzer.check import sources

    key = json.dumps(spec.to_json(), sort_keys=True)
    if key not in _loaded:
        _pin_threads()
        _loaded[key] = sources.load(spec)
    return _loaded[key]


def parse_pid(name: str) -> PipelineId:
    """Pipeline names, plus "onnx>backend..." for an ONNX file (a source the grammar does not have)."""
    from oracles.pipeline_id import parse_pipeline

    if name.startswith("onnx>"):
        pid = parse_pipeline("torch>onnx:torchscript>" + name[len("onnx>"):])
        return PipelineId("onnx", "", pid.backend, pid.level, pid.device)
    return parse_pipeline(name)


def run_check_job(request: dict[str, Any], blobs: dict[str, bytes], emit: Emit) -> None:
    spec = ModelSpec.from_json(request["model"])
    op = request["op"]
    inputs = unpack_sets(blobs["inputs"]) if "inputs" in blobs else []
    if op == "describe":
        _describe(spec, emit)
    elif op == "reference":
        _reference(spec, inputs, emit, request.get("stage_timeout_s"))
    elif op == "convert":
        _convert(spec, request["converter"], inputs, emit, request.get("stage_timeout_s"))
    elif op == "pipeline":
        _pipeline(spec, parse_pid(request["pipeline"]), inputs, blobs.get("onnx"), int(request.get("repeats", 5)),
                  emit, request.get("stage_timeout_s"))
    elif op == "diagnose":
        from fuzzer.check.diagnose import diagnose

        diagnose(source_for(spec), blobs["onnx"], inputs, unpack_sets(blobs["expected"]),
                 request["tolerances"], emit)
    else:
        raise ValueError(f"unknown check job op {op!r}")


def _describe(spec: ModelSpec, emit: Emit) -> None:
    src = source_for(spec)
    if src is None:
        import onnx

        g = onnx.load(spec.ref, load_external_data=False).graph
        inits = {i.name for i in g.initializer}
        specs = []
        for v in g.input:
            if v.name in inits:
                continue
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in t.shape.dim]
            specs.append({"name": v.name, "shape": dims,
                          "dtype": str(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))})
        emit("described", {"framework": "onnx", "inputs": specs})
        return
    blobs = {"example": pack_list(src.example)} if src.example is not None else {}
    emit("described", {"framework": src.framework, "inputs": [i.to_json() for i in src.inputs]}, blobs)


def _reference(spec: ModelSpec, inputs: list[list[np.ndarray]], emit: Emit, timeout: float | None) -> None:
    sr = StageRunner("reference", emit, timeout)
    header: dict[str, Any] = {"failure": None, "float64": False}
    blobs: dict[str, bytes] = {}
    try:
        with sr.stage("reference"):
            src = source_for(spec)
            if src is None:
                from fuzzer.targets import onnx_targets

                with open(spec.ref, "rb") as f:
                    model = f.read()
                names = _model_inputs(model)
                session = onnx_targets.ort_session(model, "disable", "cpu")
                outs = [session(dict(zip(names, x)), names) for x in inputs]
            else:
                outs = [src.run(x) for x in inputs]
        blobs["outputs"] = pack_sets(outs)
        if src is not None:
            with sr.stage("reference"):
                wide = [src.run64(x) for x in inputs]
            if all(w is not None for w in wide):
                blobs["outputs64"] = pack_sets(wide)
                header["float64"] = True
    except StageFailed as e:
        header["failure"] = e.failure.to_json()
    header["stage_times"] = sr.times
    emit("reference", header, blobs)


def _convert(spec: ModelSpec, converter: str, inputs: list[list[np.ndarray]], emit: Emit,
             timeout: float | None) -> None:
    sr = StageRunner(converter, emit, timeout)
    try:
        with sr.stage("export"):
            src = source_for(spec)
            model = src.export_onnx(converter.split(":")[-1], inputs[0])
        with sr.stage("check"):
            from fuzzer.targets import onnx_targets

            onnx_targets.check(model)
    except StageFailed as e:
        emit("convert_failed", {"converter": converter, "failure": e.failure.to_json(), "stage_times": sr.times})
        return
    emit("artefact", {"converter": converter, "stage_times": sr.times}, {"model": model})


def _model_inputs(model: bytes) -> list[str]:
    import onnx

    g = onnx.load_from_string(model).graph
    inits = {i.name for i in g.initializer}
    return [i.name for i in g.input if i.name not in inits]


def prepare(src: Any, pid: PipelineId, model: bytes | None, first: list[np.ndarray], sr: StageRunner) -> Any:
    """Every stage before "run"; returns a callable from one input set to its outputs (None: compile-only)."""
    if pid.backend in ("ort", "onnxref"):
        from fuzzer.targets import onnx_targets

        assert model is not None
        names = _model_inputs(model)
        if pid.backend == "ort":
            with sr.stage("compile"):
                session = onnx_targets.ort_session(model, pid.level, pid.device)
        else:
            with sr.stage("import"):
                session = onnx_targets.reference_session(model)
        return lambda arrays: session(dict(zip(names, arrays)), names)
    if pid.backend == "tvm":
        from fuzzer.targets import tvm_backend

        if pid.converter == "export":
            with sr.stage("export"):
                program = src.export_program(first)
            with sr.stage("import"):
                mod = tvm_backend.import_exported_program(program)
        else:
            assert model is not None
            with sr.stage("import"):
                mod = tvm_backend.import_onnx(model)
        with sr.stage("compile"):
            compiled = tvm_backend.build(mod, int(pid.level[1:]), pid.device)
        if pid.device == "cuda" and not tvm_backend.cuda_available():
            return None
        return lambda arrays: tvm_backend.run(compiled, list(arrays))
    raise ValueError(f"check does not run backend {pid.backend!r}")


def _pipeline(spec: ModelSpec, pid: PipelineId, inputs: list[list[np.ndarray]], model: bytes | None, repeats: int,
              emit: Emit, timeout: float | None) -> None:
    sr = StageRunner(pid.name, emit, timeout)
    outcome = Outcome(pid.name)
    outs: list[list[np.ndarray]] = []
    try:
        src = source_for(spec) if pid.converter == "export" else None
        runner = prepare(src, pid, model, inputs[0], sr)
        if runner is None:
            outcome.compile_only = True
        else:
            with sr.stage("run"):
                outs = [[np.asarray(o) for o in runner(x)] for x in inputs]
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    runner(inputs[0])
                    outcome.run_times.append(time.perf_counter() - t0)
    except StageFailed as e:
        outcome.failure = e.failure
    outcome.stage_times = dict(sr.times)
    emit("outcome", outcome.meta_json(), {"outputs": pack_sets(outs)} if outs else {})
