"""Is a materialised graph valid? It runs in eager torch AND eager TF, every output has the
IR's shape and dtype, and every float output is finite."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.ir import Graph
from generators.values import Values


@dataclass
class EagerResult:
    ok: bool
    framework: str = ""  # the first framework that failed
    reason: str = ""


def check_outputs(graph: Graph, outs: list[np.ndarray]) -> str:
    """'' when outputs match the IR's types and are finite, else why not."""
    if len(outs) != len(graph.outputs):
        return f"{len(outs)} outputs, IR has {len(graph.outputs)}"
    for name, o in zip(graph.outputs, outs):
        o = np.asarray(o)
        t = graph.tensors[name]
        if tuple(o.shape) != t.shape or str(o.dtype) != t.dtype:
            return f"output {name}: {o.dtype}{list(o.shape)} but IR says {t.dtype}{list(t.shape)}"
        if o.dtype.kind == "f" and not np.isfinite(o).all():
            return f"output {name}: non-finite values"
    return ""


def eager_check(graph: Graph, values: Values) -> EagerResult:
    from generators.emit.tf_function import run_tf
    from generators.emit.torch_module import run_torch

    for fw, run in (("torch", run_torch), ("tf", run_tf)):
        try:
            outs = run(graph, values.inputs, values.weights)
        except Exception as e:  # noqa: BLE001 - any framework error makes the graph invalid
            return EagerResult(False, fw, f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
        why = check_outputs(graph, outs)
        if why:
            return EagerResult(False, fw, why)
    return EagerResult(True)
