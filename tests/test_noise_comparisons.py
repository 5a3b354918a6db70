"""Noise, honestly: a decision that flips only where rounding upstream put its inputs on the boundary, and a
normalisation whose near-zero outputs carry reduction-order rounding, are noise; everything else is not.

The data is real: float16 products fused into a comparison (computed unrounded, as inductor's CPU kernels
do), real inductor runs of the same graphs, and real XLA normalisations against TF eager. Each positive
test asserts its premise (the outputs really differ beyond the derived tolerance), so it cannot pass on
data that never mismatched; the negative tests keep real bugs (a flip far from the boundary, a flip on
graph leaves, a wrong axis or eps) out of the noise bin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuzzer.case.noise_check import explain_as_noise
from generators.ir import Graph, Node, TensorType
from generators.lower_numpy import LOWER
from generators.values import Values
from generators.variants import expose_intermediates, promote_floats
from oracles.compare import compare_output
from oracles.judge import Reference
from oracles.tolerance import EXACT, Tolerance, derive_tolerance

REPO = Path(__file__).resolve().parents[1]
CMP = {"Equal": np.equal, "NotEqual": np.not_equal, "Greater": np.greater, "GreaterEqual": np.greater_equal,
       "Less": np.less, "LessEqual": np.less_equal}


def graph_of(leaves: dict[str, np.ndarray], nodes: list[tuple[str, list[str], str, dict, str]],
             out_types: dict[str, TensorType], weights: tuple[str, ...] = ()) -> Graph:
    """Leaves become inputs (or weights), nodes are (op, inputs, output, attrs, name); every output exposed."""
    tensors = {n: TensorType(tuple(a.shape), str(a.dtype)) for n, a in leaves.items()} | out_types
    g = Graph(tensors, [n for n in leaves if n not in weights], list(weights),
              [Node(name, op, ins, [out], attrs) for op, ins, out, attrs, name in nodes], [nodes[-1][2]])
    g.validate()
    return expose_intermediates(g)


def explain(graph: Graph, node_name: str, ref_env: dict[str, np.ndarray], got_env: dict[str, np.ndarray],
            tols: dict[str, Tolerance]) -> str:
    node = next(n for n in graph.nodes if n.name == node_name)
    return explain_as_noise(node, graph, ref_env, got_env, [got_env[t] for t in node.outputs], tols)


def mismatches(ref: np.ndarray, got: np.ndarray, tol: Tolerance) -> bool:
    return compare_output(ref, got, tol, 0).mismatch


# -- float16 products fused into a decision -----------------------------------------------------------------
def fused_product(seed: int = 0, n: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tolerance]:
    """x, w (float16) and y = x*w rounded to float16 as the reference computes it, with y's tolerance
    derived from the float64 product like the campaign derives it."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2.0, n).astype(np.float16)
    w = rng.uniform(0.5, 2.0, n).astype(np.float16)
    y = x * w  # numpy rounds the (exact in float32) product to float16
    return x, w, y, derive_tolerance(y, x.astype(np.float64) * w.astype(np.float64), "float16")


@pytest.mark.parametrize("op", sorted(CMP))
def test_fused_float16_comparison_flip_is_noise(op: str) -> None:
    """y = x*w; op(y, c) with c on y for half the elements and 0.5 away for the rest. The pipeline shows the
    same rounded y, but decided on the unrounded float32 product: flips at the boundary, nowhere else."""
    x, w, y, y_tol = fused_product()
    c = np.where(np.arange(y.size) % 2 == 0, y, y + np.float16(0.5)).astype(np.float16)
    graph = graph_of({"x": x, "w": w, "c": c}, [("Mul", ["x", "w"], "y", {}, "mul"), (op, ["y", "c"], "b", {}, "cmp")],
                     {"y": TensorType(y.shape, "float16"), "b": TensorType(y.shape, "bool")})
    ref_b = CMP[op](y, c)
    got_b = CMP[op](x.astype(np.float32) * w.astype(np.float32), c.astype(np.float32))
    assert (ref_b != got_b).any(), "premise: the unrounded product flips some decisions"
    assert not (ref_b != got_b)[1::2].any(), "premise: nothing flips away from the boundary"
    leaves = {"x": x, "w": w, "c": c}
    ref_env, got_env = {**leaves, "y": y, "b": ref_b}, {**leaves, "y": y.copy(), "b": got_b}
    why = explain(graph, "cmp", ref_env, got_env, {"y": y_tol, "b": EXACT})
    assert "decision boundary" in why, why


