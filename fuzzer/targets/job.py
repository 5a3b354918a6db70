"""The worker-side job handler: one case through the pipelines of one source.

Requests (JSON header + .npz/model blobs, see fuzzer/workers/main.py):
  {"op": "case", "graph", "source", "pipelines", "reference", "repeats", "stage_timeout_s"}
      blobs: inputs, weights, and optionally "model:<converter>" (ONNX bytes from an earlier job)
      emits: "reference" (eager outputs and the float64 twin's), "artefact" (each converter's ONNX bytes),
             "outcome" (one per pipeline: Outcome.meta_json + outputs)
  {"op": "time", ..., "pipelines": [low, high], "repeats"}: fresh builds, interleaved timed runs ("timing")
  {"op": "bisect", ..., "pipeline", "tolerances"} blobs + "expected": the TVM pass whose disabling
      makes the bad result vanish ("bisect")

Every call into a system under test runs inside a StageRunner stage, so the pool can time it out and
attribute a crash to it. Heavy libraries are imported on first use and stay imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fuzzer.targets.arrays import pack_list, unpack_dict, unpack_list
from fuzzer.targets.stages import Emit, StageFailed, StageRunner
from generators.ir import Graph
from generators.values import Values
from generators.variants import promote_floats
from oracles.outcome import Outcome
from oracles.pipeline_id import ONNX_CONVERTERS, PipelineId, parse_pipeline

Runner = Callable[[], list[np.ndarray]]
_pinned: set[str] = set()


class JobContext:
    """What the pipelines of one job share: the materialised source, converted models, exported programs."""

    def __init__(self, graph: Graph, values: Values, source: str, emit: Emit, timeout_s: float | None) -> None:
        self.graph = graph
        self.values = values
        self.source_name = source
        self.emit = emit
        self.timeout_s = timeout_s
        self.models: dict[str, bytes | StageFailed] = {}
        # onnx's checker is one voter with onnx's reference evaluator: where that evaluator runs the model, the
        # checker's rejection is its failure alone, and onnxruntime and TVM still get the model (independent votes)
        self.check_failures: dict[str, StageFailed] = {}
        self.onnx_voters: set[str] = set()  # converters whose model the reference evaluator consumes in this job
        self._source: Any = None
        self._program: Any = None

    def source(self) -> Any:
        if self._source is None:
            self._source = make_source(self.source_name, self.graph, self.values)
        return self._source


def make_source(source: str, graph: Graph, values: Values) -> Any:
    if source == "torch":
        from fuzzer.targets import torch_targets as tt

        _pin("torch", tt.pin_threads)
        return tt.TorchSource(graph, values)
    from fuzzer.targets import tf_targets as tft

    _pin("tf", tft.pin_threads)
    return tft.TFSource(graph, values)


def _pin(lib: str, pin: Callable[[], None]) -> None:
    if lib not in _pinned:
        pin()
        _pinned.add(lib)


# -- converters -------------------------------------------------------------------------------------
def onnx_model(ctx: JobContext, pid: PipelineId, sr: StageRunner) -> bytes:
    """The converter's ONNX bytes, converted once per job; its failure is every dependent pipeline's."""
    cached = ctx.models.get(pid.converter)
    if isinstance(cached, StageFailed):
        raise StageFailed(cached.failure)
    rejected = ctx.check_failures.get(pid.converter)
    if rejected is not None and pid.backend == "onnxref":
        raise StageFailed(rejected.failure)
    if cached is not None:
        return cached
    from fuzzer.targets import onnx_targets

    try:
        with sr.stage("export"):
            src = ctx.source()
            model = src.export_onnx(pid.converter.split(":")[1]) if pid.source == "torch" else src.export_onnx()
        ctx.emit("artefact", {"converter": pid.converter}, {"model": model})
    except StageFailed as e:
        ctx.models[pid.converter] = e
        raise
    try:
        with sr.stage("check"):
            onnx_targets.check(model)
    except StageFailed as e:
        if pid.converter not in ctx.onnx_voters:  # nobody else speaks for onnx here: the check gates the model
            ctx.models[pid.converter] = e
            raise
        ctx.check_failures[pid.converter] = e
        ctx.models[pid.converter] = model
        if pid.backend == "onnxref":
            raise
    ctx.models[pid.converter] = model
    return model


def exported_program(ctx: JobContext, sr: StageRunner) -> Any:
    if isinstance(ctx._program, StageFailed):
        raise StageFailed(ctx._program.failure)
    if ctx._program is None:
        try:
            with sr.stage("export"):
                ctx._program = ctx.source().export_program()
        except StageFailed as e:
            ctx._program = e
            raise
    return ctx._program


# -- backends ---------------------------------------------------------------------------------------
def prepare(ctx: JobContext, pid: PipelineId, sr: StageRunner) -> Runner | None:
    """Run every stage before "run"; return a callable giving the outputs (None: compile-only)."""
    if pid.backend == "eager":
        return lambda: ctx.source().run_eager(pid.device)
    if pid.backend == "inductor":
        with sr.stage("compile"):
            return ctx.source().compile_inductor(pid.device)
    if pid.backend == "xla":
        with sr.stage("compile"):
            return ctx.source().compile_xla()
    if pid.backend == "tvm":
        return _prepare_tvm(ctx, pid, sr)
    from fuzzer.targets import onnx_targets

    model = onnx_model(ctx, pid, sr)
    inputs, names = ctx.values.inputs, ctx.graph.inputs
    if pid.backend == "ort":
        with sr.stage("compile"):
            run = onnx_targets.ort_session(model, pid.level, pid.device)
    else:
        with sr.stage("import"):
            run = onnx_targets.reference_session(model)
    return lambda: run(inputs, names)


def _prepare_tvm(ctx: JobContext, pid: PipelineId, sr: StageRunner) -> Runner | None:
    from fuzzer.targets import tvm_backend

    if pid.converter in ONNX_CONVERTERS:
        model = onnx_model(ctx, pid, sr)
        with sr.stage("import"):
            mod = tvm_backend.import_onnx(model)
        args = _onnx_ordered_inputs(model, ctx)
    else:
        program = exported_program(ctx, sr)
        with sr.stage("import"):
            mod = tvm_backend.import_exported_program(program)
        args = [ctx.values.inputs[n] for n in ctx.graph.inputs]
    with sr.stage("compile"):
        compiled = tvm_backend.build(mod, int(pid.level[1:]), pid.device)
    if pid.device == "cuda" and not tvm_backend.cuda_available():
        return None
    return lambda: tvm_backend.run(compiled, args)


def _onnx_ordered_inputs(model: bytes, ctx: JobContext) -> list[np.ndarray]:
    import onnx

    from fuzzer.targets.onnx_targets import feed_names

    g = onnx.load_from_string(model).graph
    inits = {i.name for i in g.initializer}
    model_inputs = [i.name for i in g.input if i.name not in inits]
    return [ctx.values.inputs[n] for n in feed_names(model_inputs, ctx.graph.inputs) if n is not None]


def timed(run: Runner, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return out


def run_pipeline(ctx: JobContext, pid: PipelineId, repeats: int) -> Outcome:
    sr = StageRunner(pid.name, ctx.emit, ctx.timeout_s)
    outcome = Outcome(pid.name)
    try:
        runner = prepare(ctx, pid, sr)
        if runner is None:
            outcome.compile_only = True
        else:
            with sr.stage("run"):
                outcome.outputs = [np.asarray(o) for o in runner()]
                if pid.backend in ("ort", "tvm") and repeats > 0:
                    outcome.run_times = timed(runner, repeats)
    except StageFailed as e:
        outcome.failure = e.failure
    outcome.stage_times = dict(sr.times)
    return outcome


# -- the handler --------------------------------------------------------------------------------------
def run_job(request: dict[str, Any], blobs: dict[str, bytes], emit: Emit) -> None:
    emit = _without_repeated_stages(emit)
    graph = Graph.loads(request["graph"])
    values = Values(unpack_dict(blobs["inputs"]), unpack_dict(blobs["weights"]))
    ctx = JobContext(graph, values, request["source"], emit, request.get("stage_timeout_s"))
    for key, data in blobs.items():
        if key.startswith("model:"):
            ctx.models[key[len("model:"):]] = data
    op = request.get("op", "case")
    if op == "case":
        _case(ctx, request)
    elif op == "time":
        _time(ctx, request)
    elif op == "bisect":
        _bisect(ctx, request, blobs)
    else:
        raise ValueError(f"unknown job op {op!r}")


def _without_repeated_stages(emit: Emit) -> Emit:
    """Drop a "stage" frame identical to the frame just sent: the pool already attributes to that stage
    (materialising the reference and running it are one stage), and each frame costs the parent a wake-up."""
    last: list[Any] = [None]

    def send(event: str, header: dict | None = None, blobs: dict[str, bytes] | None = None) -> None:
        key = (event, header) if event == "stage" else None
        if key is not None and key == last[0]:
            return
        last[0] = key
        emit(event, header, blobs)
    return send


def _case(ctx: JobContext, request: dict[str, Any]) -> None:
    pipelines = [parse_pipeline(name) for name in request["pipelines"]]
    ctx.onnx_voters = {p.converter for p in pipelines if p.backend == "onnxref"}
    if request.get("reference", True):
        _reference(ctx)
    for pid in pipelines:
        outcome = run_pipeline(ctx, pid, int(request.get("repeats", 10)))
        blobs = {"outputs": pack_list(outcome.outputs)} if outcome.outputs is not None else {}
        ctx.emit("outcome", outcome.meta_json(), blobs)


def _reference(ctx: JobContext) -> None:
    """The eager source on CPU, and the float64 twin when the graph has floats (its rounding noise)."""
    sr = StageRunner(f"{ctx.source_name}>reference", ctx.emit, ctx.timeout_s)
    header: dict[str, Any] = {"failure": None, "float64": False}
    blobs: dict[str, bytes] = {}
    try:
        with sr.stage("reference", harness=True):  # materialising the module is our work, but it can raise
            source = ctx.source()
        with sr.stage("reference"):
            blobs["outputs"] = pack_list(source.run_eager())
    except StageFailed as e:
        header["failure"] = e.failure.to_json()
    wide = promote_floats(ctx.graph, ctx.values, check=False) if header["failure"] is None else None
    if wide is not None:
        try:  # an op that refuses float64 only costs the noise estimate, never the reference
            with sr.stage("reference", harness=True):
                source64 = make_source(ctx.source_name, *wide)
            with sr.stage("reference"):
                blobs["outputs64"] = pack_list(source64.run_eager())
            header["float64"] = True
        except StageFailed:
            pass
    header["stage_times"] = sr.times
    ctx.emit("reference", header, blobs)


def _time(ctx: JobContext, request: dict[str, Any]) -> None:
    """A second, independent timing: fresh builds of each pipeline, runs interleaved to share drift."""
    pids = [parse_pipeline(p) for p in request["pipelines"]]
    runners: dict[str, Runner] = {}
    for pid in pids:
        sr = StageRunner(pid.name, ctx.emit, ctx.timeout_s)
        try:
            runner = prepare(ctx, pid, sr)
            if runner is not None:
                with sr.stage("run"):
                    runner()  # warm-up
                runners[pid.name] = runner
        except StageFailed as e:
            ctx.emit("timing", {"pipeline": pid.name, "run_times": [], "failure": e.failure.to_json()})
    times: dict[str, list[float]] = {p: [] for p in runners}
    for _ in range(int(request.get("repeats", 10))):
        for name, runner in runners.items():
            times[name].extend(timed(runner, 1))
    for name, ts in times.items():
        ctx.emit("timing", {"pipeline": name, "run_times": ts, "failure": None})


def _bisect(ctx: JobContext, request: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """Name the TVM pass at fault: the one whose disabling makes the build good again."""
    from fuzzer.targets import tvm_backend
    from oracles.compare import compare_outputs
    from oracles.tolerance import Tolerance

    pid = parse_pipeline(request["pipeline"])
    expected = unpack_list(blobs["expected"]) if "expected" in blobs else None
    tols = [Tolerance(a, r) for a, r in request.get("tolerances", [])]
    sr = StageRunner(pid.name, ctx.emit, ctx.timeout_s)
    if pid.converter in ONNX_CONVERTERS:
        model = onnx_model(ctx, pid, sr)
        make_mod = lambda: tvm_backend.import_onnx(model)
        args = _onnx_ordered_inputs(model, ctx)
    else:
        program = exported_program(ctx, sr)
        make_mod = lambda: tvm_backend.import_exported_program(program)
        args = [ctx.values.inputs[n] for n in ctx.graph.inputs]

    def is_bad(compiled: Any, error: BaseException | None) -> bool:
        if error is not None:
            return True
        if expected is None:
            return False
        try:
            got = tvm_backend.run(compiled, args)
        except Exception:  # noqa: BLE001 - a run-time crash is bad too
            return True
        return any(r.mismatch for r in compare_outputs(expected, got, tols))

    with sr.stage("compile"):
        guilty = tvm_backend.find_guilty_pass(make_mod, int(pid.level[1:]), pid.device, is_bad)
    ctx.emit("bisect", {"pipeline": pid.name, "guilty_pass": guilty, "stage_times": sr.times})

