"""Derived tolerances pass rounding noise and catch miscompilations; the record says which is which.

The "graph" here is a small MLP head (matmul, bias, tanh, leaky relu, matmul, softmax) computed in
numpy: the float32 reference, its float64 twin, then the same function computed as another correct
backend would (another summation order, float64 rounded once, another tanh formula) and as a buggy
one would (softmax over the wrong axis, a transposed output, an off-by-one index, a wrong constant).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from oracles import tolerance
from oracles.compare import PRECISION_FACTOR, CompareRecord, compare_output, compare_outputs
from oracles.tolerance import Tolerance, derive_tolerance


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def matmul_reversed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The same product, accumulated over k backwards, one rank-1 update at a time (no BLAS blocking)."""
    acc = np.zeros((a.shape[0], b.shape[1]), a.dtype)
    for k in reversed(range(a.shape[1])):
        acc += a[:, k:k + 1] * b[k:k + 1, :]
    return acc


def tanh_via_exp(z: np.ndarray) -> np.ndarray:
    e = np.exp(2 * z)
    return (e - 1) / (e + 1)


def mlp(params: dict[str, np.ndarray], dtype: type, *, mm=np.matmul, tanh=np.tanh, axis: int = -1,
        slope: float = 0.01) -> np.ndarray:
    x, w1, b1, w2 = (params[k].astype(dtype) for k in ("x", "w1", "b1", "w2"))
    h = tanh(mm(x, w1) + b1)
    h = np.where(h > 0, h, dtype(slope) * h)
    return softmax(mm(h, w2), axis=axis)


@pytest.fixture(scope="module")
def params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {"x": rng.standard_normal((8, 64)), "w1": rng.standard_normal((64, 32)) / 4,
            "b1": rng.standard_normal(32), "w2": rng.standard_normal((32, 8)) * 2}


@pytest.fixture(scope="module")
def ref_and_tol(params: dict[str, np.ndarray]) -> tuple[np.ndarray, Tolerance]:
    ref = mlp(params, np.float32)
    return ref, derive_tolerance(ref, mlp(params, np.float64), "float32")


@pytest.mark.parametrize("variant", ["reversed_sum", "float64_rounded", "tanh_via_exp"])
def test_rounding_noise_passes(params: dict[str, np.ndarray], ref_and_tol: tuple[np.ndarray, Tolerance],
                               variant: str) -> None:
    ref, tol = ref_and_tol
    got = {"reversed_sum": lambda: mlp(params, np.float32, mm=matmul_reversed),
           "float64_rounded": lambda: mlp(params, np.float64).astype(np.float32),
           "tanh_via_exp": lambda: mlp(params, np.float32, mm=matmul_reversed, tanh=tanh_via_exp)}[variant]()
    assert not np.array_equal(got, ref)  # the noise is real
    rec = compare_output(ref, got, tol)
    assert rec.klass == "ok", rec.to_json()
    assert not rec.mismatch and rec.share_over_tol == 0.0 and rec.argmax_agree == 1.0


@pytest.mark.parametrize("bug", ["softmax_wrong_axis", "transposed", "off_by_one_index", "wrong_slope"])
def test_miscompilations_are_semantic(params: dict[str, np.ndarray], ref_and_tol: tuple[np.ndarray, Tolerance],
                                      bug: str) -> None:
    ref, tol = ref_and_tol
    assert ref.shape[0] == ref.shape[1]  # square, so a transpose keeps the shape
    got = {"softmax_wrong_axis": lambda: mlp(params, np.float32, axis=0),
           "transposed": lambda: np.ascontiguousarray(ref.T),
           "off_by_one_index": lambda: ref[:, (np.arange(ref.shape[1]) + 1) % ref.shape[1]],
           "wrong_slope": lambda: mlp(params, np.float32, slope=0.02)}[bug]()
    rec = compare_output(ref, got, tol)
    assert rec.klass == "semantic", rec.to_json()
    assert rec.mismatch and rec.shape_equal and rec.dtype_equal
    assert rec.share_over_tol > 0 and rec.min_passing_atol > tol.atol


def test_semantic_bugs_flip_argmax(params: dict[str, np.ndarray], ref_and_tol: tuple[np.ndarray, Tolerance]) -> None:
    ref, tol = ref_and_tol
    rec = compare_output(ref, np.ascontiguousarray(ref.T), tol)
    assert rec.argmax_agree is not None and rec.argmax_agree < 1.0


def test_min_passing_atol_is_the_boundary(params: dict[str, np.ndarray],
                                          ref_and_tol: tuple[np.ndarray, Tolerance]) -> None:
    ref, tol = ref_and_tol
    got = mlp(params, np.float32, slope=0.02)
    need = compare_output(ref, got, tol).min_passing_atol
    assert compare_output(ref, got, Tolerance(need * (1 + 1e-9), tol.rtol)).share_over_tol == 0.0
    assert compare_output(ref, got, Tolerance(need * 0.99, tol.rtol)).share_over_tol > 0.0


def test_gap_drives_the_tolerance() -> None:
    ref = np.array([1.0, 2.0, 3.0], np.float32)
    quiet = derive_tolerance(ref, ref.astype(np.float64), "float32")
    noisy = derive_tolerance(ref, ref.astype(np.float64) + 1e-4, "float32")
    assert quiet.atol == pytest.approx(tolerance.C_FLOOR * tolerance.EPS["float32"] * 3.0)
    assert noisy.atol == pytest.approx(tolerance.K_GAP * 1e-4)
    assert quiet.rtol == noisy.rtol == tolerance.RTOL["float32"]


