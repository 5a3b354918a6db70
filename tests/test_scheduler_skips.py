"""A known bug must not blind a pipeline to an op: skip rules narrowed to their trigger (op, dtype, attribute
values), a share of matching graphs sent anyway, counts and triggers kept by the store across close/open and
shown by every report format. Graphs are the generator's own (ReduceMin with and without `axes`: the dynamo
amin/amax default-dim failure of the 1-hour campaign crashed only when no axes were given)."""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import cache
from pathlib import Path

import pytest

from fuzzer.campaign.loop import Campaign, CampaignSettings, CaseOutcome, CaseTask
from fuzzer.campaign.scheduler import SEND_ANYWAY, Scheduler, SharedGapBook, SkipRule
from fuzzer.campaign.store import EVENTS_NAME, EventLog, Store
from fuzzer.report.html import render_html
from fuzzer.report.load import load_report
from fuzzer.report.markdown import render_markdown
from fuzzer.report.text import render_text
from generators.generate import single_op_graph
from generators.ir import Graph, Node, TensorType
from oracles.pipeline_id import parse_pipeline

DYNAMO = "torch>onnx:dynamo>ort:all:cpu"
TS = "torch>onnx:torchscript>ort:all:cpu"
SIG = "crash|torch.onnx (dynamo)|export|exception|amin default dim"


@cache
def reduce_min(dtype: str, axes_none: bool, keepdims: bool | None = None, start: int = 0) -> Graph:
    """The first generated single-ReduceMin graph (from seed `start` on) with the wanted `axes`/`keepdims`."""
    for seed in range(start, start + 500):
        g = single_op_graph("ReduceMin", dtype, seed)
        a = g.nodes[0].attrs
        if (a["axes"] is None) == axes_none and (keepdims is None or a["keepdims"] == keepdims):
            return g
    raise AssertionError("the generator never made such a ReduceMin")


def crash(pipelines: list[str], sig: str = SIG) -> dict:
    return {"signature": sig, "symptom": "crash", "component": "torch.onnx (dynamo)", "pipelines": pipelines,
            "message": "IndexError: tuple index out of range", "first_op": ""}


def learnt(sch: Scheduler) -> SkipRule:
    """Three different default-dim ReduceMin graphs (float32, keepdims both ways) crash on DYNAMO alike."""
    graphs = [reduce_min("float32", True, True), reduce_min("float32", True, False),
              reduce_min("float32", True, False, start=40)]
    assert len({g.content_hash() for g in graphs}) == 3
    rules = [r for i, g in enumerate(graphs) for r in sch.observe(i, g, crash([DYNAMO]))]
    assert len(rules) == 1
    return rules[0]


@cache
def matching_graphs(n: int) -> tuple[Graph, ...]:
    """The first `n` generated float32 ReduceMin graphs with the default dim (they match the learnt trigger)."""
    out: list[Graph] = []
    seed = 0
    while len(out) < n:
        g = single_op_graph("ReduceMin", "float32", seed)
        seed += 1
        if g.nodes[0].attrs["axes"] is None:
            out.append(g)
    return tuple(out)


def scheduler() -> Scheduler:
    return Scheduler([parse_pipeline(DYNAMO), parse_pipeline(TS)])


# ----- the trigger -----------------------------------------------------------------------------------------
def test_the_rule_is_narrowed_to_what_the_crashing_graphs_share() -> None:
    rule = learnt(scheduler())
    assert (rule.pipeline, rule.op, rule.signature) == (DYNAMO, "ReduceMin", SIG)
    # keepdims differed between the crashing graphs, so it is not part of the trigger; axes=None is
    assert rule.trigger_json() == {"dtype": "float32", "out_dtype": "float32", "attrs": {"axes": None}}
    assert rule.describe() == "ReduceMin float32 axes=null" and "ReduceMin float32 axes=null" in rule.reason


def test_other_attribute_values_and_dtypes_of_the_op_are_not_skipped() -> None:
    sch = scheduler()
    learnt(sch)
    for g in [reduce_min("float32", False, True), reduce_min("float32", False, False, start=20),
              reduce_min("float16", True), reduce_min("int32", True)]:
        run, skipped = sch.plan(g)
        assert [p.name for p in run] == [DYNAMO, TS] and skipped == {}, g.nodes[0].attrs
        assert sch.hits(g, [DYNAMO, TS], skipped) == []


