"""`parallax report`: every distinct bug once with its count in every format, a self-contained HTML file, the
--since view (run id and other store), and bad input refused with exit 2 and the store's bytes unchanged.

The stores are written by the real writer (fuzzer/campaign/store.py) from real generated graphs; their findings come
from the real judge (oracles.judge.judge_case) on outcomes that replay known bug shapes (a truncating integer
division in the exported model, a crashing reference evaluator, a TVM codegen crash, an unsupported op).
Expected counts are derived from what the fixture stored, never written in by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fuzzer.campaign.store import CaseRecord, FindingRecord, GapRecord, Store, sig12
from fuzzer.cli import main
from fuzzer.report.load import load_report
from fuzzer.report.since import compare_runs
from fuzzer.report.store_read import StoreError
from generators.generate import GenConfig, generate
from generators.values import find_values
from oracles.judge import Reference, judge_case
from oracles.outcome import Failure, Outcome

TS_ORT = "torch>onnx:torchscript>ort:disable:cpu"
TS_REF = "torch>onnx:torchscript>onnxref"
TVM = "torch>onnx:torchscript>tvm:O0:llvm"
PIPELINES = [TS_ORT, TS_REF, TVM]
EXPECTED = [np.array([3, -4, -4, 3], dtype=np.int64)]  # floor division of [7,-7,7,-7] by [2,2,-2,-2]
TRUNCATED = [np.array([3, -3, -3, 3], dtype=np.int64)]  # what a bare ONNX Div returns


def outcomes_for(scenario: str) -> dict[str, Outcome]:
    """Per-pipeline outcomes replaying one bug shape (the others agree with the reference)."""
    out = {p: Outcome(p, outputs=[a.copy() for a in EXPECTED], stage_times={"run": 0.01}) for p in PIPELINES}
    if scenario == "truncating_div":  # the converter's model is wrong in every consumer
        out = {p: Outcome(p, outputs=[a.copy() for a in TRUNCATED]) for p in PIPELINES}
    elif scenario == "onnxref_crash":
        out[TS_REF] = Outcome(TS_REF, failure=Failure("run", "exception", "ValueError",
                                                      "all dimensions of index and self should be the same size"))
    elif scenario == "tvm_crash":
        out[TVM] = Outcome(TVM, failure=Failure("compile", "exception", "TVMError",
                                                "Check failed: (lanes == 1) is false: fcmp on bool"))
    elif scenario == "gap":
        out[TVM] = Outcome(TVM, failure=Failure("import", "unsupported", "OpNotImplemented",
                                                "The following operators are not supported for frontend ONNX: Erf"))
    return out


@dataclass
class Built:
    out: Path
    per_run: list[list[list[str]]]  # run -> case -> signatures found
    components: dict[str, str]  # signature -> blamed component
    gap_signatures: set[str]
    skip: tuple[str, str]

    def counts(self, runs: slice = slice(None)) -> Counter[str]:
        return Counter(s for run in self.per_run[runs] for case in run for s in case)


def build_store(out: Path, runs: list[list[str]], keep_open: bool = False) -> tuple[Built, Store | None]:
    """A store of `runs` (each a list of scenarios, one case each), graphs from the real generator."""
    store = Store.create(out, seed=0, nodes=4, config={"pipelines": PIPELINES, "nodes": 4})
    built = Built(out, [], {}, set(), ("", ""))
    idx = 0
    for scenarios in runs:
        run_id = store.start_run("local", 1, {"numpy": np.__version__}, "test-host", resumed=bool(built.per_run))
        found: list[list[str]] = []
        for scenario in scenarios:
            graph, _ = generate(idx, GenConfig(nodes=4))
            values, _ = find_values(graph, idx)
            ref = Reference("torch", [a.copy() for a in EXPECTED])
            verdict = judge_case({"torch": ref}, outcomes_for(scenario))
            gaps = [GapRecord(g.signature, g.component, g.op, "float32", g.message, {}) for g in verdict.gaps]
            store.record_case(run_id, CaseRecord(idx, idx, "judged", 0.1, graph, values, list(PIPELINES),
                                                 [FindingRecord(f.to_json()) for f in verdict.findings], gaps))
            found.append([f.signature for f in verdict.findings])
            built.components.update({f.signature: f.component for f in verdict.findings})
            built.gap_signatures.update(g.signature for g in verdict.gaps)
            store.snapshot(run_id, 100.0)
            idx += 1
            if scenario == "onnxref_crash" and built.skip == ("", ""):  # the scheduler's reaction to a crash
                built.skip = (TS_REF, graph.nodes[0].op)
                store.add_skip(TS_REF, graph.nodes[0].op, verdict.findings[0].signature, "frequent known crash")
        built.per_run.append(found)
        if not keep_open or len(built.per_run) < len(runs):
            store.end_run(run_id, "cases")
    if keep_open:
        return built, store
    store.close()
    return built, None


RUN1 = ["truncating_div", "onnxref_crash", "truncating_div", "gap", "onnxref_crash"]
RUN2 = ["truncating_div", "tvm_crash", "tvm_crash", "clean"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_store(tmp_path_factory.mktemp("report") / "crashes", [RUN1, RUN2])[0]


@pytest.fixture(scope="module")
def first_night(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_store(tmp_path_factory.mktemp("night1") / "crashes", [RUN1])[0]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["report", *argv])
    got = capsys.readouterr()
    return rc, got.out, got.err


def folder_state(folder: Path) -> dict[str, str]:
    """Every file under `folder` and its sha256: a report must leave all of them as they were."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fixture_has_each_kind(two_runs: Built) -> None:
    """The store under test holds several distinct bugs, repeats, a gap and a skip (else the tests prove little)."""
    counts = two_runs.counts()
    assert len(counts) >= 3 and max(counts.values()) >= 2
    assert two_runs.gap_signatures and not two_runs.gap_signatures & set(counts)


