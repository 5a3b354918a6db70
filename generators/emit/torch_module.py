"""Graph -> torch.nn.Module. Weights are Parameters (floats) or buffers (ints, bools)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from generators.ir import Graph
from generators.lower_torch import LOWER
from generators.lowering import LoweringTable


class GraphModule(torch.nn.Module):
    """Runs the graph's nodes in topological order; traceable by torch.export and dynamo."""

    def __init__(self, graph: Graph, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.graph = graph
        self.order = graph.topological_nodes()
        self.params = torch.nn.ParameterDict()
        for name in graph.weights:
            t = as_tensor(weights[name])
            if t.is_floating_point():
                self.params[name] = torch.nn.Parameter(t, requires_grad=False)
            else:
                self.register_buffer(f"buf_{name}", t)

    def weight(self, name: str) -> torch.Tensor:
        if name in self.params:
            return self.params[name]
        return getattr(self, f"buf_{name}")

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env = run_nodes(self.graph, self.order, dict(zip(self.graph.inputs, inputs)), self.weight)
        return tuple(env[t] for t in self.graph.outputs)


def run_nodes(graph: Graph, order: list, env: dict[str, torch.Tensor], weight: Callable[[str], torch.Tensor],
              table: LoweringTable = LOWER) -> dict[str, torch.Tensor]:
    """Every tensor of the graph by name: leaves plus each node's outputs (value search reads them all)."""
    env = dict(env)
    for name in graph.weights:
        env.setdefault(name, weight(name))
    for n in order:
        outs = table.call(n.op, [env[t] for t in n.inputs], n.attrs)
        env.update(zip(n.outputs, outs))
    return env


def as_tensor(a: np.ndarray) -> torch.Tensor:
    """A copy that keeps rank 0 (np.ascontiguousarray would make a 0-d array 1-d)."""
    return torch.from_numpy(np.array(a, copy=True))


def to_torch(graph: Graph, weights: dict[str, np.ndarray]) -> GraphModule:
    return GraphModule(graph, weights)


def run_torch(graph: Graph, inputs: dict[str, np.ndarray], weights: dict[str, np.ndarray],
              device: str = "cpu") -> list[np.ndarray]:
    """Eager run; returns numpy outputs in graph.outputs order."""
    mod = to_torch(graph, weights).to(device)
    args = [as_tensor(inputs[n]).to(device) for n in graph.inputs]
    with torch.no_grad():
        outs = mod(*args)
    return [o.detach().cpu().numpy() for o in outs]
