"""A system under test that dies mid-case: the pipeline in flight gets the right failure kind, blamed on
its stage and component; the worker is respawned; the case's other pipelines and the next case complete."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuzzer.case.runner import CaseRunner, RunSettings
from fuzzer.targets.registry import resolve
from fuzzer.workers.pool import Limits, Worker
from fuzzer.workers.workdir import worker_env
from generators.ir import Graph, Node, TensorType
from generators.values import Values

PIPES = ["torch>onnx:torchscript>ort:disable:cpu", "torch>onnx:torchscript>ort:all:cpu",
         "torch>onnx:torchscript>onnxref"]


def add_relu_case(k: float) -> tuple[Graph, Values]:
    t = TensorType((2, 3), "float32")
    g = Graph({"x": t, "w": t, "y": t, "z": t}, ["x"], ["w"],
              [Node("n0", "Add", ["x", "w"], ["y"]), Node("n1", "Relu", ["y"], ["z"])], ["z"])
    g.validate()
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3) * k
    return g, Values({"x": x}, {"w": np.full((2, 3), 0.25, np.float32)})


@pytest.mark.slow
@pytest.mark.parametrize("fault, kind, symptom", [
    ("segfault", "segfault", "crash"), ("abort", "abort", "crash"), ("hang", "timeout", "hang"), ("oom", "oom", "oom"),
])
def test_fault_in_one_stage_is_attributed_and_the_rest_completes(tmp_path: Path, fault, kind, symptom) -> None:
    env = dict(worker_env(tmp_path), FAULT_INJECTION_SPEC=f"{PIPES[1]}|compile|{fault}|{tmp_path / 'fired'}")
    limits = Limits(stage_timeout_s=20, memory_mb=1500)
    with Worker("tests.fault_pipeline:run_job", limits, tmp_path / "logs", env) as worker:
        runner = CaseRunner(worker, RunSettings(repeats=2, stage_timeout_s=20))
        r = runner.run_case(*add_relu_case(1.0), resolve(PIPES))
        assert (tmp_path / "fired").exists()
        crashed = r.outcomes[PIPES[1]]
        assert crashed.failure is not None and crashed.failure.kind == kind and crashed.failure.stage == "compile"
        for p in (PIPES[0], PIPES[2]):
            assert r.outcomes[p].ok and r.outcomes[p].outputs is not None, r.outcomes[p]
        assert worker.restarts == 1
        [finding] = r.verdict.findings
        assert (finding.symptom, finding.kind, finding.stage) == (symptom, kind, "compile")
        assert finding.pipelines == [PIPES[1]]
        # ORT without optimisations compiled this model: the optimiser at level "all" is blamed
        assert finding.component == "onnxruntime optimizer (all)"
        nxt = runner.run_case(*add_relu_case(2.0), resolve(PIPES))
        assert all(o.ok for o in nxt.outcomes.values()) and not nxt.verdict.findings
        assert worker.restarts == 1
