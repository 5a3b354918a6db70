"""Registry keys read statically from a case's artefacts, the way each component dispatches on them.

* an ExportedProgram: TVM's `from_exported_program` first runs `run_decompositions()` (the program is dense),
  then looks up `node.target.__name__` of every call_function node, nested graph modules (cond branches)
  included;
* an ONNX model: TVM's ONNX frontend looks up `op_type` (any domain), onnxruntime and the reference evaluator
  (domain, op_type); nodes in subgraphs (If/Loop/Scan bodies) and in model-local functions count, as both
  runtimes inline functions before they pick kernels.
"""

from __future__ import annotations

from typing import Any

from fuzzer.reach.registries import onnx_key


def tvm_torch_keys(program: Any, decompose: bool = True) -> set[str]:
    """The convert-map keys TVM's torch frontend looks up for this ExportedProgram."""
    import torch

    if decompose:
        program = program.run_decompositions()
    keys: set[str] = set()
    for module in program.graph_module.modules():
        if isinstance(module, torch.fx.GraphModule):
            keys.update(n.target.__name__ for n in module.graph.nodes if n.op == "call_function")
    return keys


def onnx_nodes(model: Any) -> set[tuple[str, str]]:
    """(domain, op_type) of every node of a ModelProto or its serialised bytes ("" for the default domain)."""
    import onnx

    if isinstance(model, bytes):
        model = onnx.load_from_string(model)
    found: set[tuple[str, str]] = set()
    graphs = [model.graph] + [f for f in model.functions]
    while graphs:
        g = graphs.pop()
        for node in g.node:
            found.add(("" if node.domain == "ai.onnx" else node.domain, node.op_type))
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    graphs.extend(attr.graphs)
    return found


def onnx_consumer_keys(nodes: set[tuple[str, str]]) -> dict[str, set[str]]:
    """What each ONNX consumer dispatches on for these nodes."""
    return {"tvm-onnx": {op for _, op in nodes}, "onnxruntime": {onnx_key(d, op) for d, op in nodes},
            "onnx-reference": {onnx_key(d, op) for d, op in nodes}}


def ort_optimised_nodes(model_bytes: bytes, work_dir: str) -> set[tuple[str, str]]:
    """The nodes onnxruntime actually picks kernels for at its highest level: fusions add contrib ops
    (com.microsoft, NCHWc) that the input model never names. The optimised graph is written to a file
    under `work_dir` and read back."""
    import os
    import tempfile

    import onnxruntime as ort

    fd, path = tempfile.mkstemp(suffix=".onnx", dir=work_dir)
    os.close(fd)
    try:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = path
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        with open(path, "rb") as f:
            return onnx_nodes(f.read())
    finally:
        os.unlink(path)
