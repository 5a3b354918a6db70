"""The worker job that replays one saved case through every route to measure reach (and coverage).

Runs inside `python -m fuzzer.workers.main fuzzer.reach.replay:run_reach_job` (TVM can segfault: the pool
turns that into a lost route, never a lost measurement). Request:
  {"op": "registries", "components": [...]}: one "registry" event each, fuzzer.reach.excluded.registry_info
  {"op": "reach", "graph": wire JSON, "routes": [...], "work_dir": str, "coverage_dir": str | None,
   "consumers": bool, "label": str}   blobs: "inputs", "weights" (fuzzer/targets/arrays.py packing)
Emits one "reach" event per route as soon as it is done:
  {"route", "status": "ok" | "failed", "error", "keys": {component: [keys]}, "seconds"}
and, with coverage on, one "coverage" event after the case's arcs are on disk: {"new_arcs", "file"}.

Routes (converter names as in pipeline ids):
  export            torch.export -> TVM's torch frontend (the program TVM imports, decomposed by TVM)
  onnx:torchscript  the TorchScript exporter -> TVM's ONNX frontend, onnxruntime, the reference evaluator
  onnx:dynamo       the torch.export-based exporter -> the same ONNX consumers
  tf2onnx           tf2onnx.convert.from_function -> the same ONNX consumers
Converter keys are recorded at dispatch (fuzzer/reach/recorders.py); ONNX consumers' keys are read from the
model (and from onnxruntime's optimised graph). With "consumers" on (coverage needs it), each ONNX model is
also imported by TVM and run by the reference evaluator, so their Python code is measured.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fuzzer.targets.arrays import unpack_dict
from fuzzer.targets.stages import Emit, StageFailed, StageRunner
from generators.ir import Graph
from generators.values import Values

ROUTES = ("export", "onnx:torchscript", "onnx:dynamo", "tf2onnx")
_coverage: dict[str, Any] = {}  # coverage folder -> CaseCoverage of this worker


def run_reach_job(request: dict[str, Any], blobs: dict[str, bytes], emit: Emit) -> None:
    if request.get("op") == "registries":
        from fuzzer.reach.excluded import registry_info

        for component in request["components"]:
            emit("registry", {"component": component, **registry_info(component)})
        return
    graph = Graph.loads(request["graph"])
    values = Values(unpack_dict(blobs["inputs"]), unpack_dict(blobs["weights"]))
    routes = list(request.get("routes") or ROUTES)
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        raise ValueError(f"unknown route(s) {unknown} (known: {', '.join(ROUTES)})")
    case = _Case(graph, values, request, emit)
    with _measured(request, emit):
        for route in routes:
            case.route(route)


@contextlib.contextmanager
def _measured(request: dict[str, Any], emit: Emit) -> Iterator[None]:
    folder = request.get("coverage_dir")
    if not folder:
        yield
        return
    from fuzzer.reach.linecov import CaseCoverage

    cov = _coverage.get(folder)
    if cov is None:
        cov = _coverage[folder] = CaseCoverage(Path(folder))
    cov.start()
    try:
        yield
    finally:
        new = cov.stop()
        cov.save_case(new, str(request.get("label", "")))
        emit("coverage", {"new_arcs": sum(len(v) for v in new.values()), "file": str(cov.path)})


class _Case:
    def __init__(self, graph: Graph, values: Values, request: dict[str, Any], emit: Emit) -> None:
        self.graph = graph
        self.values = values
        self.emit = emit
        self.consumers = bool(request.get("consumers", False))
        self.work_dir = str(request.get("work_dir") or ".")
        self.timeout_s = request.get("stage_timeout_s")
        self._sources: dict[str, Any] = {}

    def source(self, name: str) -> Any:
        if name not in self._sources:
            from fuzzer.targets.job import make_source

            self._sources[name] = make_source(name, self.graph, self.values)
        return self._sources[name]

    def route(self, route: str) -> None:
        sr = StageRunner(route, self.emit, self.timeout_s)
        keys: dict[str, set[str]] = {}
        t0 = time.perf_counter()
        error = ""
        try:
            if route == "export":
                self._export(sr, keys)
            else:
                self._onnx_route(route, sr, keys)
        except StageFailed as e:
            error = f"{e.failure.stage}: {e.failure.exc_type}: {e.failure.message.splitlines()[0][:300]}"
        self.emit("reach", {"route": route, "status": "failed" if error else "ok", "error": error,
                            "keys": {c: sorted(ks) for c, ks in keys.items()},
                            "seconds": round(time.perf_counter() - t0, 3)})

    def _export(self, sr: StageRunner, keys: dict[str, set[str]]) -> None:
        from fuzzer.reach.recorders import tvm_torch_dispatch

        with sr.stage("export"):
            src = self.source("torch")
            import torch

            program = torch.export.export(src.module, src.args)
        from fuzzer.targets import tvm_backend

        with tvm_torch_dispatch() as seen:
            keys["tvm-torch"] = seen
            with sr.stage("import"):
                tvm_backend.import_exported_program(program)

    def _onnx_route(self, route: str, sr: StageRunner, keys: dict[str, set[str]]) -> None:
        from fuzzer.reach import recorders

        if route == "tf2onnx":
            component, recorder = "tf2onnx", recorders.tf2onnx_dispatch()
        elif route == "onnx:torchscript":
            component, recorder = "torchscript", recorders.torchscript_dispatch()
        else:
            component, recorder = "dynamo", recorders.dynamo_dispatch()
        with recorder as seen:
            keys[component] = seen
            with sr.stage("export"):
                src = self.source("tf" if route == "tf2onnx" else "torch")
                model = src.export_onnx() if route == "tf2onnx" else src.export_onnx(route.split(":")[1])
        self._consumers(model, sr, keys)

    def _consumers(self, model: bytes, sr: StageRunner, keys: dict[str, set[str]]) -> None:
        """ONNX consumers' keys from the model; each consumer's own failure does not hide the others' keys."""
        from fuzzer.reach.extract import onnx_consumer_keys, onnx_nodes, ort_optimised_nodes

        nodes = onnx_nodes(model)
        keys.update(onnx_consumer_keys(nodes))
        failures: list[StageFailed] = []
        try:
            with sr.stage("compile"):
                keys["onnxruntime"] |= onnx_consumer_keys(ort_optimised_nodes(model, self.work_dir))["onnxruntime"]
        except StageFailed as e:
            failures.append(e)
        if self.consumers:
            from fuzzer.targets import onnx_targets, tvm_backend

            for stage, run in (("import", lambda: tvm_backend.import_onnx(model)),
                               ("run", lambda: onnx_targets.reference_session(model)(self.values.inputs,
                                                                                     self.graph.inputs))):
                try:
                    with sr.stage(stage):
                        run()
                except StageFailed as e:
                    failures.append(e)
        if failures:
            raise failures[0]
