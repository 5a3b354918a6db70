"""ONNX consumers: the checker, onnxruntime at each optimisation level, the ONNX reference evaluator.

Imported only inside a worker process.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

ORT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
              "all": "ORT_ENABLE_ALL"}
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def check(model_bytes: bytes) -> None:
    """onnx.checker with strict shape inference on what a converter emitted: an invalid model (e.g. a
    Transpose with a negative perm) is the converter's finding, not a crash of the backend that trips on it."""
    onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)


def feed_names(model_inputs: list[str], graph_inputs: list[str]) -> list[str | None]:
    """For each model input, the graph input it is (converters rename: tf2onnx adds ':0').

    None marks a model input that matches no graph input by name; positional matching is used then
    only when the counts agree. Exporters drop unused inputs, so a model may have fewer inputs.
    """
    out: list[str | None] = []
    for name in model_inputs:
        base = name[:-2] if name.endswith(":0") else name
        out.append(base if base in graph_inputs else None)
    if None in out and len(model_inputs) == len(graph_inputs):
        return list(graph_inputs)
    return out


def _feeds(model_inputs: list[str], graph_inputs: list[str], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = feed_names(model_inputs, graph_inputs)
    missing = [m for m, g in zip(model_inputs, names) if g is None]
    if missing:
        raise ValueError(f"model inputs {missing} match no graph input {graph_inputs}")
    return {m: inputs[g] for m, g in zip(model_inputs, names)}


def ort_session(model_bytes: bytes, level: str, device: str) -> Callable[[dict[str, np.ndarray], list[str]], list]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, ORT_LEVELS[level])
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, so, providers=[ORT_PROVIDERS[device]])
    model_inputs = [i.name for i in sess.get_inputs()]

    def run(inputs: dict[str, np.ndarray], graph_inputs: list[str]) -> list[np.ndarray]:
        return [np.asarray(o) for o in sess.run(None, _feeds(model_inputs, graph_inputs, inputs))]

    return run


def reference_session(model_bytes: bytes) -> Callable[[dict[str, np.ndarray], list[str]], list]:
    from onnx.reference import ReferenceEvaluator

    ev = ReferenceEvaluator(onnx.load_from_string(model_bytes))
    model_inputs = list(ev.input_names)

    def run(inputs: dict[str, np.ndarray], graph_inputs: list[str]) -> list[np.ndarray]:
        return [np.asarray(o) for o in ev.run(None, _feeds(model_inputs, graph_inputs, inputs))]

    return run


def ort_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())