def test_comparison_flip_far_from_the_boundary_is_not_noise() -> None:
    """Less computed as Greater: it flips where y and c are 0.5 apart, several times y's tolerance: a bug."""
    x, w, y, y_tol = fused_product(1)
    c = np.where(np.arange(y.size) % 2 == 0, y, y + np.float16(0.5)).astype(np.float16)
    graph = graph_of({"x": x, "w": w, "c": c}, [("Mul", ["x", "w"], "y", {}, "mul"), ("Less", ["y", "c"], "b", {},
                                                                                  "cmp")],
                     {"y": TensorType(y.shape, "float16"), "b": TensorType(y.shape, "bool")})
    assert 0.5 > 3 * (y_tol.atol + y_tol.rtol * 4.0), "premise: 0.5 is far outside y's tolerance"
    leaves = {"x": x, "w": w, "c": c}
    ref_env = {**leaves, "y": y, "b": y < c}
    got_env = {**leaves, "y": y.copy(), "b": y > c}
    assert explain(graph, "cmp", ref_env, got_env, {"y": y_tol, "b": EXACT}) == ""
    # One element wrong far away is enough, even when every other flip is at the boundary.
    fused = x.astype(np.float32) * w.astype(np.float32) < c.astype(np.float32)
    fused[1] = not fused[1]
    got_env["b"] = fused
    assert explain(graph, "cmp", ref_env, got_env, {"y": y_tol, "b": EXACT}) == ""


def test_comparison_flip_on_graph_leaves_is_not_noise() -> None:
    """Greater on two leaves that flips at exact ties (GreaterEqual's answer): no rounding upstream, a bug.
    The same arrays with the first operand computed by a node are explained, so the leaf rule decides."""
    x, w, y, y_tol = fused_product(2)
    c = y.copy()
    ref_b, got_b = y > c, y >= c
    assert (ref_b != got_b).all()
    leafy = graph_of({"y": y, "c": c}, [("Greater", ["y", "c"], "b", {}, "cmp")], {"b": TensorType(y.shape, "bool")})
    env = {"y": y, "c": c}
    assert explain(leafy, "cmp", {**env, "b": ref_b}, {**env, "b": got_b}, {"b": EXACT}) == ""
    weights = graph_of({"y": y, "c": c}, [("Greater", ["y", "c"], "b", {}, "cmp")], {"b": TensorType(y.shape, "bool")},
                       weights=("y", "c"))
    assert explain(weights, "cmp", {**env, "b": ref_b}, {**env, "b": got_b}, {"b": EXACT}) == ""
    computed = graph_of({"x": x, "w": w, "c": c}, [("Mul", ["x", "w"], "y", {}, "mul"),
                                                   ("Greater", ["y", "c"], "b", {}, "cmp")],
                        {"y": TensorType(y.shape, "float16"), "b": TensorType(y.shape, "bool")})
    env = {"x": x, "w": w, "c": c, "y": y}
    assert explain(computed, "cmp", {**env, "b": ref_b}, {**env, "b": got_b}, {"y": y_tol, "b": EXACT})


def test_comparison_with_inputs_outside_tolerance_is_not_noise() -> None:
    """The premise of the rule: the decision's inputs agree. A y that is off by 0.25 is not rounding."""
    x, w, y, y_tol = fused_product(3)
    c = y.copy()
    graph = graph_of({"x": x, "w": w, "c": c}, [("Mul", ["x", "w"], "y", {}, "mul"),
                                                ("Equal", ["y", "c"], "b", {}, "cmp")],
                     {"y": TensorType(y.shape, "float16"), "b": TensorType(y.shape, "bool")})
    bad = (y + np.float16(0.25)).astype(np.float16)
    env = {"x": x, "w": w, "c": c}
    why = explain(graph, "cmp", {**env, "y": y, "b": y == c}, {**env, "y": bad, "b": bad == c},
                  {"y": y_tol, "b": EXACT})
    assert why == ""


# -- rounding ops -------------------------------------------------------------------------------------------
ROUNDING = {
    "Floor": ({}, 0.0, np.floor, "float16"),
    "Ceil": ({}, 0.0, np.ceil, "float16"),
    "Round": ({}, 0.5, np.round, "float16"),
    "Cast": ({"to": "int32"}, 0.0, lambda v: np.trunc(v).astype(np.int32), "int32"),
}


