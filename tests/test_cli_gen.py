"""`parallax gen` end to end in a subprocess: cases on disk, --stats JSON, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fuzzer.case.files import read_case

ROOT = Path(__file__).resolve().parents[1]


def parallax(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fuzzer.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_gen_writes_a_readable_case(tmp_path: Path) -> None:
    r = parallax("gen", "--seed", "4", "--nodes", "6", "--out", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    graph, values = read_case(tmp_path / "c")
    assert len(graph.nodes) == 6
    assert set(values.inputs) == set(graph.inputs)
    meta = json.loads((tmp_path / "c" / "case.json").read_text())
    assert meta["hash"] == graph.content_hash()
    again = parallax("gen", "--seed", "4", "--nodes", "6", "--out", str(tmp_path / "d"))
    assert again.returncode == 0
    assert (tmp_path / "c" / "graph.json").read_bytes() == (tmp_path / "d" / "graph.json").read_bytes()


def test_gen_stats_json() -> None:
    r = parallax("gen", "--count", "6", "--nodes", "5", "--stats")
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("generated", "valid", "median_ms", "p90_ms", "op_families_seen", "dtypes_seen", "mean_nodes"):
        assert key in stats
    assert stats["generated"] == 6
    assert 0 <= stats["valid"] <= 6


def _one_line_error(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith(("I0000", "E0000", "W0000"))]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never"
    _one_line_error(parallax("gen", "--include", "Add,Nope", "--out", str(out)), "unknown op name(s): Nope")
    _one_line_error(parallax("gen", "--nodes", "0", "--out", str(out)), "must be positive")
    _one_line_error(parallax("gen", "--nodes", "-3", "--out", str(out)), "must be positive")
    assert not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_error(parallax("gen", "--out", str(blocker)), "not a folder")
    _one_line_error(parallax("gen", "--out", str(blocker / "sub")), "not writable")
    assert blocker.read_text() == "x"