def test_text_lists_each_bug_once_with_count(two_runs: Built, capsys: pytest.CaptureFixture[str]) -> None:
    before = folder_state(two_runs.out)
    rc, out, _ = cli(capsys, str(two_runs.out))
    assert rc == 0
    for sig, n in two_runs.counts().items():
        lines = [line for line in out.splitlines() if f"[{sig12(sig)}]" in line]
        assert len(lines) == 1, (sig, lines)
        assert f"x{n} " in lines[0] and two_runs.components[sig] in lines[0]
    assert f"Distinct bugs ({len(two_runs.counts())})" in out
    gap_section = out.split("Capability gaps")[1]
    assert "Erf" in gap_section and "Scheduling skips (1)" in out
    assert folder_state(two_runs.out) == before


def test_json_has_every_bug_gap_and_skip(two_runs: Built, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, str(two_runs.out), "--json")
    assert rc == 0
    obj = json.loads(out)
    assert {b["signature"]: b["count"] for b in obj["bugs"]} == dict(two_runs.counts())
    assert obj["distinct_bugs"] == len(two_runs.counts())
    assert obj["finding_rows"] == sum(two_runs.counts().values())
    assert {g["signature"] for g in obj["capability_gaps"]} == two_runs.gap_signatures
    assert [(s["pipeline"], s["op"]) for s in obj["skips"]] == [two_runs.skip]
    assert obj["cases"]["total"] == len(RUN1) + len(RUN2)
    assert [r["cases"] for r in obj["runs"]] == [len(RUN1), len(RUN2)]
    for b in obj["bugs"]:  # the smallest example is a folder that holds the case and its finding
        folder = two_runs.out / b["smallest_dir"]
        assert (folder / "graph.json").is_file() and (folder / "finding.json").is_file()
        assert b["smallest_nodes"] == len(json.loads((folder / "graph.json").read_text())["nodes"])
    cells = obj["coverage"]["cells"]
    assert {c["pipeline"] for c in cells} == set(PIPELINES)
    assert obj["opseq"]["distinct2"] > 0 and 0 < obj["opseq"]["pair_share"] < 1
    assert obj["throughput"] and all(t["cases_per_s"] >= 0 for t in obj["throughput"])