def near_integers(offset: float, seed: int = 4, n: int = 96) -> tuple[np.ndarray, np.ndarray, np.ndarray, Tolerance]:
    """x, w with x*w within rounding of k + offset (k integer in [-4, 4]); y = x*w rounded to float16."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.5, 2.0, n).astype(np.float16)
    k = rng.integers(-4, 5, n) + offset
    x = (k / w.astype(np.float64)).astype(np.float16)
    y = x * w
    return x, w, y, derive_tolerance(y, x.astype(np.float64) * w.astype(np.float64), "float16")


@pytest.mark.parametrize("op", sorted(ROUNDING))
def test_fused_rounding_op_flip_is_noise(op: str) -> None:
    attrs, offset, fn, out_dtype = ROUNDING[op]
    x, w, y, y_tol = near_integers(offset)
    graph = graph_of({"x": x, "w": w}, [("Mul", ["x", "w"], "y", {}, "mul"), (op, ["y"], "r", attrs, "round")],
                     {"y": TensorType(y.shape, "float16"), "r": TensorType(y.shape, out_dtype)})
    ref_r = fn(y).astype(out_dtype)
    got_r = fn(x.astype(np.float32) * w.astype(np.float32)).astype(out_dtype)
    assert (ref_r != got_r).any(), "premise: the unrounded product crosses some boundaries"
    r_tol = derive_tolerance(ref_r, None, out_dtype)  # no float64 twin: it would floor the exact product
    assert mismatches(ref_r, got_r, r_tol), "premise: the flips are over the output's tolerance"
    env = {"x": x, "w": w, "y": y}
    why = explain(graph, "round", {**env, "r": ref_r}, {**env, "r": got_r}, {"y": y_tol, "r": r_tol})
    assert "decision boundary" in why, why


def test_rounding_op_flip_far_from_the_boundary_or_on_a_leaf_is_not_noise() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(-4.0, 4.0, 64).astype(np.float16)
    ref_r, got_r = np.floor(x), np.trunc(x)  # a Floor that truncates: wrong for negative non-integers
    assert (ref_r != got_r).any()
    leafy = graph_of({"x": x}, [("Floor", ["x"], "r", {}, "round")], {"r": TensorType(x.shape, "float16")})
    tol = Tolerance(1e-2, 1e-2)
    assert explain(leafy, "round", {"x": x, "r": ref_r}, {"x": x, "r": got_r}, {"r": tol}) == ""
    # Computed input, flips where x is far from any integer: still a bug.
    w = np.ones_like(x)
    computed = graph_of({"x": x, "w": w}, [("Mul", ["x", "w"], "y", {}, "mul"), ("Floor", ["y"], "r", {}, "round")],
                        {"y": TensorType(x.shape, "float16"), "r": TensorType(x.shape, "float16")})
    env = {"x": x, "w": w, "y": x}
    assert explain(computed, "round", {**env, "r": ref_r}, {**env, "r": got_r}, {"y": tol, "r": tol}) == ""
    # Near the boundary but two steps away: rounding moves a value across one boundary, not two.
    y = np.array([1.0, 2.0, -3.0], dtype=np.float16)
    two = graph_of({"y0": y, "w0": np.ones_like(y)}, [("Mul", ["y0", "w0"], "y", {}, "mul"),
                                                       ("Floor", ["y"], "r", {}, "round")],
                   {"y": TensorType(y.shape, "float16"), "r": TensorType(y.shape, "float16")})
    env = {"y0": y, "w0": np.ones_like(y), "y": y}
    got = np.floor(y) - np.array([0, 2, 0], dtype=np.float16)
    assert explain(two, "round", {**env, "r": np.floor(y)}, {**env, "r": got}, {"y": tol, "r": tol}) == ""
    got = np.floor(y) - np.array([0, 1, 0], dtype=np.float16)
    assert explain(two, "round", {**env, "r": np.floor(y)}, {**env, "r": got}, {"y": tol, "r": tol})


# -- real inductor ------------------------------------------------------------------------------------------
@pytest.fixture
def inductor_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(REPO / ".work" / "inductor"))


def test_real_inductor_float16_decisions_are_noise(inductor_cache: None) -> None:
    """Inductor's CPU kernels keep a fused float16 product in float32: its Equal and Greater differ from
    eager's where eager rounded the product first, while the exposed product itself is identical."""
    import torch

    from fuzzer.targets.torch_targets import TorchSource, pin_threads

    pin_threads()
    x, w, y, _ = fused_product(6)
    c = y.copy()
    leaves = {"x": x, "w": w, "c": c}
    graph = graph_of(leaves, [("Mul", ["x", "w"], "y", {}, "mul"), ("Equal", ["y", "c"], "eq", {}, "eq"),
                              ("Greater", ["y", "c"], "gt", {}, "gt")],
                     {"y": TensorType(y.shape, "float16"), "eq": TensorType(y.shape, "bool"),
                      "gt": TensorType(y.shape, "bool")})
    values = Values(leaves, {})
    src = TorchSource(graph, values)
    wide = promote_floats(graph, values, check=False)
    assert wide is not None
    ref = Reference("torch", src.run_eager(), TorchSource(*wide).run_eager())
    got = src.compile_inductor("cpu")()
    torch._dynamo.reset()
    ref_env = {**leaves, **dict(zip(graph.outputs, ref.outputs))}
    got_env = {**leaves, **dict(zip(graph.outputs, got))}
    tols = dict(zip(graph.outputs, ref.tolerances()))
    assert np.array_equal(ref_env["y"], got_env["y"]), "premise: the exposed product is the same"
    for name in ("eq", "gt"):
        assert mismatches(ref_env[name], got_env[name], tols[name]), f"premise: inductor flips some of {name}"
        why = explain(graph, name, ref_env, got_env, tols)
        assert "decision boundary" in why, (name, why)


