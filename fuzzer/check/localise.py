"""Which source layer a converted ONNX model first goes wrong in.

Mapping: both torch exporters record the module each node came from. The TorchScript exporter names
nodes by scope ("/layer1/layer1.0/conv1/Conv": each segment an attribute name or an already-dotted
path); the dynamo exporter stores the scopes in the node's metadata ("pkg.torch.onnx.name_scopes").
A module called twice in forward (torchvision's shared ReLU) gets "relu_1" for its second call.
A layer is the deepest module a group of nodes belongs to, containers aside (their own nodes, like a
ResNet block's residual Add, are part of their computation only); its ONNX value is the one its nodes
produce for nodes outside it (or for the graph's outputs). A fault in a container's own nodes is named at
the next layer, and the graph transplant, which works on enclosing modules, covers it.

Intermediates: those values are added to the graph's outputs and read with onnxruntime with
optimisations off; the source side comes from forward hooks. A layer's delta on one input is
max |source - onnx| / max(1, max |source|) (inf when the shapes differ); it diverges when that
exceeds LAYER_RTOL on the inputs whose final output disagrees.

Ranking: Kruskal-Wallis (scipy) on each layer's deltas over disagreeing vs agreeing inputs; a layer whose
deltas separate the two groups is where the inputs start to differ. The layer named at fault is the
first (in the converted graph's order) that diverges while every value feeding it agrees.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

LAYER_RTOL = 1e-3
_SUFFIX = re.compile(r"(.+)_(\d+)")


@dataclass
class Layer:
    name: str  # module path, "#k" appended for the k-th call of a reused module
    module: str
    call: int
    nodes: list[int] = field(default_factory=list)
    value: str = ""
    deltas: list[float] = field(default_factory=list)
    diverged: bool = False
    inputs_agree: bool = True
    kw_h: float | None = None
    kw_p: float | None = None
    gain: float = 0.0  # median delta minus the largest median delta among the layers feeding it
    compared: str = ""  # the source module whose output the value is compared with (see _fold_targets)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "compared_with": self.compared, "onnx_value": self.value,
                "nodes": len(self.nodes),
                "deltas": [d if math.isfinite(d) else "inf" for d in self.deltas], "diverged": self.diverged,
                "inputs_agree": self.inputs_agree, "kw_h": self.kw_h, "kw_p": self.kw_p,
                "gain": self.gain}


def _scope_path(segments: list[str]) -> str:
    """Join TorchScript scope segments. Each is a dotted path relative to the current path or to one of its
    ancestors: "conv1" under "layer1.0", "layer1.0" under "layer1", "downsample.0" under
    "layer3.0.downsample", "conv.0.0" under "features.2.conv.0" (MobileNetV2's nested Sequentials)."""
    path = ""
    for seg in segments:
        if not seg:
            continue
        parts = path.split(".") if path else []
        for i in range(len(parts)):
            if seg.startswith(".".join(parts[i:]) + "."):
                path = ".".join(parts[:i] + [seg])
                break
        else:
            path = f"{path}.{seg}" if path else seg
    return path


def _split_call(path: str, modules: set[str]) -> tuple[str, int] | None:
    if path in modules:
        return path, 0
    m = _SUFFIX.fullmatch(path)
    if m and m.group(1) in modules:
        return m.group(1), int(m.group(2))
    return None


def node_module(node: onnx.NodeProto, modules: set[str]) -> tuple[str, int] | None:
    """(module path, call index) of the deepest known module the node came from, or None."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [str(s) for s in ast.literal_eval(prop.value)]
            except (ValueError, SyntaxError):
                break
            for path in reversed(scopes[:-1]):  # the last entry names the op itself
                found = _split_call(path, modules)
                if found:
                    return found
            return None
    if node.name.startswith("/"):
        segments = node.name.split("/")[1:-1]
        for cut in range(len(segments), 0, -1):
            found = _split_call(_scope_path(segments[:cut]), modules)
            if found:
                return found
    return None


def find_layers(model: onnx.ModelProto, modules: set[str]) -> list[Layer]:
    """Layers in the order the converted graph computes them, each with its output value."""
    g = model.graph
    layers: dict[tuple[str, int], Layer] = {}
    for i, node in enumerate(g.node):
        found = node_module(node, modules)
        if found is None:
            continue
        key = found
        if key not in layers:
            layers[key] = Layer(found[0] + (f"#{found[1]}" if found[1] else ""), found[0], found[1])
        layers[key].nodes.append(i)
    # A container's own nodes (the residual Add in a ResNet block) are only part of its computation: its
    # hooked output is its last child's. They stay unmapped; the walk in `_feeding_layers` passes through them.
    owners = {key[0] for key in layers}
    for key in [k for k in layers if any(m.startswith(k[0] + ".") for m in owners)]:
        del layers[key]
    graph_outputs = {o.name for o in g.output}
    out = []
    for layer in layers.values():
        mine = set(layer.nodes)
        produced = [(i, v) for i in layer.nodes for v in g.node[i].output if v]
        used_outside = {v for j, n in enumerate(g.node) if j not in mine for v in n.input}
        leaving = [(i, v) for i, v in produced if v in used_outside or v in graph_outputs]
        leaving = [(i, v) for i, v in leaving if g.node[i].op_type != "Constant"]
        if leaving:
            layer.value = max(leaving)[1]
            out.append(layer)
    producer = {v: i for i, n in enumerate(g.node) for v in n.output}
    return sorted(out, key=lambda lay: producer[lay.value])


def with_outputs(model: onnx.ModelProto, values: list[str]) -> onnx.ModelProto:
    """A copy whose graph also outputs `values` (types from shape inference, float where unknown)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(m)
        types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    except Exception:  # noqa: BLE001 - inference is only a hint here
        types = {}
    have = {o.name for o in m.graph.output}
    for v in values:
        if v not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(v, types.get(v, onnx.TensorProto.FLOAT), None))
            have.add(v)
    return m


