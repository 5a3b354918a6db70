"""Transplants from the source into a converted ONNX model, one fault class each, in the order tried:

* input: the source's input layout and dims (a Transpose fed straight from a graph input is bypassed;
  graph input dims are set to the source's);
* parameters: the source layer's weights copied into the initializers of the matched nodes (matched
  by name, else by shape; a Gemm weight may be stored transposed);
* hyper-parameters: the source layer's pads, strides, dilations, groups, kernel shape, epsilon, clip
  bounds and slopes written into the matched nodes' attributes (or their constant inputs);
* graph: the sub-structure of the smallest enclosing source module with one input and one output,
  exported alone from the source and spliced in place of the converted nodes.

Each returns (new model, changes) or None when it has nothing to change. Pure ONNX protobuf edits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from fuzzer.check.localise import Layer, input_names

Result = tuple[onnx.ModelProto, list[str]] | None
NORMS = ("BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization")


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m


# -- input ----------------------------------------------------------------------------------------------
def transplant_input(model: onnx.ModelProto, source_shapes: list[tuple[int, ...]]) -> Result:
    m = _copy(model)
    g = m.graph
    changes: list[str] = []
    names = input_names(m)
    by_name = {v.name: v for v in g.input}
    for name, shape in zip(names, source_shapes):
        dims = by_name[name].type.tensor_type.shape.dim
        now = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if len(now) == len(shape) and any(a is not None and a != b for a, b in zip(now, shape)):
            for d, b in zip(dims, shape):
                d.Clear()
                d.dim_value = int(b)
            changes.append(f"input {name}: dims {now} -> {list(shape)} (the source's)")
    for node in list(g.node):
        if node.op_type == "Transpose" and node.input and node.input[0] in names:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm == sorted(perm or []):
                continue
            _rewire(g, node.output[0], node.input[0])
            g.node.remove(node)
            changes.append(f"removed Transpose {node.name or '(unnamed)'} perm={perm} on input {node.input[0]}: "
                           "the source takes this input in its own layout")
    return (m, changes) if changes else None


def _rewire(g: onnx.GraphProto, old: str, new: str) -> None:
    for n in g.node:
        for i, v in enumerate(n.input):
            if v == old:
                n.input[i] = new
    for o in g.output:
        if o.name == old:
            o.name = new


# -- parameters -----------------------------------------------------------------------------------------
def _const_inputs(g: onnx.GraphProto) -> tuple[dict[str, onnx.TensorProto], dict[str, onnx.NodeProto]]:
    inits = {t.name: t for t in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant" and n.output}
    return inits, consts


def _const_value(name: str, inits: dict[str, onnx.TensorProto], consts: dict[str, onnx.NodeProto]) -> np.ndarray | None:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    if name in consts:
        for a in consts[name].attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
    return None


def _set_const(name: str, value: np.ndarray, inits: dict[str, onnx.TensorProto],
               consts: dict[str, onnx.NodeProto]) -> None:
    if name in inits:
        inits[name].CopyFrom(numpy_helper.from_array(value.astype(numpy_helper.to_array(inits[name]).dtype), name))
        return
    for a in consts[name].attribute:
        if a.name == "value":
            old = numpy_helper.to_array(a.t)
            a.t.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=old.dtype).reshape(old.shape)))


def transplant_parameters(model: onnx.ModelProto, layer: Layer, params: dict[str, np.ndarray]) -> Result:
    m = _copy(model)
    g = m.graph
    inits, consts = _const_inputs(g)
    changes: list[str] = []
    used: set[str] = set()
    for i in layer.nodes:
        node = g.node[i]
        for name in node.input:
            cur = _const_value(name, inits, consts) if name not in used else None
            if cur is None or cur.dtype.kind != "f":
                continue
            match = _match_param(name, cur, layer.module, params, node)
            if match is None:
                continue
            pname, value = match
            used.add(name)
            if np.array_equal(value.astype(cur.dtype), cur):
                continue
            _set_const(name, value, inits, consts)
            changes.append(f"{node.op_type} {node.name}: {name} <- source {layer.module}.{pname} "
                           f"(max change {float(np.abs(value - cur).max()):.3g})")
    return (m, changes) if changes else None


def _match_param(name: str, cur: np.ndarray, module: str, params: dict[str, np.ndarray],
                 node: onnx.NodeProto) -> tuple[str, np.ndarray] | None:
    for pname, value in params.items():
        if name in (f"{module}.{pname}", pname) and value.shape == cur.shape:
            return pname, value
    same = [(p, v) for p, v in params.items() if v.shape == cur.shape]
    if len(same) == 1:
        return same[0]
    if node.op_type in ("Gemm", "MatMul"):
        flipped = [(p, v.T) for p, v in params.items() if v.ndim == 2 and v.T.shape == cur.shape]
        if len(flipped) == 1:
            return flipped[0]
    return None


# -- hyper-parameters -------------------------------------------------------------------------------------
def _attr(node: onnx.NodeProto, name: str) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None


def _set_attr(node: onnx.NodeProto, name: str, value: Any) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _ints(value: Any, rank: int) -> list[int] | None:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return [int(value)] * rank
    if isinstance(value, list | tuple) and all(isinstance(v, int | np.integer) for v in value):
        return [int(v) for v in value]
    return None


def _wanted(node: onnx.NodeProto, hyper: dict[str, Any]) -> dict[str, Any]:
    """Attribute values the source layer implies for this node."""
    want: dict[str, Any] = {}
    op = node.op_type
    if op in ("Conv", "ConvTranspose", "MaxPool", "AveragePool"):
        ks = _attr(node, "kernel_shape")
        rank = len(ks) if ks else len(_ints(hyper.get("kernel_size"), 2) or [0, 0])
        pad = _ints(hyper.get("padding"), rank)
        if pad is not None and len(pad) == rank:
            want["pads"] = pad + pad
        for key, attr in (("stride", "strides"), ("dilation", "dilations"), ("kernel_size", "kernel_shape")):
            v = _ints(hyper.get(key), rank)
            if v is not None and len(v) == rank and (key != "dilation" or op != "AveragePool"):
                want[attr] = v
        if op in ("Conv", "ConvTranspose") and isinstance(hyper.get("groups"), int):
            want["group"] = int(hyper["groups"])
        if op in ("MaxPool", "AveragePool") and "ceil_mode" in hyper:
            want["ceil_mode"] = int(bool(hyper["ceil_mode"]))
    elif op in NORMS and isinstance(hyper.get("eps"), float):
        want["epsilon"] = float(hyper["eps"])
    elif op == "LeakyRelu" and "negative_slope" in hyper:
        want["alpha"] = float(hyper["negative_slope"])
    elif op in ("Elu", "Celu") and "alpha" in hyper:
        want["alpha"] = float(hyper["alpha"])
    return want


def _differs(now: Any, want: Any) -> bool:
    if now is None:
        return True
    if isinstance(want, float):
        return abs(float(now) - want) > 1e-6 * max(abs(want), 1e-30)
    return list(now) != list(want) if isinstance(want, list) else now != want


def transplant_hyper(model: onnx.ModelProto, layer: Layer, hyper: dict[str, Any]) -> Result:
    m = _copy(model)
    g = m.graph
    inits, consts = _const_inputs(g)
    changes: list[str] = []
    for i in layer.nodes:
        node = g.node[i]
        for name, want in _wanted(node, hyper).items():
            now = _attr(node, name)
            default_ok = now is None and name in ("dilations", "strides") and set(want) == {1}
            if _differs(now, want) and not default_ok and not (now is None and name == "pads" and set(want) == {0}):
                _set_attr(node, name, want)
                changes.append(f"{node.op_type} {node.name}: {name} {now} -> {want} (source {layer.module})")
        if node.op_type == "Clip" and "min_val" in hyper:
            for pos, key in ((1, "min_val"), (2, "max_val")):
                if len(node.input) > pos and node.input[pos]:
                    cur = _const_value(node.input[pos], inits, consts)
                    want = float(hyper[key])
                    if cur is not None and abs(float(cur.reshape(-1)[0]) - want) > 1e-6:
                        _set_const(node.input[pos], np.asarray(want), inits, consts)
                        changes.append(f"Clip {node.name}: {key[:3]} {float(cur.reshape(-1)[0]):g} -> {want:g} "
                                       f"(source {layer.module})")
    return (m, changes) if changes else None


# -- graph ------------------------------------------------------------------------------------------------
def region(model: onnx.ModelProto, module: str, modules: set[str]) -> list[int]:
    from fuzzer.check.localise import node_module

    out = []
    for i, node in enumerate(model.graph.node):
        found = node_module(node, modules)
        if found and (found[0] == module or found[0].startswith(module + ".")):
            out.append(i)
    return out


def boundary(model: onnx.ModelProto, nodes: list[int]) -> tuple[list[str], list[str]]:
    """(values fed into the region from outside, values it produces for the outside), constants aside."""
    g = model.graph
    mine = set(nodes)
    inits = {t.name for t in g.initializer}
    produced = {v: i for i in nodes for v in g.node[i].output}
    const_out = {v for i, n in enumerate(g.node) if n.op_type == "Constant" for v in n.output}
    ins: list[str] = []
    for i in nodes:
        for v in g.node[i].input:
            if v and v not in produced and v not in inits and v not in const_out and v not in ins:
                ins.append(v)
    outside = {v for j, n in enumerate(g.node) if j not in mine for v in n.input} | {o.name for o in g.output}
    outs = [v for v in produced if v in outside and g.node[produced[v]].op_type != "Constant"]
    return ins, outs


def splice(model: onnx.ModelProto, nodes: list[int], sub_bytes: bytes, prefix: str) -> Result:
    """Replace the region `nodes` by the sub-model (one input, one output), names prefixed."""
    ins, outs = boundary(model, nodes)
    sub = onnx.load_from_string(sub_bytes)
    sub_ins = input_names(sub)
    if len(ins) != 1 or len(outs) != 1 or len(sub_ins) != 1 or len(sub.graph.output) != 1:
        return None
    m = _copy(model)
    g = m.graph
    sg = sub.graph
    rename = {sub_ins[0]: ins[0], sg.output[0].name: outs[0]}

    def nm(v: str) -> str:
        return rename.get(v, f"{prefix}/{v}") if v else v
    new_nodes = []
    for n in sg.node:
        c = onnx.NodeProto()
        c.CopyFrom(n)
        c.name = f"{prefix}/{n.name}"
        c.input[:] = [nm(v) for v in n.input]
        c.output[:] = [nm(v) for v in n.output]
        new_nodes.append(c)
    for t in sg.initializer:
        c = onnx.TensorProto()
        c.CopyFrom(t)
        c.name = nm(t.name)
        g.initializer.append(c)
    keep_consts = {i for i in nodes if g.node[i].op_type == "Constant"
                   and any(v in boundary_consumers(g, nodes) for v in g.node[i].output)}
    removed = [i for i in nodes if i not in keep_consts]
    at = min(removed)
    kept = [n for i, n in enumerate(g.node) if i not in set(removed)]
    insert_at = sum(1 for i in range(at) if i not in set(removed))
    del g.node[:]
    g.node.extend(kept[:insert_at] + new_nodes + kept[insert_at:])
    return m, [f"replaced {len(removed)} converted node(s) between {ins[0]} and {outs[0]} by {len(new_nodes)} "
               f"node(s) exported from the source module {prefix.split('/', 1)[1]}"]


def boundary_consumers(g: onnx.GraphProto, nodes: list[int]) -> set[str]:
    mine = set(nodes)
    return {v for j, n in enumerate(g.node) if j not in mine for v in n.input}


def graph_candidates(model: onnx.ModelProto, layer: Layer, modules: set[str],
                     export: Callable[[str], bytes | None]) -> list[tuple[str, Result]]:
    """For the layer's module and each enclosing module (the root aside), the spliced re-export."""
    parts = layer.module.split(".")
    out = []
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        nodes = region(model, module, modules)
        if not nodes:
            continue
        sub = export(module)
        if sub is None:
            continue
        out.append((module, splice(model, nodes, sub, f"transplant/{module}")))
    return out