@pytest.mark.slow
def test_campaign_drops_a_real_inductor_comparison_flip_as_noise(tmp_path: Path) -> None:
    """End to end: the case runner sees inductor's Equal differ, localises it to Equal and drops it as noise."""
    from fuzzer.case.runner import CaseRunner, RunSettings
    from fuzzer.targets.registry import resolve
    from fuzzer.workers.pool import Limits, Worker
    from fuzzer.workers.workdir import prepare, worker_env

    x, w, y, _ = fused_product(8)
    leaves = {"x": x, "w": w, "c": y.copy()}
    g = Graph({"x": TensorType(x.shape, "float16"), "w": TensorType(x.shape, "float16"),
               "c": TensorType(x.shape, "float16"), "y": TensorType(x.shape, "float16"),
               "b": TensorType(x.shape, "bool")}, ["x", "w", "c"], [],
              [Node("mul", "Mul", ["x", "w"], ["y"]), Node("cmp", "Equal", ["y", "c"], ["b"])], ["b"])
    g.validate()
    work = prepare(REPO / ".work")
    env = worker_env(work)
    (tmp_path / "logs").mkdir()
    with Worker("fuzzer.targets.job:run_job", Limits(stage_timeout_s=300), tmp_path / "logs", env) as worker:
        runner = CaseRunner(worker, RunSettings(repeats=0, confirm_slowdowns=False, bisect_passes=False))
        result = runner.run_case(g, Values(leaves, {}), resolve(["torch>inductor:cpu"]))
    assert result.verdict.mismatched == ["torch>inductor:cpu"], "premise: inductor's Equal differs"
    assert [f.first_op for f in result.verdict.noise] == ["Equal"], result.followup_notes
    assert not [f for f in result.verdict.findings if f.symptom == "wrong_output"]
    assert any("decision boundary" in n for n in result.followup_notes), result.followup_notes


# -- normalisations near zero -------------------------------------------------------------------------------
NORMS = {
    "group": ("GroupNorm", (2, 8, 16, 16), {"num_groups": 2}, 1),
    "layer": ("LayerNorm", (1, 8, 20, 13), {"num_dims": 4}, 1),
}


def norm_case(key: str) -> tuple[Graph, Values]:
    """Values offset 110 from zero with std 0.9: outputs near zero after centring, max|x|/std ~ 125."""
    op, shape, attrs, seed = NORMS[key]
    x = (110.0 + 0.9 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)
    attrs = {**attrs, "eps": 1e-3, "weight": False, "bias": False}
    g = Graph({"x": TensorType(shape, "float32"), "y": TensorType(shape, "float32")}, ["x"], [],
              [Node("n0", op, ["x"], ["y"], attrs)], ["y"])
    g.validate()
    return g, Values({"x": x}, {})


