"""The campaign store: dedup, the K-examples cap, crash leftovers swept on open, bad databases refused untouched."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from fuzzer.campaign.store import (
    DB_NAME,
    FINDINGS_DIR,
    CaseRecord,
    EventLog,
    FindingRecord,
    Store,
    StoreError,
    check_out_folder,
    op_chains,
    sig12,
)
from generators.ir import Graph, Node, TensorType
from generators.values import Values

SIG_A = "crash|onnxruntime|run|exception|Fail|0123456789abcdef"
SIG_B = "mismatch|tvm|run|Conv|semantic"


def small_graph(n: int = 2) -> Graph:
    """x -> Relu -> Neg -> Relu ... (n nodes)."""
    tensors = {"x": TensorType((2, 3), "float32")}
    nodes = []
    prev = "x"
    for i in range(n):
        out = f"t{i}"
        tensors[out] = TensorType((2, 3), "float32")
        nodes.append(Node(f"n{i}", "Relu" if i % 2 == 0 else "Neg", [prev], [out]))
        prev = out
    return Graph(tensors=tensors, inputs=["x"], weights=[], nodes=nodes, outputs=[prev])


def values() -> Values:
    return Values({"x": np.arange(6, dtype=np.float32).reshape(2, 3)}, {})


def finding(sig: str, symptom: str = "crash") -> FindingRecord:
    return FindingRecord({"signature": sig, "symptom": symptom, "stage": "run", "location": "codegen/runtime",
                          "component": "onnxruntime", "pipelines": ["torch>onnx:torchscript>ort:all:cpu"],
                          "kind": "exception", "message": "Fail: boom", "why": "", "first_op": "", "culprit": "",
                          "detail": {"x": np.float32(1.5)}},
                         {"model.onnx_torchscript.onnx": b"not really onnx"})


def case(idx: int, *sigs: str, nodes: int = 2) -> CaseRecord:
    return CaseRecord(idx, 100 + idx, "judged", 0.5, small_graph(nodes), values(),
                      ["torch>onnx:torchscript>ort:all:cpu", "torch>onnx:torchscript>onnxref"],
                      [finding(s) for s in sigs], extra={"versions": {"onnx": "x"}})


def new_store(tmp_path: Path, examples: int = 5) -> Store:
    return Store.create(tmp_path / "out", seed=100, nodes=2, config={"pipelines": []}, examples=examples)


def folders(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in (out / FINDINGS_DIR).glob("*/*")}


def test_same_signature_twice_is_one_bug_counted_twice(tmp_path: Path) -> None:
    with new_store(tmp_path) as st:
        first = st.record_case(1, case(0, SIG_A))
        second = st.record_case(1, case(1, SIG_A, nodes=1))
        assert [f.new for f in first + second] == [True, False]
        rows = st.con.execute("SELECT count, examples, smallest_nodes, reduce_state FROM signatures").fetchall()
        assert rows == [(2, 2, 1, "queued")]
        assert st.con.execute("SELECT new, dir FROM findings ORDER BY id").fetchall() == [
            (1, f"findings/{sig12(SIG_A)}/0"), (0, f"findings/{sig12(SIG_A)}/1")]
        assert st.queued_signatures() == [SIG_A]
        ex = st.out / f"findings/{sig12(SIG_A)}/0"
        assert {p.name for p in ex.iterdir()} == {"graph.json", "inputs.npz", "weights.npz", "case.json",
                                                  "finding.json", "model.onnx_torchscript.onnx"}
        info = json.loads((ex / "finding.json").read_text())
        assert info["signature"] == SIG_A and info["case_idx"] == 0 and info["seed"] == 100
        assert info["versions"] == {"onnx": "x"} and info["detail"] == {"x": 1.5}
        assert st.totals() == {"judged": 2, "cases": 2, "findings": 2, "bugs": 1}


def test_examples_are_capped_at_k(tmp_path: Path) -> None:
    with new_store(tmp_path, examples=2) as st:
        for i in range(4):
            st.record_case(1, case(i, SIG_A, SIG_B))
        assert st.con.execute("SELECT signature, count, examples FROM signatures ORDER BY signature").fetchall() == [
            (SIG_A, 4, 2), (SIG_B, 4, 2)]
        dirs = [d for (d,) in st.con.execute("SELECT dir FROM findings ORDER BY case_idx, signature")]
        assert sum(d is not None for d in dirs) == 4 and dirs[4:] == [None] * 4
        assert folders(st.out) == {d for d in dirs if d}


def test_open_sweeps_what_a_kill_left_behind(tmp_path: Path) -> None:
    st = new_store(tmp_path)
    st.record_case(1, case(0, SIG_A))
    out = st.out
    st.close()
    orphan = out / FINDINGS_DIR / sig12(SIG_B) / "7"
    orphan.mkdir(parents=True)
    (orphan / "graph.json").write_text("{}")
    tmp = out / FINDINGS_DIR / ".tmp-0123"
    tmp.mkdir()
    (tmp / "inputs.npz").write_bytes(b"half")
    with Store.open(out) as st:
        assert not orphan.exists() and not orphan.parent.exists() and not tmp.exists()
        assert folders(out) == {f"findings/{sig12(SIG_A)}/0"}
        assert st.next_case == 1 and st.is_done(0)


def test_next_case_is_the_first_index_not_stored(tmp_path: Path) -> None:
    with new_store(tmp_path) as st:
        st.record_case(1, case(0))
        st.record_case(1, case(2))
        assert st.campaign().next_case == 1
        st.record_case(1, case(1))
        assert st.campaign().next_case == 3
        with pytest.raises(ValueError):
            st.record_case(1, case(1))
        invalid = CaseRecord(3, 103, "invalid", 0.1, error="value search gave up")
        st.record_case(1, invalid)
        assert st.con.execute("SELECT status, nodes, error FROM cases WHERE idx = 3").fetchone() == (
            "invalid", None, "value search gave up")


def test_coverage_and_op_chains(tmp_path: Path) -> None:
    g = small_graph(3)
    assert op_chains(g) == {"Relu>Neg", "Neg>Relu", "Relu>Neg>Relu"}
    with new_store(tmp_path) as st:
        st.record_case(1, case(0, nodes=3))
        st.record_case(1, case(1, nodes=3))
        cov = dict(((op, p), n) for op, p, n in st.con.execute("SELECT op, pipeline, cases FROM coverage"))
        assert cov[("Relu", "torch>onnx:torchscript>onnxref")] == 2 and len(cov) == 4
        assert dict(st.con.execute("SELECT seq, count FROM opseq").fetchall()) == {
            "Relu>Neg": 2, "Neg>Relu": 2, "Relu>Neg>Relu": 2}


def test_store_exists_and_lock(tmp_path: Path) -> None:
    st = new_store(tmp_path)
    with pytest.raises(StoreError, match="another campaign"):
        Store.open(st.out)
    st.close()
    with pytest.raises(StoreError, match="--resume"):
        Store.create(st.out, 1, 2, {})
    with pytest.raises(StoreError, match="no campaign store"):
        Store.open(tmp_path / "elsewhere")


def corrupt(db: Path) -> None:
    """Overwrite the b-tree page header of the cases table's root page: a damaged file that still opens."""
    con = sqlite3.connect(db)
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'cases'").fetchone()[0]
    con.close()
    raw = bytearray(db.read_bytes())
    raw[(root - 1) * page_size: (root - 1) * page_size + 12] = b"\xff" * 12
    db.write_bytes(bytes(raw))


