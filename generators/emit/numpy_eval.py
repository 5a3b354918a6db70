"""Graph evaluated with the numpy reference lowerings: the judge in per-op conformance tests."""

from __future__ import annotations

import numpy as np

from generators.ir import Graph
from generators.lower_numpy import LOWER


def run_numpy(graph: Graph, inputs: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    env: dict[str, np.ndarray] = {**inputs, **weights}
    for n in graph.topological_nodes():
        outs = LOWER.call(n.op, [env[t] for t in n.inputs], n.attrs)
        for name, o in zip(n.outputs, outs):
            env[name] = np.asarray(o).astype(graph.tensors[name].dtype, copy=False)
    return [env[t] for t in graph.outputs]
