"""Derived graphs the oracles need: the float64 twin (to measure rounding noise) and the probe
(every intermediate tensor exposed as an output, to find the first diverging op)."""

from __future__ import annotations

import numpy as np

from generators.ir import Graph, GraphError, Node, TensorType
from generators.values import Values

_WIDEN = {"float16": "float64", "float32": "float64"}


def promote_floats(graph: Graph, values: Values, check: bool = True) -> tuple[Graph, Values] | None:
    """The same graph with every float16/float32 tensor (and cast target) in float64, or None when
    some op's rule refuses float64. Its outputs minus the original's are the graph's own rounding noise.

    `check=False` skips re-validating the specs (a fifth of a fast case's harness time): for a caller that
    runs the twin and treats any failure as "no float64 estimate"."""
    if not any(t.dtype in _WIDEN for t in graph.tensors.values()):
        return None
    tensors = {k: TensorType(t.shape, _WIDEN.get(t.dtype, t.dtype)) for k, t in graph.tensors.items()}
    nodes = [Node(n.name, n.op, list(n.inputs), list(n.outputs),
                  {k: (_WIDEN.get(v, v) if k == "to" and isinstance(v, str) else v) for k, v in n.attrs.items()})
             for n in graph.nodes]
    wide = Graph(tensors, list(graph.inputs), list(graph.weights), nodes, list(graph.outputs))
    if check:
        try:
            wide.validate()
        except GraphError:
            return None
    widen = lambda arrs: {k: a.astype(tensors[k].dtype) for k, a in arrs.items()}
    return wide, Values(widen(values.inputs), widen(values.weights))


def expose_intermediates(graph: Graph) -> Graph:
    """Every node output becomes a graph output, in topological order (the original outputs included)."""
    outs: list[str] = []
    for n in graph.topological_nodes():
        outs.extend(t for t in n.outputs if t not in outs)
    return Graph(dict(graph.tensors), list(graph.inputs), list(graph.weights), list(graph.nodes), outs)


def producer_ops(graph: Graph, outputs: list[str]) -> list[str]:
    """The op kind producing each named tensor ("input"/"weight" for leaves)."""
    prod = graph.producers()
    return [prod[t].op if t in prod else ("input" if t in graph.inputs else "weight") for t in outputs]


def as_float64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) if a.dtype.kind == "f" else a