def test_fallback_is_wider_and_scale_aware() -> None:
    ref = np.linspace(-50, 50, 11).astype(np.float32)
    with64 = derive_tolerance(ref, ref.astype(np.float64), "float32")
    without = derive_tolerance(ref, None, "float32")
    assert without.atol > with64.atol and without.rtol > with64.rtol
    assert derive_tolerance(ref * 10, None, "float32").atol == pytest.approx(10 * without.atol)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "bool"])
def test_ints_and_bools_are_exact(dtype: str) -> None:
    ref = np.arange(6).reshape(2, 3).astype(dtype)
    tol = derive_tolerance(ref, None, dtype)
    assert tol.exact
    assert compare_output(ref, ref.copy(), tol).klass == "ok"
    got = ref.copy()
    got.flat[-1] = not got.flat[-1] if dtype == "bool" else got.flat[-1] - 1
    rec = compare_output(ref, got, tol)
    assert rec.klass == "semantic" and rec.share_over_tol == pytest.approx(1 / 6)


def test_exact_compare_does_not_go_through_float64() -> None:
    big = np.array([2 ** 62, 2 ** 62 + 1], np.int64)
    rec = compare_output(big, big + np.array([0, 1]), derive_tolerance(big, None, "int64"))
    assert rec.klass == "semantic" and rec.share_over_tol == 0.5


def test_float16_without_float64_reference(params: dict[str, np.ndarray]) -> None:
    ref = mlp(params, np.float16)
    tol = derive_tolerance(ref, None, "float16")
    assert compare_output(ref, mlp(params, np.float32).astype(np.float16), tol).klass == "ok"
    assert compare_output(ref, mlp(params, np.float16, axis=0), tol).klass == "semantic"


def test_dtype_difference_is_a_finding_even_with_equal_values() -> None:
    ref = np.array([1, 2, 3], np.int64)
    rec = compare_output(ref, ref.astype(np.int32), Tolerance(0, 0))
    assert rec.klass == "semantic" and not rec.dtype_equal and rec.max_abs == 0.0
    assert "int64" in rec.note and "int32" in rec.note


def test_shape_difference() -> None:
    ref = np.zeros((2, 3), np.float32)
    rec = compare_output(ref, np.zeros((3, 2), np.float32), Tolerance(1e-5, 1e-4))
    assert rec.klass == "semantic" and not rec.shape_equal and rec.max_abs is None


def test_nan_inf_rules() -> None:
    tol = Tolerance(1e-6, 1e-4)
    ref = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    assert compare_output(ref, ref.copy(), tol).klass == "ok"
    flipped = np.array([np.nan, -np.inf, -np.inf, 1.0], np.float32)
    rec = compare_output(ref, flipped, tol)
    assert rec.klass == "semantic" and rec.nan_inf_vanished == 1 and rec.min_passing_atol == float("inf")
    appeared = np.array([np.nan, np.inf, -np.inf, np.nan], np.float32)
    rec = compare_output(ref, appeared, tol)
    assert rec.klass == "semantic" and rec.nan_inf_appeared == 1


def test_precision_class_for_small_exceedance() -> None:
    ref = np.linspace(1, 2, 12, dtype=np.float32).reshape(3, 4)
    tol = Tolerance(1e-7, 1e-4)
    rec = compare_output(ref, ref * np.float32(1 + 3e-4), tol)
    assert rec.klass == "precision" and rec.mismatch and rec.argmax_agree == 1.0
    rec = compare_output(ref, ref * np.float32(1 + 3e-4 * PRECISION_FACTOR), tol)
    assert rec.klass == "semantic"


def test_argmax_near_ties_are_not_flips() -> None:
    ref = np.array([[1.0, 1.0 + 1e-7, 0.0]], np.float32)
    got = np.array([[1.0 + 1e-7, 1.0, 0.0]], np.float32)
    rec = compare_output(ref, got, Tolerance(1e-6, 1e-4))
    assert rec.klass == "ok" and rec.argmax_agree == 1.0


@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (1,)])
def test_empty_rank0_and_single_element(shape: tuple[int, ...]) -> None:
    ref = np.full(shape, 1.5, np.float32)
    tol = derive_tolerance(ref, ref.astype(np.float64), "float32")
    rec = compare_output(ref, ref.copy(), tol)
    assert rec.klass == "ok" and rec.argmax_agree is None and rec.share_over_tol == 0.0
    if ref.size:
        assert compare_output(ref, ref + 1, tol).klass == "semantic"


def test_compare_outputs_counts_and_indices() -> None:
    a, b = np.ones(3, np.float32), np.zeros((2, 2), np.int64)
    tols = [Tolerance(1e-6, 1e-4), Tolerance(0, 0)]
    recs = compare_outputs([a, b], [a, b + 1], tols)
    assert [r.output_index for r in recs] == [0, 1] and [r.klass for r in recs] == ["ok", "semantic"]
    short = compare_outputs([a, b], [a], tols)
    assert len(short) == 1 and short[0].klass == "semantic" and "2 vs 1" in short[0].note


def test_record_json_round_trip() -> None:
    ref = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    got = np.array([[1.0, np.nan], [3.0, 4.0]], np.float32)
    rec = compare_output(ref, got, Tolerance(1e-6, 1e-4), output_index=2)
    text = json.dumps(rec.to_json(), allow_nan=False)
    back = CompareRecord.from_json(json.loads(text))
    assert back == rec and back.min_passing_atol == float("inf") and back.ref_shape == (2, 2)
