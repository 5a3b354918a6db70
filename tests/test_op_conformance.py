"""Per-op conformance: for every spec and every dtype it declares, eager torch and eager TF
agree with the independent numpy reference on random valid shapes and values.

This is the check that catches a lowering computing the wrong function (NNSmith's TF ArgMin
computed argmax for years).
"""

from __future__ import annotations

import numpy as np
import pytest

from generators.emit.numpy_eval import run_numpy
from generators.emit.tf_function import run_tf
from generators.emit.torch_module import run_torch
from generators.generate import single_op_graph
from generators.ir import Graph
from generators.ops import REGISTRY
from generators.values import Values, find_values

SEEDS = 4
TOL = {"float16": (1e-2, 1e-2), "float32": (1e-4, 1e-5), "float64": (1e-9, 1e-11)}

CASES = [(op, dt) for op in sorted(REGISTRY) for dt in REGISTRY[op].dtypes]


def distinct_values(graph: Graph, values: Values, rng: np.random.Generator) -> Values:
    """Tie-free data inputs for ops whose index outputs depend on the order among equal values."""
    out = {}
    for name, arr in {**values.inputs, **values.weights}.items():
        if arr.dtype.kind in "fi" and arr.size and name in graph.nodes[0].inputs[:1]:
            assert arr.size <= 256, "tie-sensitive cases are generated with at most 256 elements per tensor"
            perm = rng.permutation(arr.size) - arr.size // 2
            scale = 0.01 if arr.dtype.kind == "f" else 1
            arr = (perm * scale).reshape(arr.shape).astype(arr.dtype)
        out[name] = arr
    return Values({k: out[k] for k in values.inputs}, {k: out[k] for k in values.weights})


def assert_agrees(got: np.ndarray, want: np.ndarray, dtype: str, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    assert str(got.dtype) == str(want.dtype), f"{what}: dtype {got.dtype} != reference {want.dtype}"
    if got.dtype.kind == "f":
        rtol, atol = TOL[str(got.dtype)]
        g, w = got.astype(np.float64), want.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(w[np.isfinite(w)]), initial=0.0)))
        bad = ~np.isclose(g, w, rtol=rtol, atol=atol * scale, equal_nan=True)
        if bad.any():
            i = tuple(int(x) for x in np.argwhere(bad)[0])
            raise AssertionError(f"{what}: {int(bad.sum())}/{bad.size} elements differ, "
                                 f"e.g. at {i}: {g[i]!r} vs reference {w[i]!r}")
    else:
        bad = got != want
        if np.any(bad):
            i = tuple(int(x) for x in np.argwhere(bad)[0]) if got.ndim else ()
            raise AssertionError(f"{what}: {int(np.sum(bad))}/{got.size} elements differ, "
                                 f"e.g. at {i}: {got[i]!r} vs reference {want[i]!r}")


@pytest.mark.parametrize(("op", "dtype"), CASES, ids=[f"{o}-{d}" for o, d in CASES])
def test_torch_and_tf_agree_with_numpy(op: str, dtype: str) -> None:
    spec = REGISTRY[op]
    checked = 0
    for seed in range(SEEDS):
        graph = single_op_graph(op, dtype, seed, max_elems=256 if spec.tie_sensitive else 4096)
        values, report = find_values(graph, seed)
        assert report.ok, f"value search failed on a single {op}: {report.problems}"
        if spec.tie_sensitive:
            values = distinct_values(graph, values, np.random.default_rng(seed))
        want = run_numpy(graph, values.inputs, values.weights)
        node = graph.nodes[0]
        where = f"{op}[{dtype}] attrs={node.attrs} in={[graph.tensors[t].shape for t in node.inputs]}"
        for out, name in zip(want, graph.outputs):
            assert str(out.dtype) == graph.tensors[name].dtype, f"{where}: numpy reference dtype {out.dtype}"
        for fw, run in (("torch", run_torch), ("tf", run_tf)):
            got = run(graph, values.inputs, values.weights)
            for k, (g, w) in enumerate(zip(got, want)):
                assert_agrees(np.asarray(g), w, dtype, f"{fw} {where} output {k}")
        checked += 1
    assert checked == SEEDS
