"""Unsupported is not a bug: a clean "not supported" error is a capability gap, counted apart from
findings, and fed back so the pipelines it covers skip graphs containing the op that causes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuzzer.case.gap_book import GapBook
from fuzzer.case.runner import CaseRunner, RunSettings
from fuzzer.targets.registry import resolve
from fuzzer.workers.pool import Limits, Worker
from fuzzer.workers.workdir import worker_env
from generators.ir import Graph, Node, TensorType
from generators.values import Values

TS = ["torch>onnx:torchscript>ort:all:cpu", "torch>onnx:torchscript>onnxref"]
DYNAMO = "torch>onnx:dynamo>ort:all:cpu"


def unary_case(op: str, shape: tuple[int, ...]) -> tuple[Graph, Values]:
    t = TensorType(shape, "float32")
    g = Graph({"x": t, "y": t}, ["x"], [], [Node("n0", op, ["x"], ["y"])], ["y"])
    g.validate()
    return g, Values({"x": np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)}, {})


@pytest.mark.slow
def test_unsupported_op_is_a_gap_then_skipped(tmp_path: Path) -> None:
    book = GapBook()
    with Worker("fuzzer.targets.job:run_job", Limits(), tmp_path / "logs", worker_env(tmp_path)) as worker:
        runner = CaseRunner(worker, RunSettings(repeats=2), gaps=book)
        # torch 2.13's TorchScript exporter has no symbolic for aten::expm1 at opset 20
        first = runner.run_case(*unary_case("Expm1", (2, 3)), resolve(TS + [DYNAMO]))
        assert not first.verdict.findings, [f.message for f in first.verdict.findings]
        [gap] = first.verdict.gaps
        assert gap.component == "torch.onnx (torchscript)" and "expm1" in gap.op
        assert sorted(gap.pipelines) == sorted(TS)
        assert first.outcomes[DYNAMO].ok  # the dynamo exporter decomposes it
        [entry] = book.entries.values()
        assert entry.culprit() == ("Expm1", "float32")

        second = runner.run_case(*unary_case("Expm1", (4, 1, 5)), resolve(TS + [DYNAMO]))
        for p in TS:
            assert "known capability gap" in second.outcomes[p].skipped and "Expm1" in second.outcomes[p].skipped
        assert second.outcomes[DYNAMO].ok and not second.verdict.gaps

        other = runner.run_case(*unary_case("Tanh", (2, 3)), resolve(TS))
        assert all(o.ok for o in other.outcomes.values())
