"""Reach: the registries read from the real libraries, the keys one known model reaches in each (exact sets),
the exclusion rules, line/branch coverage that survives a killed worker, and `parallax coverage` on bad input.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fuzzer.reach.linecov import read_arcs
from fuzzer.reach.registries import COMPONENTS, onnx_key, registry
from fuzzer.reach.tally import Tally, graph_chains
from generators.ir import Graph, Node, TensorType

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


# -- the known models --------------------------------------------------------------------------------------
def _torch_model():
    import torch

    class ReluAdd(torch.nn.Module):
        def forward(self, x, y):
            return torch.relu(x) + y

    return ReluAdd().eval(), (torch.ones(2, 3), torch.ones(2, 3))


def _onnx_model_with_branch() -> bytes:
    """Relu, Add, and an If whose branches hold Neg and Abs (subgraph nodes are dispatched too)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    b = helper.make_tensor_value_info("b", TensorProto.BOOL, [])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])
    branch_out = helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 3])
    then_g = helper.make_graph([helper.make_node("Neg", ["s"], ["r"])], "then", [], [branch_out])
    else_g = helper.make_graph([helper.make_node("Abs", ["s"], ["r"])], "else", [], [branch_out])
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Add", ["a", "x"], ["s"]),
             helper.make_node("If", ["b"], ["out"], then_branch=then_g, else_branch=else_g)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x, b], [out]),
                              opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def test_registries_are_read_from_the_libraries():
    """Each registry holds the entry points its library dispatches on, under the keys it looks them up by."""
    expected = {"tvm-torch": "add.Tensor", "tvm-onnx": "Add", "torchscript": "aten::add", "dynamo": "aten::add.Tensor",
                "tf2onnx": "AddV2", "onnxruntime": "ai.onnx::Add", "onnx-reference": "ai.onnx::Add"}
    for component in COMPONENTS:
        reg = registry(component)
        assert expected[component] in reg.keys, component
        assert len(reg.keys) > 100, component
    from tvm.relax.frontend.onnx import onnx_frontend

    assert registry("tvm-onnx").keys == set(onnx_frontend._get_convert_map())
    assert registry("onnx-reference").keys.isdisjoint({"ai.onnx::OpRun", "ai.onnx::OpFunction"})


def test_reach_counts_the_torch_model_exactly():
    """torch.relu(x) + y: TVM's torch frontend looks up relu.default and add.Tensor (static reading of the
    decomposed program and the dispatch recorder agree); TorchScript dispatches aten::relu, aten::add and the
    alpha constant; the dynamo exporter aten::relu and aten::add.Tensor."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    from fuzzer.reach import recorders
    from fuzzer.reach.extract import onnx_nodes, tvm_torch_keys

    module, args = _torch_model()
    program = torch.export.export(module, args)
    assert tvm_torch_keys(program) == {"relu.default", "add.Tensor"}
    with recorders.tvm_torch_dispatch() as seen:
        from_exported_program(program, keep_params_as_input=False)
    assert seen == {"relu.default", "add.Tensor"}
    assert seen <= registry("tvm-torch").keys

    with recorders.torchscript_dispatch() as ts:
        buf = io.BytesIO()
        torch.onnx.export(module, args, buf, dynamo=False)
    assert ts == {"aten::relu", "aten::add", "prim::Constant"}
    assert ts <= registry("torchscript").keys
    assert onnx_nodes(buf.getvalue()) == {("", "Relu"), ("", "Add")}

    with recorders.dynamo_dispatch() as dy:
        program = torch.onnx.export(module, args, dynamo=True, verbose=False)
    assert dy == {"aten::relu", "aten::add.Tensor"}
    assert dy <= registry("dynamo").keys
    assert program.model_proto.opset_import[0].version == registry("dynamo").opset


def test_reach_counts_the_tf_model_exactly():
    """tf.nn.relu(x) + y through tf2onnx: the handler table is asked for the graph's TF op types."""
    import tensorflow as tf
    import tf2onnx

    from fuzzer.reach import recorders

    spec = [tf.TensorSpec([2, 3], tf.float32), tf.TensorSpec([2, 3], tf.float32)]

    @tf.function(input_signature=spec)
    def f(x, y):
        return tf.nn.relu(x) + y

    with recorders.tf2onnx_dispatch() as seen:
        model, _ = tf2onnx.convert.from_function(f, input_signature=spec)
    assert seen == {"Placeholder", "Relu", "AddV2", "Identity"}
    assert seen <= registry("tf2onnx").keys
    assert model.opset_import[0].version == registry("tf2onnx").opset
    assert tf2onnx.tfonnx.tensorflow_onnx_mapping.__name__ == "tensorflow_onnx_mapping"  # the wrapper is gone


