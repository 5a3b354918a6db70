"""Slowdown statistics on synthetic timing samples (pure statistics: synthetic numbers are the input)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from oracles.slowdown import judge_slowdown, mann_whitney_u

# The textbook example (Shier, "Statistics: 2.3 The Mann-Whitney U Test", 2004) as worked in scipy's
# `mannwhitneyu` documentation: U_males = 17, so U_females = 3. Small samples without ties get the exact
# test: 7 of the C(9, 4) = 126 equally likely rankings give the females a U of 3 or less (the documented
# two-sided exact p of 0.1111 is twice this).
MALES = [19, 22, 16, 29, 24]
FEMALES = [20, 11, 17, 12]


def test_mann_whitney_textbook_value() -> None:
    assert mann_whitney_u(FEMALES, MALES) == pytest.approx(7 / 126, rel=1e-12)
    assert mann_whitney_u(MALES, FEMALES) > 0.9  # the other direction: no evidence at all


def test_mann_whitney_ties_and_degenerate_samples() -> None:
    # by hand: pooled 1,2,3,3,3,4,5,5 has ranks 1,2,4,4,4,6,7.5,7.5, so b's rank sum is 25 and
    # U_b = 25 - 4*5/2 = 15; ties of 3 and 2 give var = 4*4/12 * (9 - (24 + 6) / (8*7)).
    var = 16 / 12 * (9 - (3 ** 3 - 3 + 2 ** 3 - 2) / 56)
    expected = 0.5 * math.erfc((15 - 8 - 0.5) / math.sqrt(var) / math.sqrt(2))
    assert mann_whitney_u([1, 2, 3, 3], [3, 4, 5, 5]) == pytest.approx(expected, rel=1e-12)
    assert mann_whitney_u([1.0] * 5, [1.0] * 5) == 1.0
    assert mann_whitney_u([], [1.0]) == 1.0


def timings(rng: np.random.Generator, median: float, n: int = 20, spread: float = 0.05) -> list[float]:
    """Run times with multiplicative jitter and an occasional outlier, like a busy machine."""
    t = median * np.exp(rng.normal(0, spread, n))
    t[rng.random(n) < 0.1] *= 3
    return t.tolist()


def test_confirmed_3x_slowdown_is_slow() -> None:
    rng = np.random.default_rng(1)
    v = judge_slowdown(timings(rng, 0.010), timings(rng, 0.030), timings(rng, 0.010), timings(rng, 0.030))
    assert v.slow and v.reason == "confirmed"
    assert v.ratio == pytest.approx(3, rel=0.2) and v.confirm_ratio == pytest.approx(3, rel=0.2)
    assert v.p_value < 1e-4 and v.confirm_p_value < 1e-4


def test_3x_below_the_absolute_floor_is_not_slow() -> None:
    rng = np.random.default_rng(2)
    v = judge_slowdown(timings(rng, 1e-4), timings(rng, 3e-4), timings(rng, 1e-4), timings(rng, 3e-4))
    assert not v.slow and "floor" in v.reason and v.ratio > 2


def test_3x_once_but_not_on_the_second_measurement_is_not_slow() -> None:
    rng = np.random.default_rng(3)
    v = judge_slowdown(timings(rng, 0.010), timings(rng, 0.030), timings(rng, 0.010), timings(rng, 0.011))
    assert not v.slow and v.reason.startswith("not confirmed") and v.confirm_ratio < 2


def test_unconfirmed_reports_the_statistics() -> None:
    rng = np.random.default_rng(4)
    v = judge_slowdown(timings(rng, 0.010), timings(rng, 0.030), None, None)
    assert not v.slow and v.reason == "unconfirmed" and v.ratio > 2 and v.p_value < 0.01
    assert v.confirm_ratio is None and v.confirm_p_value is None
    json.dumps(v.to_json(), allow_nan=False)


def test_noisy_equal_distributions_are_not_slow() -> None:
    rng = np.random.default_rng(5)
    low, high = timings(rng, 0.02, spread=0.5), timings(rng, 0.02, spread=0.5)
    v = judge_slowdown(low, high, low, high)
    assert not v.slow and v.p_value > 0.05


def test_too_few_runs_is_not_slow() -> None:
    v = judge_slowdown([0.01] * 5, [0.05] * 5, [0.01] * 5, [0.05] * 5)
    assert not v.slow and "too few runs" in v.reason


def test_a_few_outliers_do_not_make_a_slowdown() -> None:
    """Mean-based judging would call this 2x+; medians and ranks do not."""
    rng = np.random.default_rng(6)
    low = timings(rng, 0.010, spread=0.02)
    high = timings(rng, 0.010, spread=0.02)
    high[:3] = [1.0, 1.0, 1.0]
    assert np.mean(high) > 2 * np.mean(low)
    v = judge_slowdown(low, high, low, high)
    assert not v.slow and v.ratio < 2
