"""A diverging conversion, diagnosed inside the worker: localise the layer, name the fault class by
the first transplant that removes the divergence, and return the repaired model.

Agreement is judged as in the report: onnxruntime with optimisations off against the source's outputs,
under the tolerances the parent derived (oracles.compare records per input and output).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from fuzzer.check import localise, transplant
from fuzzer.targets.stages import Emit, StageFailed, StageRunner
from oracles.compare import compare_outputs
from oracles.tolerance import Tolerance

CLASSES = ("input", "parameters", "hyper-parameters", "graph")


def agreement(model: onnx.ModelProto, inputs: list[list[np.ndarray]], expected: list[list[np.ndarray]],
              tols: list[list[Tolerance]]) -> dict[str, Any]:
    """How far the model is from the source: disagreeing inputs, max error, top-1 agreement."""
    from fuzzer.targets import onnx_targets

    try:
        names = localise.input_names(model)
        session = onnx_targets.ort_session(model.SerializeToString(), "disable", "cpu")
        gots = [session(dict(zip(names, x)), names) for x in inputs]
    except Exception as e:  # noqa: BLE001 - a candidate that does not load does not agree
        return {"loads": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}",
                "bad": [True] * len(inputs), "inputs_agreeing": 0, "inputs": len(inputs)}
    recs = [compare_outputs(e, g, t) for e, g, t in zip(expected, gots, tols)]
    bad = [any(r.mismatch for r in rs) for rs in recs]
    errs = [r.max_abs for rs in recs for r in rs if r.max_abs is not None]
    top1 = [_top1(e[0]) == _top1(g[0]) for e, g in zip(expected, gots)
            if e and g and e[0].shape == g[0].shape and e[0].ndim >= 1]
    return {"loads": True, "bad": bad, "inputs_agreeing": len(bad) - sum(bad), "inputs": len(bad),
            "max_abs": max(errs) if errs else None, "top1_agreement": float(np.mean(top1)) if top1 else None}


def _top1(a: np.ndarray) -> int:
    return int(np.argmax(a.reshape(-1, a.shape[-1])[0]))


def _public(a: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in a.items() if k != "bad"}


def diagnose(src: Any, onnx_bytes: bytes, inputs: list[list[np.ndarray]], expected: list[list[np.ndarray]],
             tolerances: list[list[list[float]]], emit: Emit) -> None:
    sr = StageRunner("diagnose", emit, None)
    tols = [[Tolerance(a, r) for a, r in ts] for ts in tolerances]
    header: dict[str, Any] = {"fault_class": None, "layer": None, "changes": [], "transplants": []}
    blobs: dict[str, bytes] = {}
    try:
        model = onnx.load_from_string(onnx_bytes)
        with sr.stage("run"):
            original = agreement(model, inputs, expected, tols)
        header["original"] = _public(original)
        bad = original["bad"]
        with sr.stage("run", harness=True):
            hooked = [src.layer_outputs(x) for x in inputs]
        source_outputs = [h[0] for h in hooked]
        with sr.stage("run"):
            first_args = {m: a[0].detach().cpu().numpy() for m, a in hooked[0][1].items()
                          if a and hasattr(a[0], "detach")}
            layers, first = localise.localise(model, source_outputs, inputs, bad, first_args)
        header["layers"] = [lay.to_json() for lay in layers]
        header["ranking"] = localise.ranking(layers)
        header["layer"] = first
        header["diverging"] = any(bad)
        if any(bad) and original["loads"]:
            _classify(src, model, layers, first, hooked[0][1], list(hooked[0][0]), inputs, expected, tols, header,
                      blobs, sr)
    except StageFailed as e:
        header["error"] = f"{e.failure.stage}: {e.failure.exc_type}: {e.failure.message.splitlines()[0][:300]}"
    header["stage_times"] = sr.times
    emit("diagnosis", header, blobs)


def _classify(src: Any, model: onnx.ModelProto, layers: list[localise.Layer], first: str | None,
              module_inputs: dict[str, list[Any]], order: list[str], inputs: list[list[np.ndarray]],
              expected: list[list[np.ndarray]], tols: list[list[Tolerance]], header: dict[str, Any],
              blobs: dict[str, bytes], sr: StageRunner) -> None:
    """Try the transplants in class order; the first whose model agrees on every input names the class."""
    layer = next((lay for lay in layers if lay.name == first), None)
    modules = set(src.module_names())
    candidates: list[tuple[str, str, Any]] = [
        ("input", "source input layout and dims",
         lambda: transplant.transplant_input(model, [tuple(i.shape) for i in src.inputs]))]
    if layer is not None:
        info = src.layer_info(layer.module)
        params = _folded(src, info, order, {lay.module for lay in layers}) or info.params
        candidates += [
            ("parameters", f"weights of {layer.module}",
             lambda: transplant.transplant_parameters(model, layer, params)),
            ("hyper-parameters", f"attributes of {layer.module}",
             lambda: transplant.transplant_hyper(model, layer, info.hyper))]

        def export(module: str) -> bytes | None:
            args = module_inputs.get(module)
            if args is None:
                return None
            try:
                with sr.stage("export"):
                    return src.export_submodule(module, args)
            except StageFailed:
                return None
    for klass, what, make in candidates:
        result = make()
        if _try(klass, what, result, inputs, expected, tols, header, blobs, sr):
            return
    if layer is None:
        return
    for module, result in transplant.graph_candidates(model, layer, modules, export):
        if _try("graph", f"sub-graph of {module}", result, inputs, expected, tols, header, blobs, sr):
            return


def _folded(src: Any, info: Any, order: list[str], mapped: set[str]) -> dict[str, np.ndarray] | None:
    """A convolution's weights with the next layer's batch norm folded in, when that batch norm has no node
    of its own in the converted graph: exporters fold it (TorchScript in eval mode does), so the converted
    Conv holds W * gamma / sqrt(var + eps), not the source's W."""
    if not info.type.startswith("Conv") or info.name not in order:
        return None
    at = order.index(info.name)
    if at + 1 >= len(order) or order[at + 1] in mapped:
        return None
    bn = src.layer_info(order[at + 1])
    if not bn.type.startswith("BatchNorm") or "weight" not in info.params:
        return None
    p = bn.params
    w = info.params["weight"].astype(np.float64)
    scale = p["weight"].astype(np.float64) / np.sqrt(p["running_var"].astype(np.float64) + float(bn.hyper["eps"]))
    bias = info.params.get("bias", np.zeros(w.shape[0])).astype(np.float64)
    shape = (-1,) + (1,) * (w.ndim - 1)
    return {"weight": (w * scale.reshape(shape)).astype(np.float32),
            "bias": ((bias - p["running_mean"]) * scale + p["bias"]).astype(np.float32)}


def _try(klass: str, what: str, result: Any, inputs: list[list[np.ndarray]], expected: list[list[np.ndarray]],
         tols: list[list[Tolerance]], header: dict[str, Any], blobs: dict[str, bytes], sr: StageRunner) -> bool:
    if result is None:
        header["transplants"].append({"class": klass, "what": what, "applicable": False})
        return False
    candidate, changes = result
    with sr.stage("run"):
        after = agreement(candidate, inputs, expected, tols)
    fixed = after["loads"] and not any(after["bad"])
    header["transplants"].append({"class": klass, "what": what, "applicable": True, "changes": changes,
                                  "removes_divergence": fixed, "agreement": _public(after)})
    if fixed:
        header["fault_class"] = klass
        header["changes"] = changes
        header["repaired"] = _public(after)
        blobs["repaired"] = candidate.SerializeToString()
    return fixed
