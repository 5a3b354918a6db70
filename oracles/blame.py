"""Who is at fault: component names and the triangulation votes among independent implementations.

A vote, never one trusted oracle: the ONNX reference evaluator and onnxruntime without optimisations
tell a wrong exported model (converter) from a wrong backend; TVM at O0 vs a higher level tells a
frontend bug from an optimisation bug; ORT at "disable" vs a higher level names ORT's optimiser.
"""

from __future__ import annotations

from oracles.pipeline_id import PipelineId

CONVERTER_NAMES = {"onnx:torchscript": "torch.onnx (torchscript)", "onnx:dynamo": "torch.onnx (dynamo)",
                   "tf2onnx": "tf2onnx", "export": "torch.export"}
SOURCE_NAMES = {"torch": "torch eager", "tf": "tensorflow eager"}
VOTERS = {"onnxref": "onnx", "ort": "onnxruntime", "tvm": "tvm"}  # consumers of an ONNX model, by library


def converter_component(pid: PipelineId) -> str:
    return CONVERTER_NAMES[pid.converter]


def backend_component(pid: PipelineId, stage: str) -> str:
    """The component a failure at `stage` of this pipeline belongs to, before any vote."""
    if stage in ("export", "check"):
        return converter_component(pid)
    if pid.backend == "tvm":
        if stage == "import":
            return "tvm torch frontend" if pid.converter == "export" else "tvm onnx frontend"
        return "tvm codegen" if stage == "compile" else "tvm runtime"
    return {"ort": "onnxruntime", "onnxref": "onnx reference evaluator", "inductor": "inductor", "xla": "xla",
            "eager": f"{pid.source} {pid.device}"}[pid.backend]


def optimiser_component(pid: PipelineId) -> str:
    """An optimisation level at fault (the lower level of the same backend passed)."""
    if pid.backend == "ort":
        return f"onnxruntime optimizer ({pid.level})"
    return f"tvm optimisation ({pid.level})"


def is_plain(p: PipelineId) -> bool:
    """An unoptimised consumer of an exported model: its verdict on the model is the model's, not an optimiser's."""
    return p.backend == "onnxref" or (p.backend == "ort" and p.level == "disable") or (
        p.backend == "tvm" and p.level == "O0")


def lowest_level(pid: PipelineId) -> PipelineId | None:
    """The least optimised sibling whose agreement clears the optimiser, or None without levels."""
    if pid.backend == "ort":
        return pid.with_level("disable")
    if pid.backend == "tvm":
        return pid.with_level("O0")
    return None


def blame_failure(pid: PipelineId, stage: str, lower_ok: bool | None) -> str:
    """`lower_ok`: did the lowest level of the same backend get past this stage? (None: not run)"""
    if stage in ("compile", "run") and lower_ok and pid.level_rank > 0:
        return optimiser_component(pid)
    return backend_component(pid, stage)


def blame_mismatch(pid: PipelineId, wrong: dict[PipelineId, bool]) -> tuple[str, str]:
    """(component, why) for a pipeline whose outputs differ from the reference.

    `wrong` holds every pipeline of the same case that produced outputs: True when it mismatched. Voters are
    libraries: the consumers of one exported model vote as onnx (reference evaluator), onnxruntime and TVM.
    """
    if pid.backend in ("inductor", "xla", "eager"):
        return backend_component(pid, "run"), "the only implementation on this path"
    if pid.converter in CONVERTER_NAMES and pid.converter != "export":
        consumers = {q: bad for q, bad in wrong.items() if q.source == pid.source and q.converter == pid.converter}
        if len({VOTERS[q.backend] for q in consumers}) < 2:
            return (f"{converter_component(pid)} or {backend_component(pid, 'run')}",
                    "converter or backend: no control pipeline")
        plain = [q for q in consumers if is_plain(q)]
        plain_ok = [q for q in plain if not consumers[q]]
        if plain and not plain_ok and len({VOTERS[q.backend] for q in plain}) >= 2:
            return converter_component(pid), ("every unoptimised consumer of the exported model disagrees with "
                                              f"the source: {', '.join(q.name for q in sorted(plain))}")
        if not plain_ok and all(consumers.values()):
            return converter_component(pid), "every consumer of the exported model disagrees with the source"
        if not plain_ok:
            return (f"{converter_component(pid)} or {backend_component(pid, 'run')}",
                    "converter or backend: no unoptimised consumer of the model agrees with the source")
    low = lowest_level(pid)
    if low is not None and low != pid and wrong.get(low) is False:
        return optimiser_component(pid), f"{low.name} agrees with the source"
    if pid.backend == "tvm":
        frontend = "tvm torch frontend" if pid.converter == "export" else "tvm onnx frontend"
        return frontend, "wrong already at O0 while another consumer of the same model is right"
    if pid.backend == "onnxref":
        return "onnx reference evaluator", "another consumer of the same model is right"
    return backend_component(pid, "run"), "another consumer of the same model is right"
