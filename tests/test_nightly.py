"""`parallax nightly`: bad input refused untouched; real nights into one store and into two stores, where the
exit status says whether new bugs appeared against the previous night."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzer.campaign.store import DB_NAME, Store
from fuzzer.cli import main
from tests.test_campaign import snapshot, tree_bytes

REPO = Path(__file__).resolve().parents[1]
CHEAP = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>onnxref"


# ----- bad input: one line on stderr, exit 2, nothing touched ---------------------------------------------
def _store_with_a_run(out: Path) -> None:
    with Store.create(out, 1, 2, {"pipelines": CHEAP.split(",")}) as st:
        st.end_run(st.start_run("local", 1, {}, "host", False), "max_cases")


@pytest.mark.parametrize("args, what", [
    ([], "no --time"), (["--time", "abc"], "bad --time"), (["--time", "5m", "--engine", "spark"], "bad --engine"),
    (["--time", "5m", "--address", "127.0.0.1:6379"], "--address without ray"),
    (["--time", "5m", "--pipelines", "torch>nonsense"], "bad pipeline"),
    (["--time", "5m", "--previous", "1"], "a run id but no store yet"),
    (["--time", "5m", "--previous", "NOWHERE"], "a baseline that is not a store"),
    (["--time", "5m", "--previous", "7"], "an unknown run id"),
    (["--time", "5m", "--previous", "OUT"], "the baseline is --out itself"),
    (["--time", "5m", "--workers", "0"], "bad --workers"),
])
def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], what: str) -> None:
    out = tmp_path / "out"
    if what in ("an unknown run id", "the baseline is --out itself"):
        _store_with_a_run(out)
    args = [str(out) if a == "OUT" else str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in args]
    before = tree_bytes(out) if out.exists() else None
    pipelines = [] if "--pipelines" in args else ["--pipelines", CHEAP]
    rc = main(["nightly", "--out", str(out), *pipelines, *args])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("parallax: error:"), (what, err)
    assert (tree_bytes(out) if out.exists() else None) == before


def test_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder\n")
    assert main(["nightly", "--time", "5m", "--out", str(out), "--pipelines", CHEAP]) == 2
    assert out.read_text() == "not a folder\n" and len(capsys.readouterr().err.strip().splitlines()) == 1


# ----- real nights ---------------------------------------------------------------------------------------------
def nightly(out: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "fuzzer.cli", "nightly", "--out", str(out), "--pipelines", CHEAP,
                           "--nodes", "4", "--time", "10m", "--quiet", "--repeats", "2", "--workers", "1",
                           "--work-dir", str(work), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def signatures(out: Path, run_id: int | None = None) -> set[str]:
    con = sqlite3.connect(out / DB_NAME)
    try:
        rows = con.execute("SELECT signature, first_run FROM signatures").fetchall()
    finally:
        con.close()
    return {s for s, r in rows if run_id is None or r == run_id}


@pytest.mark.slow
def test_nights(tmp_path: Path) -> None:
    a, b, work = tmp_path / "a", tmp_path / "b", tmp_path / "work"
    # the first night: no previous run, so every bug it found is new (exit 1 exactly when it found one)
    first = nightly(a, work, "--seed", "9", "--max-cases", "2", "--json")
    night1 = json.loads(first.stdout)
    found = signatures(a)
    assert first.returncode == (1 if found else 0), first.stderr
    assert night1["baseline"] is None and {e["signature"] for e in night1["new"]} == found
    assert night1["cases"] == 2 and night1["devices"]["cpu"]["cores"] >= 1
    # the same seed stream into a second store, compared with the first: the same two cases show the same bugs,
    # so nothing is new and the night passes, whatever those bugs are
    again = nightly(b, work, "--seed", "9", "--max-cases", "2", "--previous", str(a), "--json")
    night2 = json.loads(again.stdout)
    assert again.returncode == 0, (again.stderr, night2["new"])
    assert night2["new"] == [] and night2["vanished"] == [] and night2["baseline"] == str(a)
    assert {e["signature"] for e in night2["still"]} == found
    # the next night of store a resumes it (the next case of the stream) and is compared with run 1 by default
    third = nightly(a, work, "--max-cases", "1")
    assert third.returncode == (1 if signatures(a, 2) else 0), third.stderr
    assert "since run 1" in third.stdout and f"report: {a / 'report.html'}" in third.stdout
    assert "<html" in (a / "report.html").read_text().lower()
    state = snapshot(a, swept=True)
    assert sorted(state["cases"]) == [0, 1, 2]  # the stream went on: no case ran twice
    con = sqlite3.connect(a / DB_NAME)
    try:
        assert con.execute("SELECT id, resumed, stop_reason FROM runs").fetchall() == [(1, 0, "max_cases"),
                                                                                      (2, 1, "max_cases")]
    finally:
        con.close()