def test_matching_graphs_are_mostly_skipped_but_a_share_still_reaches_the_pipeline() -> None:
    sch = scheduler()
    learnt(sch)
    graphs = matching_graphs(100)
    sent = skipped = 0
    for g in graphs:
        run, why = sch.plan(g)
        names = [p.name for p in run]
        assert TS in names  # the rule is the dynamo pipeline's only
        if DYNAMO in names:
            sent += 1
        else:
            skipped += 1
            assert "ReduceMin float32 axes=null" in why[DYNAMO]
        hits = sch.hits(g, names, why)
        assert [(h.pipeline, h.signature, h.sent) for h in hits] == [(DYNAMO, SIG, DYNAMO in names)]
    assert sent + skipped == 100
    assert 0.04 * 100 <= sent <= 0.18 * 100, sent  # about SEND_ANYWAY of them
    # the decision is a function of the graph: a replay (a fresh scheduler with the same rules) decides alike
    again = scheduler()
    again.load([asdict(r) for r in sch.rules])  # what a Ray driver sends its actors
    assert all(again.plan(g)[1] == sch.plan(g)[1] for g in graphs)
    assert SEND_ANYWAY == pytest.approx(0.10)


def test_no_share_and_full_share() -> None:
    never, always = (Scheduler([parse_pipeline(DYNAMO)], send_share=s) for s in (0.0, 1.0))
    learnt(never)
    learnt(always)
    graphs = matching_graphs(100)[:20]
    assert all(never.plan(g)[1] for g in graphs) and not any(always.plan(g)[1] for g in graphs)


def test_a_crash_on_a_graph_outside_the_trigger_widens_it() -> None:
    sch = scheduler()
    rule = learnt(sch)
    other = reduce_min("float32", False, True)
    assert not sch.plan(other)[1]
    widened = sch.observe(10, other, crash([DYNAMO]))  # the same bug without the default dim: axes is not it
    assert [(r.pipeline, r.signature) for r in widened] == [(rule.pipeline, rule.signature)]
    assert widened[0].trigger_json() == {"dtype": "float32", "out_dtype": "float32", "attrs": {}}
    assert len(sch.rules) == 1
    assert sch.observe(11, reduce_min("float32", True), crash([DYNAMO])) == []  # matches: nothing to widen


def test_a_second_bug_behind_the_same_op_gets_its_own_rule() -> None:
    sch = scheduler()
    learnt(sch)
    fp16 = [reduce_min("float16", True, start=s) for s in (0, 30, 60)]
    assert len({g.content_hash() for g in fp16}) == 3
    new = [r for i, g in enumerate(fp16) for r in sch.observe(20 + i, g, crash([DYNAMO], sig="other bug"))]
    assert [(r.op, r.signature, r.trigger_json()["dtype"]) for r in new] == [("ReduceMin", "other bug", "float16")]
    assert len(sch.rules) == 2


def test_a_graph_with_several_nodes_of_the_op_never_mixes_their_features() -> None:
    """Which node crashed is unknown; the trigger is what one node of each graph had, not a blend of nodes."""
    def cast_graph(*casts: tuple[str, str]) -> Graph:
        tensors = {"x": TensorType((3,), "float32")}
        nodes = []
        for i, (src, to) in enumerate(casts):
            tensors[f"i{i}"] = TensorType((3,), src)
            tensors[f"o{i}"] = TensorType((3,), to)
            nodes.append(Node(f"c{i}", "Cast", [f"i{i}"], [f"o{i}"], {"to": to}))
        return Graph(tensors, [f"i{i}" for i in range(len(casts))], [], nodes, [f"o{i}" for i in range(len(casts))])

    sch = Scheduler([parse_pipeline(TS)], min_graphs=2, send_share=0.0)
    sch.observe(0, cast_graph(("float32", "int64"), ("int32", "float16")), crash([TS]))
    [rule] = sch.observe(1, cast_graph(("float32", "int64")), crash([TS]))
    assert rule.trigger_json() == {"dtype": "float32", "out_dtype": "int64", "attrs": {"to": "int64"}}
    assert sch.plan(cast_graph(("int32", "float16")))[1] == {}
    assert TS in sch.plan(cast_graph(("int32", "float16"), ("float32", "int64")))[1]


