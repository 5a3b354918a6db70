"""Inductor runs the way users run it: a graph break (here a data-dependent 0-d index) is not a failure.

The graphs are real generator graphs (Gather with a rank-0 index, a spec the generator draws), run through
the real torch>inductor:cpu pipeline code (fuzzer.targets.job). Each test first checks the premise that
the graph really breaks under fullgraph=True, so it cannot pass because torch stopped breaking.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fuzzer.case.files import npz_bytes
from fuzzer.corpus.repro_script import ReproSpec, render_repro
from fuzzer.corpus.source_model import TORCH_SOURCE
from fuzzer.corpus.test_data import data_set_files
from fuzzer.targets.job import JobContext, run_pipeline
from fuzzer.targets.torch_targets import TorchSource
from generators.ir import Graph, Node, TensorType
from generators.values import Values
from oracles.pipeline_id import parse_pipeline

PIPELINE = "torch>inductor:cpu"


REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".work" / "inductor"  # the project's cache folder (as the workers use), warm across runs


@pytest.fixture(autouse=True)
def _inductor_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inductor's cache in the project's work folder, never in the user's /tmp (read at compile time)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(CACHE))
    torch.set_num_threads(1)


def gather_0d(axis: int, index: int, then_relu: bool) -> tuple[Graph, Values]:
    """x[..., i, ...] with i a 0-d int64 graph input; optionally a Relu after it (compiled code past the break)."""
    x = np.linspace(-3.0, 3.0, 24, dtype=np.float32).reshape(2, 3, 4)
    shape = list(x.shape)
    del shape[axis]
    tensors = {"x": TensorType(x.shape, "float32"), "i": TensorType((), "int64"),
               "g": TensorType(tuple(shape), "float32")}
    nodes = [Node("n0", "Gather", ["x", "i"], ["g"], {"axis": axis})]
    out = "g"
    if then_relu:
        tensors["y"] = TensorType(tuple(shape), "float32")
        nodes.append(Node("n1", "Relu", ["g"], ["y"], {}))
        out = "y"
    graph = Graph(tensors, ["x", "i"], [], nodes, [out])
    graph.validate()
    return graph, Values({"x": x, "i": np.array(index, dtype=np.int64)}, {})


def _breaks_under_fullgraph(graph: Graph, values: Values) -> bool:
    torch._dynamo.reset()
    src = TorchSource(graph, values)
    try:
        with torch.no_grad():
            torch.compile(src.module, backend="inductor", fullgraph=True)(*src.args)
    except Exception:  # noqa: BLE001 - any compile error is the break we look for
        return True
    finally:
        torch._dynamo.reset()
    return False


@pytest.mark.parametrize("axis, index, then_relu", [(1, -2, False), (-1, 3, True)])
def test_data_dependent_index_runs_through_inductor(axis: int, index: int, then_relu: bool) -> None:
    graph, values = gather_0d(axis, index, then_relu)
    assert _breaks_under_fullgraph(graph, values), "premise: fullgraph=True must reject this graph"
    events: list[tuple[str, dict[str, Any]]] = []
    ctx = JobContext(graph, values, "torch", lambda kind, header, *rest: events.append((kind, header)), 120.0)
    outcome = run_pipeline(ctx, parse_pipeline(PIPELINE), 0)
    assert outcome.failure is None, outcome.failure
    assert [h["stage"] for k, h in events if k == "stage"] == ["compile", "run"]
    expected = np.take(values.inputs["x"], index, axis=axis)
    if then_relu:
        expected = np.maximum(expected, 0)
    assert outcome.outputs is not None and len(outcome.outputs) == 1
    np.testing.assert_array_equal(outcome.outputs[0], expected)
    np.testing.assert_array_equal(outcome.outputs[0], TorchSource(graph, values).run_eager()[0])


@pytest.mark.slow
def test_repro_script_compiles_like_the_pipeline(tmp_path: Path) -> None:
    """The generated repro.py's inductor step runs the same breaking graph to the expected outputs
    (a control entry: the script must say NOT REPRODUCED because the outputs match, not fail to compile)."""
    graph, values = gather_0d(1, -2, True)
    expected = TorchSource(graph, values).run_eager()
    folder = tmp_path / "entry"
    files = {"graph.json": graph.dumps().encode(), "weights.npz": npz_bytes(values.weights),
             **data_set_files([(n, values.inputs[n]) for n in graph.inputs], list(zip(graph.outputs, expected)))}
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    made = subprocess.run([sys.executable, "-m", "fuzzer.corpus.source_model", "torch", str(folder)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    torch_source = json.loads((folder / TORCH_SOURCE).read_text())
    expect = {"symptom": "wrong_output", "kind": "semantic", "stage": "run", "exc_type": "", "keys": []}
    spec = ReproSpec(parse_pipeline(PIPELINE), "source", expect, list(graph.inputs), list(graph.outputs),
                     [(0.0, 0.0)], "control", 120.0, 8192, torch_source, False)
    script = render_repro(spec)
    assert "fullgraph" not in script
    (folder / "repro.py").write_text(script)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
           "TORCHINDUCTOR_CACHE_DIR": str(CACHE)}
    run = subprocess.run([sys.executable, "repro.py"], cwd=folder, capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 1 and "NOT REPRODUCED" in run.stdout, run.stdout + run.stderr[-2000:]
    assert f"{PIPELINE} matches the expected outputs" in run.stdout, run.stdout