def test_reach_counts_the_onnx_model_exactly_for_each_consumer():
    """Subgraph nodes count; TVM's ONNX frontend has no If entry, so If is reported outside its registry."""
    from fuzzer.reach.excluded import registry_info
    from fuzzer.reach.extract import onnx_consumer_keys, onnx_nodes

    keys = onnx_consumer_keys(onnx_nodes(_onnx_model_with_branch()))
    ops = {"Relu", "Add", "If", "Neg", "Abs"}
    assert keys["tvm-onnx"] == ops
    assert keys["onnxruntime"] == keys["onnx-reference"] == {onnx_key("", op) for op in ops}
    tally = Tally()
    tally.add_route("tf2onnx", "ok", keys)
    summary = tally.summary({c: registry_info(c) for c in ("tvm-onnx", "onnxruntime", "onnx-reference")})
    assert summary["components"]["tvm-onnx"]["reached"] == 4
    assert summary["components"]["tvm-onnx"]["outside_registry"] == ["If"]
    for c in ("onnxruntime", "onnx-reference"):
        assert summary["components"][c]["reached"] == 5
        assert summary["components"][c]["outside_registry"] == []


def test_onnxruntime_reach_includes_the_kernels_of_its_fused_graph(tmp_path):
    """Conv + Relu: at its highest level onnxruntime runs kernels (a com.microsoft fusion) the model never
    names; each one it picked is in its kernel registry."""
    from onnx import TensorProto, helper, numpy_helper

    from fuzzer.reach.extract import onnx_nodes, ort_optimised_nodes

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["c"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    fused = ort_optimised_nodes(model, str(tmp_path))
    assert fused != onnx_nodes(model)
    assert any(d.startswith("com.microsoft") for d, _ in fused)
    assert {onnx_key(d, op) for d, op in fused} <= registry("onnxruntime").keys
    assert list(tmp_path.iterdir()) == []


def test_exclusion_rules_name_a_reason_and_keep_reachable_keys():
    from fuzzer.reach.excluded import RULES, excluded

    assert all(r.reason for r in RULES)
    for component in COMPONENTS:
        assert set(excluded(component)) <= registry(component).keys
    tvm = excluded("tvm-torch")
    assert tvm["bernoulli.p"] == "random" and tvm["relu_.default"] == "in-place" and tvm["sym_size.int"] == \
        "symbolic-size"
    # Deterministic at eval (train/dropout_p switch the randomness off) or reached by real programs: kept.
    for kept in ("dropout.default", "scaled_dot_product_attention.default", "_assert_tensor_metadata.default",
                 "getitem", "relu.default"):
        assert kept not in tvm
    assert excluded("tvm-onnx")["Upsample"] == "deprecated" and excluded("tvm-onnx")["FastGelu"] == "not-onnx"
    assert excluded("tf2onnx")["RandomUniform"] == "random" and "Relu" not in excluded("tf2onnx")
    assert excluded("onnxruntime")["ai.onnx.ml::TreeEnsembleClassifier"] == "classical-ml"
    assert excluded("torchscript")["quantized::conv2d"] == "quantized"
    assert "aten::dropout" not in excluded("torchscript")


# -- tally --------------------------------------------------------------------------------------------------
def _chain_graph() -> Graph:
    t = TensorType((2, 3), "float32")
    return Graph({"x": t, "a": t, "b": t, "c": t}, ["x"], [],
                 [Node("n1", "Relu", ["x"], ["a"]), Node("n2", "Neg", ["a"], ["b"]),
                  Node("n3", "Add", ["a", "b"], ["c"])], ["c"])


def test_tally_counts_pairs_sequences_and_keeps_wrong_rules_visible():
    pairs, triples = graph_chains(_chain_graph())
    assert pairs == {"Relu>Neg", "Relu>Add", "Neg>Add"} and triples == {"Relu>Neg>Add"}
    tally = Tally()
    tally.add_graph(_chain_graph())
    tally.add_route("export", "ok", {"tvm-torch": ["a", "b", "zz"]})
    tally.add_route("export", "failed", {"tvm-torch": ["c"]})
    again = Tally()
    again.merge_json(json.loads(json.dumps(tally.to_json())))
    info = {"keys": ["a", "b", "c", "d", "e"], "where": "test", "opset": None, "excluded": {"c": "random", "e": "x"}}
    s = again.component_summary("tvm-torch", info)
    assert (s["reached"], s["denominator"], s["share"]) == (2, 3, round(2 / 3, 4))
    assert s["unreached"] == ["d"] and s["outside_registry"] == ["zz"] and s["excluded_but_reached"] == ["c"]
    assert again.routes["export"] == {"ok": 1, "failed": 1} and again.cases == 1


# -- line and branch coverage -------------------------------------------------------------------------------
_KILLED_WORKER = textwrap.dedent("""
    import io, sys, time
    from pathlib import Path
    import torch
    from fuzzer.reach.linecov import CaseCoverage
    cc = CaseCoverage(Path(sys.argv[1]))
    cc.start()
    torch.onnx.export(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()), (torch.ones(2, 3),),
                      io.BytesIO(), dynamo=False)
    cc.save_case(cc.stop(), "first")
    cc.start()  # the second case is in flight when the kill comes
    print("saved", flush=True)
    time.sleep(120)
""")


def test_a_workers_coverage_survives_a_kill(tmp_path):
    """A real conversion under coverage, saved once; SIGKILL mid-way through the next case. The saved case's
    arcs are all there; a half-written line (as a kill during a write leaves) is skipped."""
    folder = tmp_path / "cov"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([PY, "-c", _KILLED_WORKER, str(folder)], stdout=subprocess.PIPE, env=env, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == b"saved"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    arcs, cases = read_arcs(folder)
    assert cases == 1
    onnx_files = [f for f in arcs if f"{os.sep}torch{os.sep}onnx{os.sep}" in f]
    assert onnx_files and sum(len(arcs[f]) for f in onnx_files) > 500
    [data_file] = list(folder.iterdir())
    with open(data_file, "ab") as f:
        f.write(b'{"case": "torn", "arcs": {"/x.py": [[1, 2]')
    again, cases_again = read_arcs(folder)
    assert cases_again == 1 and again == arcs


@pytest.mark.slow
def test_reach_worker_killed_mid_case_loses_only_that_case(tmp_path):
    """The real reach worker: case one is saved, the worker is SIGKILLed during case two, case three runs in a
    respawned worker; the campaign's coverage holds cases one and three."""
    from fuzzer.reach.runner import HANDLER
    from fuzzer.targets.arrays import pack_dict
    from fuzzer.workers.pool import Limits, Worker
    from fuzzer.workers.workdir import worker_env
    from generators.generate import GenConfig, generate
    from generators.values import find_values

    cov_dir = tmp_path / "arcs"
    graph, _ = generate(1, GenConfig(nodes=4, include=("Relu", "Add", "Neg")))
    values, _ = find_values(graph, 1)
    request = {"op": "reach", "graph": graph.wire(), "routes": ["onnx:torchscript"], "coverage_dir": str(cov_dir),
               "work_dir": str(tmp_path)}
    blobs = {"inputs": pack_dict(values.inputs), "weights": pack_dict(values.weights)}
    with Worker(HANDLER, Limits(stage_timeout_s=120), tmp_path / "logs", worker_env(tmp_path)) as worker:
        assert worker.run(request, blobs).completed
        first, n1 = read_arcs(cov_dir)

        def kill(ev):
            if ev.event == "stage":
                os.kill(worker.pid, signal.SIGKILL)

        assert not worker.run({**request, "label": "killed"}, blobs, kill).completed
        assert read_arcs(cov_dir) == (first, 1)
        assert worker.run(request, blobs).completed
    merged, n3 = read_arcs(cov_dir)
    assert n3 == 2 and len(list(cov_dir.iterdir())) == 2
    assert all(first[f] <= merged[f] for f in first)


def test_campaign_job_records_reach_and_arcs_beside_its_outcomes(tmp_path):
    """The campaign's own case job, wrapped: the outcome events are the plain job's, and one "reach" event
    names the TorchScript exporter's dispatch and the ONNX consumers' keys of the model it emitted."""
    from fuzzer.reach.covered_job import run_job
    from fuzzer.reach.inputs import read_tallies
    from fuzzer.reach.record import append_case, case_line, reach_over_time
    from fuzzer.targets.arrays import pack_dict

    graph = _chain_graph()
    request = {"op": "case", "graph": graph.wire(), "source": "torch", "repeats": 0,
               "pipelines": ["torch>onnx:torchscript>ort:disable:cpu"], "coverage_dir": str(tmp_path / "coverage")}
    blobs = {"inputs": pack_dict({"x": np.ones((2, 3), np.float32)}), "weights": pack_dict({})}
    events: list[tuple[str, dict]] = []
    run_job(request, blobs, lambda event, header=None, b=None: events.append((event, header or {})))
    outcomes = [h for e, h in events if e == "outcome"]
    assert len(outcomes) == 1 and outcomes[0].get("failure") is None
    [reach] = [h for e, h in events if e == "reach"]
    route = reach["routes"]["onnx:torchscript"]
    assert {"aten::relu", "aten::neg", "aten::add"} <= set(route["torchscript"])
    assert route["tvm-onnx"] == ["Add", "Neg", "Relu"] and reach["new_arcs"] > 0
    assert read_arcs(tmp_path / "coverage")[1] == 1
    append_case(tmp_path, case_line(graph, reach))
    tally = read_tallies(tmp_path / "coverage")
    assert tally.cases == 1 and tally.reached("onnxruntime") == {"ai.onnx::Add", "ai.onnx::Neg", "ai.onnx::Relu"}
    info = {"keys": ["ai.onnx::Add", "ai.onnx::Neg", "ai.onnx::Relu", "ai.onnx::Abs"], "where": "", "opset": None,
            "excluded": {"ai.onnx::Neg": "test"}}
    [point] = reach_over_time(tmp_path / "coverage", {"onnxruntime": info})
    assert point["cases"] == 1 and point["onnxruntime"] == 2


# -- parallax coverage ----------------------------------------------------------------------------------------
def _cli(argv: list[str]) -> int:
    from fuzzer.cli.coverage import add_parser
    from fuzzer.cli.errors import UsageError

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["coverage", *argv])
    try:
        return args.run(args)
    except UsageError as e:
        print(f"parallax: error: {e}", file=sys.stderr)
        return 2


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _write_case(folder: Path) -> None:
    from fuzzer.case.files import write_case
    from generators.values import Values

    graph = _chain_graph()
    write_case(folder, graph, Values({"x": np.ones((2, 3), np.float32)}, {}), {"seed": 0})


@pytest.mark.parametrize("make", ["empty", "corrupt_graph", "corrupt_inputs", "bad_store", "store_without_cases",
                                  "a_file"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, make):
    target = tmp_path / "in"
    target.mkdir()
    if make == "corrupt_graph":
        _write_case(target / "case_0")
        (target / "case_0" / "graph.json").write_text('{"format": 1, "tensors": ')
    elif make == "corrupt_inputs":
        _write_case(target / "case_0")
        (target / "case_0" / "inputs.npz").write_bytes(b"not a zip")
    elif make == "bad_store":
        (target / "parallax.db").write_bytes(b"not sqlite at all")
    elif make == "store_without_cases":
        from fuzzer.campaign.store import Store

        Store.create(target, seed=0, nodes=4, config={}).close()
    elif make == "a_file":
        target.rmdir()
        target.write_text("x")
    before = _snapshot(target) if target.is_dir() else target.read_bytes()
    work = tmp_path / "work"
    assert _cli([str(target), "--work-dir", str(work), "--html", str(tmp_path / "html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parallax: error: ") and err.count("\n") == 1
    assert (_snapshot(target) if target.is_dir() else target.read_bytes()) == before
    assert not work.exists() and not (tmp_path / "html").exists()


def test_inputs_read_a_corpus_and_what_a_campaign_recorded(tmp_path):
    from fuzzer.campaign.store import Store
    from fuzzer.reach.inputs import load
    from fuzzer.reach.record import append_case, case_line, coverage_folder

    corpus = load(REPO / "corpus")
    assert corpus.kind == "corpus" and corpus.cases and all(g.nodes for _, g, _ in corpus.cases)
    Store.create(tmp_path, seed=0, nodes=4, config={}).close()
    append_case(tmp_path, case_line(_chain_graph(), {"routes": {"tf2onnx": {"tf2onnx": ["Relu", "Neg"]}}}))
    (coverage_folder(tmp_path) / "arcs-1-1.jsonl").write_text('{"arcs": {"/a.py": [[1, 2]]}}\n{"arcs": {"/a.py"')
    recorded = load(tmp_path)
    assert recorded.kind == "recorded" and recorded.cases == []
    assert recorded.recorded.reached("tf2onnx") == {"Relu", "Neg"} and recorded.recorded.cases == 1
    assert recorded.arcs == {"/a.py": {(1, 2)}}


def test_unknown_route_is_refused(tmp_path, capsys):
    _write_case(tmp_path / "case_0")
    assert _cli([str(tmp_path), "--routes", "onnx:nope"]) == 2
    assert "unknown route" in capsys.readouterr().err


@pytest.mark.slow
def test_coverage_command_replays_generated_cases(tmp_path, capsys):
    """One generated case, TorchScript route, with line coverage: the exporter and its consumers are reached,
    torch.onnx lines are covered, and the case folder is untouched."""
    _write_case(tmp_path / "cases" / "case_0")
    before = _snapshot(tmp_path / "cases")
    rc = _cli([str(tmp_path / "cases"), "--routes", "onnx:torchscript", "--json", "--work-dir", str(tmp_path / "w")])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"] == 1 and report["routes"]["onnx:torchscript"] == {"ok": 1}
    comps = report["components"]
    assert {"aten::relu", "aten::neg", "aten::add"} <= set(registry("torchscript").keys)
    assert comps["torchscript"]["reached"] >= 3 and comps["tvm-onnx"]["reached"] == 3
    assert report["lines"]["torch.onnx"]["lines_covered"] > 0
    assert report["lines"]["tvm.relax.frontend"]["lines_covered"] > 0
    assert report["graphs"]["op_pairs"] == 3
    assert _snapshot(tmp_path / "cases") == before
    assert list((tmp_path / "w").iterdir()) == []