@pytest.fixture(scope="module")
def xla_norms() -> dict[str, tuple[Graph, Values, np.ndarray, np.ndarray, Tolerance]]:
    """Each norm case through TF eager (the reference, with its float64 twin) and XLA (the pipeline)."""
    from fuzzer.targets.tf_targets import TFSource, pin_threads

    pin_threads()
    out = {}
    for key in NORMS:
        g, v = norm_case(key)
        src = TFSource(g, v)
        wide = promote_floats(g, v, check=False)
        assert wide is not None
        ref = Reference("tf", src.run_eager(), TFSource(*wide).run_eager())
        out[key] = (g, v, ref.outputs[0], src.compile_xla()()[0], ref.tolerances()[0])
    return out


@pytest.mark.parametrize("key", sorted(NORMS))
def test_real_xla_normalisation_near_zero_is_noise(key: str, xla_norms: dict) -> None:
    g, v, ref, got, tol = xla_norms[key]
    assert mismatches(ref, got, tol), "premise: XLA's result is outside the tolerance derived from float64"
    why = explain(g, "n0", {"x": v.inputs["x"], "y": ref}, {"x": v.inputs["x"], "y": got}, {"y": tol})
    assert "reduction-order rounding" in why, why


@pytest.mark.parametrize("key, wrong", [("layer", {"num_dims": 2}), ("layer", {"eps": 1e-5}),
                                        ("group", {"num_groups": 4}), ("group", {"eps": 1e-5})])
def test_wrong_normalisation_is_not_noise(key: str, wrong: dict, xla_norms: dict) -> None:
    """A backend that normalises over the wrong axes or groups, or ignores eps, is a bug on the same data."""
    g, v, ref, _, tol = xla_norms[key]
    node = g.nodes[0]
    (bad,) = LOWER.call(node.op, [v.inputs["x"]], {**node.attrs, **wrong})
    assert mismatches(ref, bad, tol)
    assert explain(g, "n0", {"x": v.inputs["x"], "y": ref}, {"x": v.inputs["x"], "y": bad}, {"y": tol}) == ""


def test_batchnorm_folded_into_scale_and_shift_is_noise() -> None:
    """Inference BatchNorm on inputs near their running mean, by hand in float32: a reference that centres
    first (x - m is exact here) against a backend that folds it to x*s + (b - m*s), as graph optimisers
    do. The folded products round by eps*|m|*s before they cancel: more than the tolerance derived from
    the accurate reference allows where the output is near zero, and within the n = 1 floor."""
    rng = np.random.default_rng(9)
    c = 6
    x = (1000.0 + rng.standard_normal((4, c, 5, 5))).astype(np.float32)
    m = (1000.0 + 0.1 * rng.standard_normal(c)).astype(np.float32)
    var = rng.uniform(0.5, 2.0, c).astype(np.float32)
    wt, b = rng.uniform(0.5, 2.0, c).astype(np.float32), rng.standard_normal(c).astype(np.float32)

    def ch(a: np.ndarray) -> np.ndarray:
        return a.reshape(1, c, 1, 1)

    def centred(dtype: type) -> np.ndarray:
        xs, ms, vs, ws, bs = (a.astype(dtype) for a in (x, m, var, wt, b))
        return ((xs - ch(ms)) / np.sqrt(ch(vs) + dtype(1e-5)) * ch(ws) + ch(bs)).astype(dtype)

    ref = centred(np.float32)
    tol = derive_tolerance(ref, centred(np.float64), "float32")
    s = (wt / np.sqrt(var + np.float32(1e-5))).astype(np.float32)
    got = (x * ch(s) + ch(b - m * s)).astype(np.float32)
    assert mismatches(ref, got, tol), "premise: the folded form is outside the derived tolerance"
    leaves = {"x": x, "m": m, "v": var, "wt": wt, "b": b}
    g = graph_of(leaves, [("BatchNorm", ["x", "m", "v", "wt", "b"], "y", {"eps": 1e-5, "weight": True, "bias": True},
                           "bn")], {"y": TensorType(x.shape, "float32")}, weights=("m", "v", "wt", "b"))
    assert "reduction-order rounding" in explain(g, "bn", {**leaves, "y": ref}, {**leaves, "y": got}, {"y": tol})
    # The same fold with the running mean off by 0.01: no rounding does that.
    wrong = (x * ch(s) + ch(b - (m + np.float32(0.01)) * s)).astype(np.float32)
    assert explain(g, "bn", {**leaves, "y": ref}, {**leaves, "y": wrong}, {"y": tol}) == ""
