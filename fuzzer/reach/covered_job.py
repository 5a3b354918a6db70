"""The campaign's case job with reach and coverage recorded as it goes (`parallax fuzz --coverage`).

Handler "fuzzer.reach.covered_job:run_job" wraps fuzzer.targets.job.run_job unchanged. When the request holds
"coverage_dir", the case runs under the dispatch recorders (and coverage.py); every ONNX model the job emits as
an "artefact" is read for its consumers' keys; after the job, the case's new arcs are appended to this
worker's file under coverage_dir (durable before the job reports done), and one "reach" event goes to the
parent: {"routes": {route: {component: [keys]}}, "new_arcs": n}. Without "coverage_dir" it is run_job itself.
With "lines": false the reach is recorded but coverage.py does not run: line tracing roughly doubles the time
of the Python-heavy exporters (torch.export, dynamo) on Python 3.11, while the recorders cost nothing
measurable, so a campaign can trace lines on a sample of cases and record reach on all.

Differences from the replay job (fuzzer/reach/replay.py), by design: onnxruntime's keys come from the exported
model only (its optimised graph would cost an extra session per case), and the consumers measured are those the
campaign's pipelines actually ran.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Any

from fuzzer.targets.stages import Emit

_coverage: dict[str, Any] = {}
_ROUTE_OF = {"torchscript": "onnx:torchscript", "dynamo": "onnx:dynamo", "tf2onnx": "tf2onnx", "tvm-torch": "export"}


def run_job(request: dict[str, Any], blobs: dict[str, bytes], emit: Emit) -> None:
    from fuzzer.targets.job import run_job as plain

    folder = request.get("coverage_dir")
    if not folder:
        plain(request, blobs, emit)
        return
    from fuzzer.reach import recorders
    from fuzzer.reach.extract import onnx_consumer_keys, onnx_nodes
    from fuzzer.reach.linecov import CaseCoverage

    routes: dict[str, dict[str, set[str]]] = {}

    def watch(event: str, header: dict | None = None, out_blobs: dict[str, bytes] | None = None) -> None:
        if event == "artefact" and out_blobs and "model" in out_blobs:
            try:
                keys = onnx_consumer_keys(onnx_nodes(out_blobs["model"]))
            except Exception:  # noqa: BLE001 - an unparsable model reaches no consumer
                keys = {}
            into = routes.setdefault(str((header or {}).get("converter", "?")), {})
            for component, ks in keys.items():
                into.setdefault(component, set()).update(ks)
        emit(event, header, out_blobs)

    cov = _coverage.get(folder)
    if cov is None:
        cov = _coverage[folder] = CaseCoverage(Path(folder))
    lines = bool(request.get("lines", True))
    new: dict[str, Any] = {}
    seen: dict[str, set[str]] = {}
    with contextlib.ExitStack() as stack:
        by_component = {"torchscript": recorders.torchscript_dispatch, "dynamo": recorders.dynamo_dispatch,
                        "tf2onnx": recorders.tf2onnx_dispatch, "tvm-torch": recorders.tvm_torch_dispatch}
        wanted = ("tf2onnx",) if request.get("source") == "tf" else ("torchscript", "dynamo", "tvm-torch")
        for component in wanted:
            if component != "tvm-torch" or importlib.util.find_spec("tvm") is not None:
                seen[component] = stack.enter_context(by_component[component]())
        if lines:
            cov.start()
        try:
            plain(request, blobs, watch)
        finally:
            if lines:
                new = cov.stop()
                cov.save_case(new, str(request.get("case_idx", "")))
    for component, keys in seen.items():
        if keys:
            routes.setdefault(_ROUTE_OF[component], {}).setdefault(component, set()).update(keys)
    emit("reach", {"routes": {r: {c: sorted(k) for c, k in by.items()} for r, by in routes.items()},
                   "new_arcs": sum(len(v) for v in new.values())})

