"""Fault localisation, fault class and repair, on a real conversion with one injected fault each.

tiny_cnn (the built-in: stem = conv + ReLU6, block = conv + GroupNorm + ReLU, pooled linear head) is
exported here with the TorchScript exporter, exactly as the worker builds it (same seed), then one
fault is injected into the ONNX protobuf. `parallax check tiny_cnn --converted FILE` must name the layer
and the class, and write a repaired model that agrees with the source again; that agreement is checked
here independently, with onnxruntime against the eager torch module on fresh inputs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from fuzzer.cli import main


@pytest.fixture(scope="module")
def source() -> tuple[object, bytes]:
    import torch

    from fuzzer.check.zoo import build_torch

    module = build_torch("tiny_cnn")
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(1, 3, 16, 16),), buf, dynamo=False, input_names=["input_0"])
    return module, buf.getvalue()


def _node(m: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in m.graph.node if n.name == name)


def _set_attr(node: onnx.NodeProto, name: str, value: object) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def perturb_weight(m: onnx.ModelProto) -> None:
    t = next(t for t in m.graph.initializer if t.name == "block.conv.weight")
    a = numpy_helper.to_array(t).copy()
    a[2, 1] += 0.3
    t.CopyFrom(numpy_helper.from_array(a, t.name))


def change_padding(m: onnx.ModelProto) -> None:
    _set_attr(_node(m, "/block/conv/Conv"), "pads", [0, 0, 0, 0])


def change_epsilon(m: onnx.ModelProto) -> None:
    node = next(n for n in m.graph.node if n.op_type == "InstanceNormalization")
    _set_attr(node, "epsilon", 0.5)


def change_clip_bound(m: onnx.ModelProto) -> None:
    clip = next(n for n in m.graph.node if n.op_type == "Clip")
    name = "injected_clip_max"
    m.graph.initializer.append(numpy_helper.from_array(np.asarray(0.25, dtype=np.float32), name))
    clip.input[2] = name


def transpose_input(m: onnx.ModelProto) -> None:
    for n in m.graph.node:
        n.input[:] = ["input_t" if v == "input_0" else v for v in n.input]
    m.graph.node.insert(0, helper.make_node("Transpose", ["input_0"], ["input_t"], perm=[0, 1, 3, 2],
                                            name="injected_transpose"))


def swap_ops(m: onnx.ModelProto) -> None:
    """conv -> norm -> relu becomes conv -> relu -> norm: the block's ReLU moved before its GroupNorm."""
    nodes = list(m.graph.node)
    relu = _node(m, "/block/act/Relu")
    conv_out = _node(m, "/block/conv/Conv").output[0]
    norm_out, relu_out = relu.input[0], relu.output[0]
    for n in nodes:
        if n is not relu:
            n.input[:] = [relu_out if v == conv_out else norm_out if v == relu_out else v for v in n.input]
    relu.input[0] = conv_out
    nodes.remove(relu)
    nodes.insert(next(i for i, n in enumerate(nodes) if n.name == "/block/conv/Conv") + 1, relu)
    del m.graph.node[:]
    m.graph.node.extend(nodes)


CASES: list[tuple[str, Callable[[onnx.ModelProto], None], str, str]] = [
    ("weight", perturb_weight, "block.conv", "parameters"),
    ("padding", change_padding, "block.conv", "hyper-parameters"),
    ("epsilon", change_epsilon, "block.norm", "hyper-parameters"),
    ("clip", change_clip_bound, "stem.1", "hyper-parameters"),
    ("transpose", transpose_input, "stem.0", "input"),
    ("swap", swap_ops, "block.act", "graph"),
]


def _torch_vs_onnx(module: object, model_path: Path, seed: int) -> float:
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(seed).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    got = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"]).run(None, {"input_0": x})[0]
    return float(np.abs(want - got).max())