def read_values(model: onnx.ModelProto, values: list[str], inputs: list[list[np.ndarray]]) -> list[dict[str, Any]]:
    """The named values for each input set, by onnxruntime with graph optimisations off."""
    from fuzzer.targets import onnx_targets

    m = with_outputs(model, values)
    names = [o.name for o in m.graph.output]
    feeds = input_names(model)
    session = onnx_targets.ort_session(m.SerializeToString(), "disable", "cpu")
    return [dict(zip(names, session(dict(zip(feeds, x)), feeds))) for x in inputs]


def input_names(model: onnx.ModelProto) -> list[str]:
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def delta(src: np.ndarray, got: np.ndarray) -> float:
    if src.shape != got.shape:
        return float("inf")
    a, b = src.astype(np.float64), got.astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return 0.0 if np.array_equal(a, b, equal_nan=True) else float("inf")
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(a).max()))) if a.size else 0.0


def localise(model: onnx.ModelProto, source_outputs: list[dict[str, list[np.ndarray]]],
             inputs: list[list[np.ndarray]], bad: list[bool],
             first_args: dict[str, np.ndarray] | None = None) -> tuple[list[Layer], str | None]:
    """`first_args`: each module's first positional input on input 0, to recognise folded modules."""
    """Layers with deltas, divergence and Kruskal-Wallis statistics; and the layer at fault (None if none)."""
    from scipy import stats

    modules = set(source_outputs[0]) if source_outputs else set()
    layers = [lay for lay in find_layers(model, modules)
              if len(source_outputs[0].get(lay.module, [])) > lay.call]
    if source_outputs and first_args is not None:
        _fold_targets(layers, source_outputs[0], first_args)
    for lay in layers:
        lay.compared = lay.compared or lay.module
    onnx_values = read_values(model, [lay.value for lay in layers], inputs)
    watch = [k for k, b in enumerate(bad) if b] or list(range(len(inputs)))
    for lay in layers:
        call = lay.call if lay.compared == lay.module else 0
        lay.deltas = [delta(src[lay.compared][call], vals[lay.value])
                      for src, vals in zip(source_outputs, onnx_values)]
        lay.diverged = any(lay.deltas[k] > LAYER_RTOL for k in watch)
        bad_d = [d for d, b in zip(lay.deltas, bad) if b]
        good_d = [d for d, b in zip(lay.deltas, bad) if not b]
        if bad_d and good_d:
            try:
                res = stats.kruskal(_capped(bad_d), _capped(good_d))
                lay.kw_h, lay.kw_p = float(res.statistic), float(res.pvalue)
            except ValueError:
                lay.kw_h = lay.kw_p = math.nan
            if math.isnan(lay.kw_h) or math.isnan(lay.kw_p):  # every delta identical: nothing separates the groups
                lay.kw_h, lay.kw_p = 0.0, 1.0
    by_value = {lay.value: lay for lay in layers}
    g = model.graph
    graph_inputs = set(input_names(model))
    first = None
    for lay in layers:
        feeding = _feeding_layers(g, lay, by_value, graph_inputs)
        lay.inputs_agree = all(not f.diverged for f in feeding)
        lay.gain = _median(lay.deltas) - max([_median(f.deltas) for f in feeding] + [0.0])
        if first is None and lay.diverged and lay.inputs_agree:
            first = lay.name
    return layers, first


