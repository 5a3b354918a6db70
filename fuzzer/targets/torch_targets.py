"""The PyTorch source: eager reference, both ONNX exporters, torch.export, inductor, eager on CUDA.

Imported only inside a worker process (it imports torch).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch

from generators.emit.torch_module import GraphModule, as_tensor
from generators.ir import Graph
from generators.values import Values


def pin_threads() -> None:
    """One thread per worker: workers run side by side on few cores, and timings must not fight."""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran in this process
        pass


class TorchSource:
    """One graph materialised as a torch module with its inputs, reused by every torch pipeline of a job."""

    def __init__(self, graph: Graph, values: Values) -> None:
        self.graph = graph
        self.module = GraphModule(graph, values.weights).eval()
        self.args = tuple(as_tensor(values.inputs[n]) for n in graph.inputs)

    def run_eager(self, device: str = "cpu") -> list[np.ndarray]:
        mod = self.module if device == "cpu" else GraphModule(self.graph, _weights(self.module)).eval().to(device)
        args = tuple(a.to(device) for a in self.args)
        with torch.no_grad():
            outs = mod(*args)
        if device != "cpu":
            torch.cuda.synchronize()
        return [o.detach().cpu().numpy() for o in outs]

    def export_onnx(self, exporter: str) -> bytes:
        """`exporter` is "torchscript" (dynamo=False) or "dynamo" (the torch.export-based exporter)."""
        names = {"input_names": list(self.graph.inputs), "output_names": list(self.graph.outputs)}
        if exporter == "torchscript":
            buf = io.BytesIO()
            torch.onnx.export(self.module, self.args, buf, dynamo=False, **names)
            return buf.getvalue()
        program = torch.onnx.export(self.module, self.args, dynamo=True, verbose=False, **names)
        return program.model_proto.SerializeToString()

    def export_program(self) -> Any:
        return torch.export.export(self.module, self.args)

    def compile_inductor(self, device: str) -> Any:
        """torch.compile's first call compiles; the returned callable runs the compiled graph.

        Compiled the way users compile (no fullgraph=True): a graph break, e.g. on a data-dependent 0-d
        index, makes dynamo split the graph and run the piece in eager, which is a correct result, not a
        failure. fullgraph=True would turn every such break into an error filed against inductor."""
        torch._dynamo.reset()
        mod = self.module if device == "cpu" else GraphModule(self.graph, _weights(self.module)).eval().to(device)
        args = tuple(a.to(device) for a in self.args)
        compiled = torch.compile(mod, backend="inductor")
        with torch.no_grad():
            compiled(*args)
        return lambda: _run(compiled, args, device)


def _run(fn: Any, args: tuple[torch.Tensor, ...], device: str) -> list[np.ndarray]:
    with torch.no_grad():
        outs = fn(*args)
    if device != "cpu":
        torch.cuda.synchronize()
    return [o.detach().cpu().numpy() for o in outs]


def _weights(module: GraphModule) -> dict[str, np.ndarray]:
    return {n: module.weight(n).detach().cpu().numpy() for n in module.graph.weights}


def cuda_available() -> bool:
    return torch.cuda.is_available()