def test_markdown_table_lists_each_bug_once(two_runs: Built, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, str(two_runs.out), "--markdown")
    assert rc == 0
    rows = [line for line in out.splitlines() if line.startswith("| ") and "`" in line]
    for sig, n in two_runs.counts().items():
        mine = [r for r in rows if f"`{sig12(sig)}`" in r]
        assert len(mine) == 1
        assert [c.strip() for c in mine[0].split(" | ")][2] == str(n)


def test_junit_one_failing_case_per_bug_per_component(two_runs: Built, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "bugs.xml"
    rc, out, _ = cli(capsys, str(two_runs.out), "--junit", str(target))
    assert rc == 0 and out == ""
    root = ET.fromstring(target.read_bytes())
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == set(two_runs.components.values())
    cases = list(root.iter("testcase"))
    assert len(cases) == len(two_runs.counts()) == int(root.get("failures"))
    for sig, n in two_runs.counts().items():
        mine = [c for c in cases if f"[{sig12(sig)}]" in c.get("name")]
        assert len(mine) == 1
        assert mine[0].get("classname") == f"parallax.{two_runs.components[sig]}"
        assert f"count: {n}\n" in mine[0].find("failure").text


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_html_is_one_self_contained_file(two_runs: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "report.html"
    rc, _, err = cli(capsys, str(two_runs.out), "--html", str(target), "--since", "1")
    assert rc == 0 and str(target) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
    page = target.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3  # throughput, findings over time, coverage heat map
    for img in images:
        w, h = _png_size(base64.b64decode(img))
        assert w > 100 and h > 100
    rest = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    for external in ("http", 'src="/', "<link", "<script", "@import", "url("):
        assert external not in rest, external
    assert re.findall(r"\b(?:src|href)=", rest) == ["src="] * 3
    for sig in two_runs.counts():
        assert rest.count(f"<code>{sig12(sig)}</code>") == 2  # the bug table and the --since section


def test_html_defaults_into_the_campaign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built, _ = build_store(tmp_path / "c", [["truncating_div"]])
    rc, out, err = cli(capsys, str(built.out), "--html")
    assert rc == 0 and (built.out / "report.html").is_file() and "report.html" in err and out == ""


def test_since_run_id_new_vanished_still(two_runs: Built) -> None:
    s = compare_runs(two_runs.out, "1")
    before, after = two_runs.counts(slice(0, 1)), two_runs.counts(slice(1, None))
    assert {e.bug.signature for e in s.new} == set(after) - set(before) != set()
    assert {e.bug.signature for e in s.vanished} == set(before) - set(after) != set()
    assert {e.bug.signature for e in s.still} == set(before) & set(after) != set()
    for e in s.new + s.vanished + s.still:
        assert (e.count_before, e.count_after) == (before[e.bug.signature], after[e.bug.signature])
    # The crash vanished only because the scheduler skipped its op on the one pipeline that showed it.
    (gone,) = s.vanished
    assert not gone.tested_after and gone.skipped == [f"{two_runs.skip[0]} skips {two_runs.skip[1]}"]
    assert (s.cases_before, s.cases_after) == (len(RUN1), len(RUN2))
    last = compare_runs(two_runs.out, 2)  # nothing ran after the last run: every bug "vanished", untested
    assert not last.new and not last.still and last.cases_after == 0
    assert last.vanished and not any(e.tested_after for e in last.vanished)


def test_since_cli_exit_0_with_json(two_runs: Built, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, str(two_runs.out), "--json", "--since", "1")
    assert rc == 0
    since = json.loads(out)["since"]
    assert {e["signature"] for e in since["new"]} == set(two_runs.counts(slice(1, None))) - set(
        two_runs.counts(slice(0, 1)))
    rc, out, _ = cli(capsys, str(two_runs.out), "--since", "1")
    assert rc == 0 and "VANISHED (1)" in out and "skipped by scheduling" in out


def test_since_other_store(two_runs: Built, first_night: Built) -> None:
    s = compare_runs(two_runs.out, str(first_night.out))
    now, then = two_runs.counts(), first_night.counts()
    assert {e.bug.signature for e in s.new} == set(now) - set(then) != set()
    assert {e.bug.signature for e in s.still} == set(now) & set(then)
    assert not s.vanished
    assert s.baseline == str(first_night.out)
    back = compare_runs(first_night.out, str(two_runs.out))
    assert {e.bug.signature for e in back.vanished} == set(now) - set(then)
    assert all(e.tested_after for e in back.vanished)  # the same pipelines ran, nothing skipped because of it
    assert {e.count_before for e in back.vanished} == {now[e.bug.signature] for e in back.vanished}


def test_report_reads_a_store_being_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A campaign still running (WAL not checkpointed): the report sees its latest cases and changes nothing."""
    built, store = build_store(tmp_path / "live", [["truncating_div", "onnxref_crash"]], keep_open=True)
    assert store is not None
    try:
        db = built.out / "parallax.db"
        assert (built.out / "parallax.db-wal").stat().st_size > 0
        before = hashlib.sha256(db.read_bytes()).hexdigest()
        data = load_report(built.out)
        assert {b.signature: b.count for b in data.bugs} == dict(built.counts())
        assert data.runs[-1].ended is None
        rc, out, _ = cli(capsys, str(built.out))
        assert rc == 0 and "running or killed" in out
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    finally:
        store.close()


def _copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _bad_stores(base: Path, good: Path) -> dict[str, Path]:
    bad: dict[str, Path] = {"missing": base / "nope"}
    (base / "empty").mkdir()
    bad["no db"] = base / "empty"
    (base / "text").mkdir()
    (base / "text" / "parallax.db").write_text("not a database\n" * 100)
    bad["not sqlite"] = base / "text"
    version = _copy_store(good, base / "version")
    with sqlite3.connect(version / "parallax.db") as con:
        con.execute("PRAGMA user_version = 7")
    con.close()
    bad["schema version"] = version
    other = base / "other"
    other.mkdir()
    with sqlite3.connect(other / "parallax.db") as con:
        con.execute("CREATE TABLE t (x)")
        con.execute("PRAGMA user_version = 1")
    con.close()
    bad["other sqlite"] = other
    corrupt = _copy_store(good, base / "corrupt")
    db = corrupt / "parallax.db"
    raw = bytearray(db.read_bytes())
    page = struct.unpack(">H", raw[16:18])[0]
    raw[page + 100:2 * page] = b"\xa5" * (page - 100)  # a b-tree page overwritten with garbage
    db.write_bytes(bytes(raw))
    bad["corrupt"] = corrupt
    return bad


def test_bad_input_exit_2_store_untouched(two_runs: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stores = _bad_stores(tmp_path, two_runs.out)
    for why, folder in stores.items():
        state = folder_state(folder) if folder.exists() else None
        rc, out, err = cli(capsys, str(folder), "--html", str(tmp_path / "r.html"))
        assert rc == 2, why
        assert out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (why, err)
        if why not in ("missing", "no db"):
            assert "not a Parallax store" in err, (why, err)
        assert (folder_state(folder) if folder.exists() else None) == state, why
        assert not (tmp_path / "r.html").exists()
    good = folder_state(two_runs.out)
    db = two_runs.out / "parallax.db"
    for argv in (["--since", "99"], ["--since", str(tmp_path / "nope")], ["--since", str(stores["corrupt"])],
                 ["--html", str(db)], ["--junit", str(db)], ["--html", str(tmp_path / "no" / "r.html")],
                 ["--json", "--markdown"]):
        rc, out, err = cli(capsys, str(two_runs.out), *argv)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, (argv, err)
    assert "unknown run id 99" in cli(capsys, str(two_runs.out), "--since", "99")[2]
    assert folder_state(two_runs.out) == good
    with pytest.raises(StoreError):
        compare_runs(two_runs.out, 99)


def test_cli_entry_point_prints_one_line_error(tmp_path: Path) -> None:
    """Through the installed command: one line on stderr, exit 2."""
    r = subprocess.run([sys.executable, "-m", "fuzzer.cli", "report", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"parallax: error: {tmp_path / 'nope'}: no such campaign folder"]


@pytest.fixture(scope="module")
def real_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real runs of `parallax fuzz` (a run and a --resume) into one store."""
    out = tmp_path_factory.mktemp("campaign") / "crashes"
    work = tmp_path_factory.mktemp("work")
    pipes = "torch>onnx:torchscript>ort:all:cpu,torch>onnx:torchscript>onnxref,torch>onnx:torchscript>ort:disable:cpu"
    runs = (["--time", "25s", "--nodes", "5", "--seed", "3", "--pipelines", pipes], ["--time", "15s", "--resume"])
    for extra in runs:
        r = subprocess.run([sys.executable, "-m", "fuzzer.cli", "fuzz", "--workers", "1", "--quiet", "--repeats", "2",
                            "--out", str(out), "--work-dir", str(work), *extra],
                           capture_output=True, text=True, timeout=400)
        assert r.returncode in (0, 1), r.stderr[-2000:]
    return out


@pytest.mark.slow
def test_report_of_a_real_campaign(real_campaign: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = folder_state(real_campaign)
    con = sqlite3.connect(f"file:{real_campaign / 'parallax.db'}?mode=ro&immutable=1", uri=True)
    counts = dict(con.execute("SELECT signature, COUNT(*) FROM findings GROUP BY signature").fetchall())
    by_run = {run: set(s for (s,) in con.execute("SELECT DISTINCT signature FROM findings WHERE run_id = ?",
                                                  (run,))) for run in (1, 2)}
    con.close()
    assert counts, "a 40 s campaign over the torchscript exporter always finds something"
    rc, out, _ = cli(capsys, str(real_campaign), "--json", "--since", "1", "--html", str(tmp_path / "r.html"))
    assert rc == 0
    obj = json.loads(out)
    assert {b["signature"]: b["count"] for b in obj["bugs"]} == counts
    since = obj["since"]
    assert {e["signature"] for e in since["new"]} == by_run[2] - by_run[1]
    assert {e["signature"] for e in since["vanished"]} == by_run[1] - by_run[2]
    assert {e["signature"] for e in since["still"]} == by_run[1] & by_run[2]
    rc, text, _ = cli(capsys, str(real_campaign))
    for sig in counts:
        assert text.count(f"[{sig12(sig)}]") == 1
    page = (tmp_path / "r.html").read_text()
    assert len(re.findall(r'<img class="plot" alt="[^"]*" src="data:image/png;base64,', page)) == 3
    assert "<link" not in page and "<script" not in page
    assert folder_state(real_campaign) == before


def test_report_after_the_campaign_was_killed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """kill -9 leaves the last transactions in the -wal file: the report reads them and never writes the
    database or its log (SQLite may rebuild the -shm index, a cache it owns)."""
    out = tmp_path / "crashes"
    code = ("import json, os, sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); import test_report as t; "
            "b, s = t.build_store(Path(sys.argv[1]), [t.RUN1], keep_open=True); "
            "print(json.dumps(b.counts())); sys.stdout.flush(); os._exit(0)")
    r = subprocess.run([sys.executable, "-c", code, str(out), str(Path(__file__).parent)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    counts = json.loads(r.stdout)
    wal = out / "parallax.db-wal"
    assert wal.stat().st_size > 0
    kept = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "parallax.db", wal)}
    data = load_report(out)
    assert {b.signature: b.count for b in data.bugs} == counts
    assert data.runs[0].ended is None and data.cases_total == len(RUN1)
    assert cli(capsys, str(out), "--markdown")[0] == 0
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in kept} == kept


def test_a_new_store_with_no_case_reports_nothing_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crashes"
    Store.create(out, seed=1, nodes=3, config={}).close()
    rc, text, _ = cli(capsys, str(out), "--html", "--junit", str(tmp_path / "j.xml"), "--since", str(out))
    assert rc == 0 and text == ""
    assert ET.fromstring((tmp_path / "j.xml").read_bytes()).get("tests") == "0"
    assert "No bugs found." in (out / "report.html").read_text()
    rc, text, _ = cli(capsys, str(out))
    assert rc == 0 and "Distinct bugs (0)" in text and "0 cases" in text
    assert cli(capsys, str(out), "--since", "1")[0] == 2