def _fold_targets(layers: list[Layer], outputs: dict[str, list[np.ndarray]], first_args: dict[str, np.ndarray]) -> None:
    """Which source output each layer's ONNX value is compared with: its own, or, when the leaf modules that
    consume it next have no node in the converted graph (a BatchNorm the exporter folded into the Conv, a
    Dropout or Identity dropped), the last of that chain. A module is in the chain only if its input is the
    previous one's output, exactly. `outputs` is in the order the modules' first calls ended."""
    order = list(outputs)
    mapped = {lay.module for lay in layers}
    leaves = {m for m in order if not any(o.startswith(m + ".") for o in order)}
    for lay in layers:
        lay.compared = lay.module
        if lay.module not in order or lay.call:
            continue
        i = order.index(lay.module) + 1
        while i < len(order) and order[i] in leaves and order[i] not in mapped:
            arg, out = first_args.get(order[i]), outputs[lay.compared][0]
            if arg is None or arg.shape != out.shape or not np.array_equal(arg, out):
                break
            lay.compared = order[i]
            i += 1


def _capped(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else 1e300 for v in values]


def _feeding_layers(g: onnx.GraphProto, layer: Layer, by_value: dict[str, Layer],
                    graph_inputs: set[str]) -> list[Layer]:
    """The mapped layers whose values reach this layer's nodes from outside it, through unmapped nodes."""
    producers = {v: i for i, n in enumerate(g.node) for v in n.output}
    mine = set(layer.nodes)
    seen: set[str] = set()
    stack = [v for i in layer.nodes for v in g.node[i].input if v and producers.get(v) not in mine]
    found: list[Layer] = []
    while stack:
        v = stack.pop()
        if v in seen or v in graph_inputs:
            continue
        seen.add(v)
        if v in by_value and by_value[v] is not layer:
            found.append(by_value[v])
            continue
        if v in producers:
            stack.extend(x for x in g.node[producers[v]].input if x)
    return found


def _median(values: list[float]) -> float:
    return float(np.median(_capped(values))) if values else 0.0


def ranking(layers: list[Layer]) -> list[dict[str, Any]]:
    """Layers by how strongly their deltas separate disagreeing from agreeing inputs (Kruskal-Wallis H).
    When every input disagrees there is no agreeing group: then by how much delta a layer adds to the
    delta of the layers feeding it (downstream layers inherit a divergence; the faulty one creates it)."""
    if any(lay.kw_h is not None for lay in layers):
        order = sorted(layers, key=lambda lay: (-(lay.kw_h or 0.0), lay.kw_p if lay.kw_p is not None else 1.0))
        return [{"layer": lay.name, "kw_h": lay.kw_h, "kw_p": lay.kw_p} for lay in order[:10]]
    order = sorted(layers, key=lambda lay: -lay.gain)
    return [{"layer": lay.name, "delta_gain": lay.gain} for lay in order[:10]]