# ----- store, campaign loop, resume and report ---------------------------------------------------------------
def test_rules_and_their_counts_survive_close_and_open_and_reach_the_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sch = scheduler()
    store = Store.create(out, seed=1, nodes=4, config={"pipelines": [DYNAMO, TS]})
    events = EventLog(out / EVENTS_NAME)
    camp = Campaign(store, None, sch, SharedGapBook(), events, CampaignSettings())  # type: ignore[arg-type]
    camp.run_id = store.start_run("local", 1, {}, "test", False)
    rule = learnt(sch)
    assert store.add_skip(rule.pipeline, rule.op, rule.signature, rule.reason, rule.trigger_json())
    assert not store.add_skip(rule.pipeline, rule.op, rule.signature, rule.reason, rule.trigger_json())

    graphs = [*matching_graphs(100), reduce_min("float32", False, True), reduce_min("float16", True)]
    saved = sent = 0
    for i, g in enumerate(graphs):  # what an engine does with each case: plan, run, hand the outcome back
        run, skipped = sch.plan(g)
        ran = [p.name for p in run]
        saved += DYNAMO in skipped
        sent += i < 100 and DYNAMO in ran
        camp._record(CaseOutcome(CaseTask(i, 1 + i, 4), "judged", 0.01, g, None, None, ran, skipped))
    assert saved + sent == 100 and sent >= 1 and saved >= 75
    events.close()
    store.close()

    with Store.open(out) as reopened:  # --resume
        [row] = reopened.skip_rows()
        assert (row["pipeline"], row["op"], row["signature"]) == (DYNAMO, "ReduceMin", SIG)
        assert row["trigger"] == rule.trigger_json() and (row["skipped"], row["sent"]) == (saved, sent)
        resumed = scheduler()
        resumed.load(reopened.skip_rows())
        assert resumed.rules == sch.rules
        assert all(resumed.plan(g)[1] == sch.plan(g)[1] for g in graphs)

    data = load_report(out)
    [s] = data.skips
    assert (s.trigger_text, s.skipped, s.sent) == ("ReduceMin float32 axes=null", saved, sent)
    for text in (render_text(data), render_markdown(data), render_html(data)):
        assert "ReduceMin float32 axes=null" in text and str(saved) in text
    assert f"saved {saved} pipeline runs, sent {sent} matching cases anyway" in render_text(data)
    assert f"Scheduling skips (1): {saved} pipeline runs saved, {sent} matching cases sent anyway" in render_text(data)
    [js] = json.loads(json.dumps(data.to_json()))["skips"]
    assert js["trigger"] == {"dtype": "float32", "out_dtype": "float32", "attrs": {"axes": None}}
    assert (js["skipped"], js["sent"]) == (saved, sent)


def test_a_widened_trigger_replaces_the_stored_one(tmp_path: Path) -> None:
    sch = scheduler()
    rule = learnt(sch)
    with Store.create(tmp_path / "out", seed=1, nodes=4, config={}) as st:
        st.add_skip(rule.pipeline, rule.op, rule.signature, rule.reason, rule.trigger_json())
        [wide] = sch.observe(10, reduce_min("float32", False), crash([DYNAMO]))
        assert st.add_skip(wide.pipeline, wide.op, wide.signature, wide.reason, wide.trigger_json())
        [row] = st.skip_rows()
        assert row["trigger"] == {"dtype": "float32", "out_dtype": "float32", "attrs": {}}


def test_a_rule_of_a_store_from_before_triggers_resumes_as_the_whole_op(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Store.create(out, seed=1, nodes=4, config={}) as st:  # as an older Parallax left it: `skips` only
        st.con.execute("DROP TABLE skip_rules")
        st.con.execute("INSERT INTO skips VALUES (?, 'ReduceMin', ?, 'old rule', 1.0)", (DYNAMO, SIG))
    assert [s.trigger_text for s in load_report(out).skips] == ["ReduceMin (any dtype and attributes)"]
    with Store.open(out) as st:
        [row] = st.skip_rows()
        assert row["trigger"] is None and (row["skipped"], row["sent"]) == (0, 0)
        sch = Scheduler([parse_pipeline(DYNAMO)], send_share=0.0)
        sch.load(st.skip_rows())
    for g in [reduce_min("float32", False), reduce_min("float16", True)]:
        assert DYNAMO in sch.plan(g)[1]


def test_the_pipelines_skipped_for_one_bug_are_sent_together() -> None:
    """The consumers of one model are the bug's voters: a graph sent anyway goes to all of them or to none, so it
    is judged as the bug was (a partial vote would file the same root cause again under another name)."""
    sch = scheduler()
    graphs = [reduce_min("float32", True, True), reduce_min("float32", True, False),
              reduce_min("float32", True, False, start=40)]
    rules = [r for i, g in enumerate(graphs) for r in sch.observe(i, g, crash([DYNAMO, TS]))]
    assert {r.pipeline for r in rules} == {DYNAMO, TS}
    plans = [set(sch.plan(g)[1]) for g in matching_graphs(100)]
    assert all(p in (set(), {DYNAMO, TS}) for p in plans), plans
    assert 0 < sum(not p for p in plans) < 30  # some sent anyway (to both), most skipped (on both)
