"""`parallax fuzz`: bad input refused untouched, skip rules, and real campaigns that survive Ctrl-C and kill -9."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzzer.campaign.scheduler import Scheduler
from fuzzer.campaign.store import DB_NAME, FINDINGS_DIR, Store
from fuzzer.cli import main
from fuzzer.cli.fuzz import parse_duration
from generators.ir import Graph, Node, TensorType
from oracles.pipeline_id import parse_pipeline
from tests.test_store import SIG_A, case, corrupt

REPO = Path(__file__).resolve().parents[1]
CHEAP = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>onnxref,tf>tf2onnx>ort:disable:cpu"
TORCH_ONLY = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>onnxref"  # no TF: faster worker start-up


# ----- pieces -------------------------------------------------------------------------------------------
def test_durations() -> None:
    assert [parse_duration(t) for t in ("90s", "5m", "2h", "1d", "45", "1.5m")] == [90, 300, 7200, 86400, 45, 90]
    for bad in ("abc", "0", "-5m", "5x", ""):
        with pytest.raises(Exception, match="duration"):
            parse_duration(bad)


def graph_of(*ops: str) -> Graph:
    tensors = {"x": TensorType((4,), "float32")}
    nodes, prev = [], "x"
    for i, op in enumerate(ops):
        tensors[f"t{i}"] = TensorType((4,), "float32")
        nodes.append(Node(f"n{i}", op, [prev], [f"t{i}"]))
        prev = f"t{i}"
    return Graph(tensors, ["x"], [], nodes, [prev])


def crash(sig: str, pipelines: list[str], message: str = "", symptom: str = "crash") -> dict:
    return {"signature": sig, "symptom": symptom, "component": "onnxruntime", "pipelines": pipelines,
            "message": message, "first_op": ""}


def test_scheduler_skips_an_op_after_repeated_crashes() -> None:
    ort, ref = "tf>tf2onnx>ort:disable:cpu", "tf>tf2onnx>onnxref"
    sch = Scheduler([parse_pipeline(ort), parse_pipeline(ref)], min_graphs=3)
    graphs = [graph_of("Roll", "Neg"), graph_of("Abs", "Roll"), graph_of("Roll", "Exp", "Neg")]
    assert sch.observe(0, graphs[0], crash("S", [ort])) == []
    assert sch.observe(1, graphs[1], crash("S", [ort])) == []
    assert sch.observe(1, graphs[1], crash("S", [ort])) == []  # the same graph again does not count twice
    rules = sch.observe(2, graphs[2], crash("S", [ort]))
    assert [(r.pipeline, r.op) for r in rules] == [(ort, "Roll")]
    run, skipped = sch.plan(graph_of("Exp", "Roll"))
    assert [p.name for p in run] == [ref] and list(skipped) == [ort]
    assert [p.name for p in sch.plan(graph_of("Exp"))[0]] == [ort, ref]


def test_scheduler_prefers_the_op_the_message_names_and_ignores_mismatches() -> None:
    ort = "tf>tf2onnx>ort:disable:cpu"
    sch = Scheduler([parse_pipeline(ort)], min_graphs=2)
    msg = "Fail: Non-zero status code returned while running Softplus node"
    assert sch.observe(0, graph_of("Softplus", "Abs"), crash("T", [ort], msg)) == []
    assert [r.op for r in sch.observe(1, graph_of("Abs", "Softplus"), crash("T", [ort], msg))] == ["Softplus"]
    for i in range(3):
        assert sch.observe(i, graph_of("Neg"), crash("M", [ort], symptom="wrong_output")) == []


# ----- bad input: one line, exit 2, nothing touched ---------------------------------------------------------
def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["fuzz", *args])
    err = capsys.readouterr().err
    return rc, err


@pytest.mark.parametrize("args", [["--time", "abc"], ["--workers", "0"], ["--time", "0"],
                                  ["--pipelines", "torch>nonsense"], ["--max-cases", "-1"]])
def test_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    rc, err = run_cli([*args, "--out", str(tmp_path / "out")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("parallax: error:")
    assert not (tmp_path / "out").exists()


def _store_with_a_case(out: Path) -> None:
    with Store.create(out, 1, 2, {"pipelines": CHEAP.split(",")}) as st:
        st.record_case(1, case(0, SIG_A))


@pytest.mark.parametrize("what", ["file", "not_sqlite", "wrong_version", "corrupt", "exists_no_resume",
                                  "resume_nothing"])
def test_bad_out(tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str) -> None:
    out = tmp_path / "out"
    extra: list[str] = []
    if what == "file":
        out.write_text("a file, not a folder\n")
    elif what == "not_sqlite":
        out.mkdir()
        (out / DB_NAME).write_bytes(b"{}\n" * 5000)
    elif what == "resume_nothing":
        out.mkdir()
        extra = ["--resume"]
    else:
        _store_with_a_case(out)
        if what == "wrong_version":
            con = sqlite3.connect(out / DB_NAME)
            con.execute("PRAGMA user_version = 2")
            con.close()
        elif what == "corrupt":
            corrupt(out / DB_NAME)
            extra = ["--resume"]
    before = tree_bytes(out) if out.is_dir() else out.read_bytes()
    rc, err = run_cli(["--out", str(out), "--pipelines", CHEAP, "--max-cases", "1", *extra], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    if what == "exists_no_resume":
        assert "--resume" in err
    assert (tree_bytes(out) if out.is_dir() else out.read_bytes()) == before


# ----- real campaigns ---------------------------------------------------------------------------------------
def fuzz(out: Path, *args: str, pipelines: str = CHEAP) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "fuzzer.cli", "fuzz", "--out", str(out), "--pipelines", pipelines,
                             "--nodes", "5", "--quiet", "--work-dir", str(out.parent / "work"), *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def snapshot(out: Path, swept: bool) -> dict:
    """The store's state, checking every invariant that must hold after a kill at any moment."""
    con = sqlite3.connect(out / DB_NAME)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        cases = {i for (i,) in con.execute("SELECT idx FROM cases")}
        rows = con.execute("SELECT signature, case_idx, dir FROM findings").fetchall()
        sigs = dict(con.execute("SELECT signature, count FROM signatures").fetchall())
        examples = dict(con.execute("SELECT signature, examples FROM signatures").fetchall())
        next_case = con.execute("SELECT next_case FROM campaign").fetchone()[0]
    finally:
        con.close()
    dirs = {d for _, _, d in rows if d}
    for d in dirs:
        assert {"graph.json", "inputs.npz", "weights.npz", "case.json", "finding.json"} <= {
            p.name for p in (out / d).iterdir()}, d
    on_disk = {str(p.relative_to(out)) for p in (out / FINDINGS_DIR).glob("*/*") if not p.parent.name.startswith(".")}
    for extra in on_disk - dirs:  # only the case in flight at the kill may have left folders, until the sweep
        assert not swept and int(Path(extra).name) not in cases, extra
    assert len({(s, c) for s, c, _ in rows}) == len(rows)  # no finding twice
    assert all(c in cases for _, c, _ in rows)
    assert all(i in cases for i in range(next_case))
    for sig, n in sigs.items():
        assert n == sum(s == sig for s, _, _ in rows) and examples[sig] == sum(s == sig and d is not None
                                                                               for s, _, d in rows)
    return {"cases": cases, "findings": len(rows), "sigs": sigs}