@pytest.mark.parametrize("case,inject,layer,klass", CASES, ids=[c[0] for c in CASES])
def test_injected_fault_is_localised_classified_and_repaired(
        case: str, inject: Callable[[onnx.ModelProto], None], layer: str, klass: str, source: tuple[object, bytes],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module, clean = source
    model = onnx.load_from_string(clean)
    inject(model)
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / f"{case}.onnx"
    onnx.save(model, str(path))
    assert _torch_vs_onnx(module, path, 7) > 1e-3  # the injection really changes the model

    rc = main(["check", "tiny_cnn", "--converted", str(path), "--json", "--work-dir", str(tmp_path / "work"),
               "--out", str(tmp_path / "out")])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    d = report["diagnoses"]["given"]
    assert d["diverging"] and d["layer"] == layer and d["fault_class"] == klass, (d["layer"], d["transplants"])
    tried = [t["class"] for t in d["transplants"]]
    assert tried[-1] == klass and all(not t.get("removes_divergence") for t in d["transplants"][:-1])
    assert d["original"]["inputs_agreeing"] < d["original"]["inputs"]
    assert d["repaired"]["inputs_agreeing"] == d["repaired"]["inputs"]

    repaired, log = tmp_path / f"{case}.repaired.onnx", tmp_path / f"{case}.repair.log"
    assert d["repaired_model"] == str(repaired) and repaired.is_file()
    assert log.read_text().splitlines() == d["changes"] and d["changes"]
    onnx.checker.check_model(onnx.load(str(repaired)), full_check=True)
    assert _torch_vs_onnx(module, repaired, 11) < 1e-5  # fresh input, independent of check's own judgement


def test_clean_conversion_is_not_diverging(source: tuple[object, bytes], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "clean.onnx"
    path.write_bytes(source[1])
    rc = main(["check", "tiny_cnn", "--converted", str(path), "--json", "--work-dir", str(tmp_path / "work"),
               "--out", str(tmp_path / "out")])
    d = json.loads(capsys.readouterr().out)["diagnoses"]["given"]
    assert rc == 0 and not d["diverging"] and d["layer"] is None and d["fault_class"] is None
    assert all(not lay["diverged"] for lay in d["layers"]) and len(d["layers"]) == 7
    assert not (tmp_path / "clean.repaired.onnx").exists()


def test_dynamo_conversion_is_mapped_through_its_scope_metadata(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from fuzzer.check.zoo import build_torch

    program = torch.onnx.export(build_torch("tiny_cnn"), (torch.zeros(1, 3, 16, 16),), dynamo=True, verbose=False,
                                input_names=["input_0"])
    model = program.model_proto
    change_epsilon(model)
    path = tmp_path / "dynamo_eps.onnx"
    onnx.save(model, str(path))
    rc = main(["check", "tiny_cnn", "--converted", str(path), "--json", "--work-dir", str(tmp_path / "work"),
               "--out", str(tmp_path / "out")])
    d = json.loads(capsys.readouterr().out)["diagnoses"]["given"]
    assert rc == 1 and d["layer"] == "block.norm" and d["fault_class"] == "hyper-parameters"
    assert {lay["module"] for lay in d["layers"]} >= {"stem.0", "block.conv", "block.norm", "fc"}


def test_kruskal_wallis_ranks_the_layer_that_separates_disagreeing_inputs() -> None:
    """x -> a: Relu -> b: Clip -> c: Mul. The converted Clip caps at 1 where the source (a ReLU6) caps at 6:
    only inputs with values above 1 disagree, and only from b on."""
    from fuzzer.check.localise import localise, ranking

    nodes = [helper.make_node("Relu", ["x"], ["ra"], name="/a/Relu"),
             helper.make_node("Clip", ["ra", "lo", "hi"], ["rb"], name="/b/Clip"),
             helper.make_node("Mul", ["rb", "two"], ["y"], name="/c/Mul")]
    inits = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), n) for n, v in
             (("lo", 0.0), ("hi", 1.0), ("two", 2.0))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(0)
    inputs = [[(rng.random(4) * (0.9 if k % 2 else 5.0) + (0 if k % 2 else 1.5)).astype(np.float32)]
              for k in range(10)]
    source = []
    for (x,) in inputs:
        a = np.maximum(x, 0)
        b = np.clip(a, 0, 6)
        source.append({"a": [a], "b": [b], "c": [b * 2]})
    bad = [bool((x > 1).any()) for (x,) in inputs]
    assert bad == [k % 2 == 0 for k in range(10)]
    layers, first = localise(model, source, inputs, bad)
    by_name = {lay.name: lay for lay in layers}
    assert first == "b" and not by_name["a"].diverged and by_name["c"].diverged and not by_name["c"].inputs_agree
    assert by_name["b"].kw_p < 0.01 and by_name["a"].kw_h == 0.0
    assert ranking(layers)[-1]["layer"] == "a"


def test_torchscript_scopes_map_to_module_paths() -> None:
    from fuzzer.check.localise import _scope_path

    assert _scope_path(["layer1", "layer1.0", "conv1"]) == "layer1.0.conv1"
    assert _scope_path(["layer3", "layer3.0", "downsample", "downsample.0"]) == "layer3.0.downsample.0"
    assert _scope_path(["features", "features.0", "features.0.0"]) == "features.0.0"
    assert _scope_path(["block", "norm"]) == "block.norm"
    assert _scope_path(["features", "features.2", "conv", "conv.0", "conv.0.0"]) == "features.2.conv.0.0"


@pytest.mark.slow
def test_resnet18_folded_batchnorm_weight_fault(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The TorchScript exporter folds each BatchNorm into its Conv: the parameter transplant must fold the
    source's BatchNorm too, or a weight fault would look like a graph fault."""
    import torch

    from fuzzer.check.zoo import build_torch

    module = build_torch("resnet18")
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(1, 3, 64, 64),), buf, dynamo=False, input_names=["input_0"])
    model = onnx.load_from_string(buf.getvalue())
    conv = _node(model, "/layer2/layer2.1/conv1/Conv")
    t = next(t for t in model.graph.initializer if t.name == conv.input[1])
    a = numpy_helper.to_array(t).copy()
    a[3] *= 1.5
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    path = tmp_path / "r18.onnx"
    onnx.save(model, str(path))
    rc = main(["check", "resnet18", "--converted", str(path), "--json", "--inputs", "3",
               "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    d = json.loads(capsys.readouterr().out)["diagnoses"]["given"]
    assert rc == 1 and d["layer"] == "layer2.1.conv1" and d["fault_class"] == "parameters"
    assert d["ranking"][0]["layer"] == "layer2.1.conv1"
    assert d["repaired"]["inputs_agreeing"] == 3
    assert {"layer3.0.downsample.0", "layer1.0.relu#1"} <= {lay["name"] for lay in d["layers"]}