def _bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["not_sqlite", "wrong_version", "corrupt_page"])
def test_bad_database_is_refused_untouched(tmp_path: Path, damage: str) -> None:
    out = tmp_path / "out"
    if damage == "not_sqlite":
        out.mkdir()
        (out / DB_NAME).write_bytes(b"hello, not a database\n" * 100)
    else:
        st = new_store(tmp_path)
        for i in range(30):
            st.record_case(1, case(i, SIG_A if i % 2 else SIG_B))
        st.close()
        if damage == "wrong_version":
            con = sqlite3.connect(out / DB_NAME)
            con.execute("PRAGMA user_version = 7")
            con.close()
        else:
            corrupt(out / DB_NAME)
    before = _bytes(out)
    with pytest.raises(StoreError, match="not a Parallax store"):
        check_out_folder(out)
    with pytest.raises(StoreError, match="not a Parallax store"):
        Store.open(out)
    assert _bytes(out) == before


def test_out_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a folder"):
        check_out_folder(f)


def test_event_log_drops_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "case"}\n{"event": "ca')
    log = EventLog(path)
    log.emit("run_start", run_id=2)
    log.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["case", "run_start"] and lines[1]["run_id"] == 2


def test_one_case_with_two_findings_of_one_signature_is_one_finding(tmp_path: Path) -> None:
    rec = case(0, SIG_A, SIG_A)
    rec.findings[1].finding["pipelines"] = ["tf>tf2onnx>ort:all:cpu"]
    with new_store(tmp_path) as st:
        [stored] = st.record_case(1, rec)
        assert stored.pipelines == ["torch>onnx:torchscript>ort:all:cpu", "tf>tf2onnx>ort:all:cpu"]
        assert st.con.execute("SELECT findings FROM cases").fetchone() == (1,)
        assert st.totals()["findings"] == 1