def monotonic(before: dict, after: dict) -> None:
    assert before["cases"] <= after["cases"] and before["findings"] <= after["findings"]
    assert all(after["sigs"].get(s, 0) >= n for s, n in before["sigs"].items())


@pytest.mark.slow
def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = fuzz(out, "--time", "10m", "--workers", "2", "--seed", "3")
    events = out / "events.jsonl"
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and p.poll() is None:
        if events.exists() and '"event": "case"' in events.read_text():
            break
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=150)
    assert p.returncode == 0, stderr
    assert "parallax report" in stdout and "stopped: interrupted" in stdout
    con = sqlite3.connect(out / DB_NAME)
    runs = con.execute("SELECT ended, stop_reason FROM runs").fetchall()
    con.close()
    assert len(runs) == 1 and runs[0][0] is not None and runs[0][1] == "interrupted"
    state = snapshot(out, swept=True)
    assert state["cases"]
    log = [json.loads(x) for x in events.read_text().splitlines()]
    assert log[0]["event"] == "run_start" and log[-1]["event"] == "run_end" and log[-1]["reason"] == "interrupted"
    # the selection is printed first, and recorded with every left-out pipeline's reason
    assert stdout.startswith(f"pipelines: running {len(CHEAP.split(','))}: ")
    left = dict(map(tuple, log[0]["left_out"]))
    assert set(left) and set(left).isdisjoint(CHEAP.split(",")) and all(left.values())


def case_events(out: Path) -> int:
    path = out / "events.jsonl"
    return path.read_text().count('"event": "case"') if path.exists() else 0


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path: Path) -> None:
    """Two kills at random moments of start-up, ten at random moments after the killed run stored a case."""
    out = tmp_path / "out"
    p = fuzz(out, "--time", "20s", "--workers", "1", "--seed", "11", pipelines=TORCH_ONLY)
    _, stderr = p.communicate(timeout=180)
    assert p.returncode == 0, stderr
    state = snapshot(out, swept=True)
    rng = random.Random(2024)
    mid_run = 0  # kills after the killed run had stored a case
    for k in range(12):
        seen = case_events(out)
        p = fuzz(out, "--resume", "--time", "5m", "--workers", "1", pipelines=TORCH_ONLY)
        if k < 2:
            time.sleep(rng.uniform(0.5, 6.0))
        else:
            deadline = time.monotonic() + 90
            while case_events(out) == seen and time.monotonic() < deadline and p.poll() is None:
                time.sleep(0.1)
            time.sleep(rng.uniform(0.0, 3.0))
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate(timeout=60)
        after = snapshot(out, swept=False)
        monotonic(state, after)
        mid_run += len(after["cases"]) > len(state["cases"])
        Store.open(out).close()  # what the next --resume does first: sweep
        state = snapshot(out, swept=True)
    assert mid_run >= 8
    p = fuzz(out, "--resume", "--max-cases", "2", "--workers", "1", pipelines=TORCH_ONLY)
    _, stderr = p.communicate(timeout=180)
    assert p.returncode == 0, stderr
    final = snapshot(out, swept=True)
    monotonic(state, final)
    assert len(final["cases"]) >= len(state["cases"]) + 2 and final["findings"] > 0
    con = sqlite3.connect(out / DB_NAME)
    assert 2 <= con.execute("SELECT count(*) FROM runs").fetchone()[0] <= 14  # a kill may precede the run row
    assert con.execute("SELECT stop_reason FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0] == "max_cases"
    con.close()


def test_resume_keeps_the_stored_config_and_says_so(tmp_path: Path) -> None:
    import argparse

    from fuzzer.cli.fuzz import _open_store

    out = tmp_path / "out"
    _store_with_a_case(out)
    args = argparse.Namespace(out=str(out), resume=True, nodes=7, seed=None, pipelines=("torch>onnx:dynamo>onnxref",))
    store, selection, notes = _open_store(args)
    store.close()
    assert [p.name for p in selection.run] == CHEAP.split(",")
    assert any(n.startswith("--nodes ignored") for n in notes) and any(n.startswith("--pipelines") for n in notes)
