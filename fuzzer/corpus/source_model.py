"""The source model of an entry in a form that needs no Parallax: run in a child process by `write_entry`.

torch: the aten-level code of `torch.export.export(module, args).graph_module`, a plain function of the
weights and inputs (pre-dispatch aten ops, the same calls every torch pipeline traces), with the
`_assert_tensor_metadata` checks dropped; weights stay in the entry's weights.npz, lifted tensor
constants go to torch_constants.npz.
TF: a SavedModel directory (GraphDef protobuf plus a variables checkpoint, no pickle) of the generated
tf.Module; `tf.saved_model.load(dir).fn` is the same traced function tf2onnx and XLA are given. Emitting
TF code per op would copy the whole TF lowering table into every repro.

A child process because materialising can crash the very library the entry is about (torch.export
segfaulting must not take the campaign down), and it keeps torch and TF out of the caller.

    python -m fuzzer.corpus.source_model torch|tf ENTRY_DIR   ->  ENTRY_DIR/torch_source.json | saved_model/
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fuzzer.case.files import atomic_write, npz_bytes
from fuzzer.corpus.test_data import read_data_set
from generators.ir import Graph

TORCH_SOURCE = "torch_source.json"
TORCH_CONSTANTS = "torch_constants.npz"
SAVED_MODEL = "saved_model"
# Names the exported code may use beyond `torch`, and the import that provides each in repro.py.
KNOWN_GLOBALS = {"inf": "from math import inf", "nan": "from math import nan", "device": "from torch import device",
                 "fx_pytree": "import torch.fx._pytree as fx_pytree", "pytree": "import torch.utils._pytree as pytree",
                 "NoneType": "NoneType = type(None)"}


def _load(entry: Path) -> tuple[Graph, dict[str, np.ndarray], dict[str, np.ndarray]]:
    graph = Graph.loads((entry / "graph.json").read_text())
    inputs, _ = read_data_set(entry)
    with np.load(entry / "weights.npz", allow_pickle=False) as z:
        weights = {k: z[k] for k in z.files}
    return graph, dict(zip(graph.inputs, (a for _, a in inputs))), weights


def torch_source(entry: Path) -> dict[str, Any]:
    """Export the generated module and describe its aten graph: code, placeholders and the imports it needs."""
    import torch

    from fuzzer.targets.torch_targets import TorchSource, pin_threads
    from generators.values import Values

    pin_threads()
    graph, inputs, weights = _load(entry)
    src = TorchSource(graph, Values(inputs, weights))
    ep = src.export_program()
    gm = ep.graph_module
    for node in list(gm.graph.nodes):
        if node.op == "call_function" and node.target is torch.ops.aten._assert_tensor_metadata.default:
            gm.graph.erase_node(node)
    code = gm.graph.python_code(root_module="self").src
    body = code.split("def forward(", 1)[1]
    if re.search(r"\bself\.", body):
        raise RuntimeError("the exported graph reads module attributes (get_attr): not a plain function")
    used = sorted(n for n in KNOWN_GLOBALS if re.search(rf"\b{n}\b", body))
    graph_weight = {f"params.{n}": n for n in graph.weights} | {f"buf_{n}": n for n in graph.weights}
    placeholders: list[dict[str, str]] = []
    constants: dict[str, np.ndarray] = {}
    for spec in ep.graph_signature.input_specs:
        kind = spec.kind.name.lower()
        name = spec.arg.name
        if kind in ("parameter", "buffer"):
            placeholders.append({"name": name, "kind": kind, "array": graph_weight[spec.target]})
        elif kind == "constant_tensor":
            constants[name] = ep.constants[spec.target].detach().numpy()
            placeholders.append({"name": name, "kind": "constant", "array": name})
        elif kind == "user_input":
            placeholders.append({"name": name, "kind": "input", "array": ""})
        else:
            raise RuntimeError(f"exported program has a {kind} input ({name}): not supported in repro.py")
    if constants:
        atomic_write(entry / TORCH_CONSTANTS, npz_bytes(constants))
    lines = body.split("\n", 1)[1]  # the body after "self, p_..., x):"
    return {"placeholders": placeholders, "body": lines.rstrip() + "\n", "imports": [KNOWN_GLOBALS[n] for n in used]}


def tf_saved_model(entry: Path) -> None:
    import tensorflow as tf

    from fuzzer.targets.tf_targets import pin_threads
    from generators.emit.tf_function import TFGraph

    pin_threads()
    graph, _, weights = _load(entry)
    tf.saved_model.save(TFGraph(graph, weights), str(entry / SAVED_MODEL))


def main(argv: list[str]) -> int:
    kind, entry = argv[0], Path(argv[1])
    if kind == "torch":
        atomic_write(entry / TORCH_SOURCE, json.dumps(torch_source(entry), indent=1).encode())
    elif kind == "tf":
        tf_saved_model(entry)
    else:
        raise SystemExit(f"unknown source {kind!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
