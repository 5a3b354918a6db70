"""A campaign reduces its new bugs in the background: real pipelines, a real reducer, its own worker."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from generators.ir import Graph

REPO = Path(__file__).resolve().parents[1]
PIPELINES = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>onnxref,torch>onnx:torchscript>ort:disable:cpu"


@pytest.mark.slow
def test_campaign_reduces_new_signatures_in_the_background(tmp_path: Path) -> None:
    out = tmp_path / "crashes"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "fuzzer.cli", "fuzz", "--time", "75s", "--workers", "1",
                           "--nodes", "8", "--seed", "5", "--reduce-budget", "20", "--pipelines", PIPELINES,
                           "--out", str(out), "--quiet", "--work-dir", str(tmp_path / "work")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "background reduction:" in proc.stdout
    con = sqlite3.connect(out / "parallax.db")
    rows = con.execute("SELECT signature, reduce_state, reduced_dir, smallest_dir FROM signatures").fetchall()
    assert rows
    assert not [r for r in rows if r[1] == "running"], "a clean stop puts the reduction in flight back in the queue"
    done = [r for r in rows if r[1] == "done"]
    assert done, f"no signature was reduced in 75 s: {[r[1] for r in rows]}"
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    reduced_events = {e["signature"] for e in events if e["event"] == "reduced" and e["state"] == "done"}
    for sig, _, reduced_dir, smallest_dir in done:
        folder = out / reduced_dir
        reduced = Graph.loads((folder / "graph.json").read_text())
        original = Graph.loads((out / smallest_dir / "graph.json").read_text())
        assert len(reduced.nodes) <= len(original.nodes)
        assert json.loads((folder / "finding.json").read_text())["signature"] == sig  # never another bug
        assert json.loads((folder / "reduce.json").read_text())["nodes_after"] == len(reduced.nodes)
        assert sig in reduced_events
    assert not list((out / "reduced").glob(".tmp-*"))
