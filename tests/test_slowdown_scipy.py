"""The slowdown rank test is scipy's Mann-Whitney U: checked against an exact count done here by brute force,
and by the decisions judge_slowdown takes on clear and unclear timing samples (fixed numbers, no RNG)."""

from __future__ import annotations

from itertools import combinations

import pytest

from oracles.slowdown import judge_slowdown, mann_whitney_u

MS = 1e-3


def exact_less_p(a: list[float], b: list[float]) -> float:
    """P(U_a <= observed U_a) over every equally likely split of the pooled (tie-free) values: the exact
    one-sided p for "b is greater", counted the long way."""
    def u(xs: list[float], ys: list[float]) -> int:
        return sum(x > y for x in xs for y in ys)

    pooled = a + b
    observed = u(a, b)
    splits = list(combinations(range(len(pooled)), len(a)))
    hits = 0
    for idx in splits:
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in idx]
        hits += u(xs, ys) <= observed
    return hits / len(splits)


@pytest.mark.parametrize(("a", "b"), [
    ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]),
    ([1.5, 4.0, 2.5, 7.0], [3.0, 6.0, 8.0, 9.0, 5.5]),
    ([10.0, 12.0, 11.0, 14.0, 13.0, 9.0], [9.5, 10.5, 15.0, 16.0, 12.5, 11.5]),
    ([5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 4.0]),
])
def test_small_tie_free_samples_get_the_exact_p(a: list[float], b: list[float]) -> None:
    assert mann_whitney_u(a, b) == pytest.approx(exact_less_p(a, b), rel=1e-9)


def test_clear_slowdown_is_slow_and_confirmed() -> None:
    low = [x * MS for x in (10.0, 10.4, 9.8, 10.9, 10.1, 9.7, 10.6, 10.2, 9.9, 10.3, 11.0, 10.05)]
    high = [x * MS for x in (30.0, 31.5, 29.2, 33.0, 30.4, 28.9, 32.2, 30.8, 29.7, 31.0, 34.5, 30.1)]
    v = judge_slowdown(low, high, list(reversed(low)), high[::2] + high[1::2])
    assert v.slow and v.reason == "confirmed"
    assert v.p_value < 1e-4 and v.confirm_p_value is not None and v.confirm_p_value < 1e-4
    assert v.ratio == pytest.approx(3.0, rel=0.05)


def test_bimodal_times_with_a_large_median_ratio_are_unclear() -> None:
    # Both levels are sometimes fast and sometimes slow; the higher level is slow a little more often, which
    # moves its median 8x but is no evidence that it is slower: the rank test, not the ratio, decides.
    low = [x * MS for x in (1.0, 1.1, 1.2, 1.05, 1.15, 0.95, 10.0, 10.5, 11.0, 9.5, 10.2, 1.02)]
    high = [x * MS for x in (1.0, 1.12, 1.22, 1.07, 10.1, 10.4, 11.2, 9.7, 10.3, 10.6, 9.9, 1.01)]
    v = judge_slowdown(low, high, low, high)
    assert v.ratio > 5 and not v.slow
    assert v.p_value > 0.05 and v.reason.startswith("p ")


def test_a_faster_higher_level_is_never_a_slowdown() -> None:
    low = [x * MS for x in (30.0, 31.0, 29.0, 32.0, 30.5, 29.5, 31.5, 30.2, 29.8, 30.7)]
    high = [x * MS for x in (10.0, 11.0, 9.0, 12.0, 10.5, 9.5, 11.5, 10.2, 9.8, 10.7)]
    assert mann_whitney_u(low, high) > 0.99
    assert not judge_slowdown(low, high, low, high).slow


def test_nothing_to_compare_gives_no_evidence() -> None:
    assert mann_whitney_u([], [1.0, 2.0]) == 1.0
    assert mann_whitney_u([2.0] * 12, [2.0] * 12) == 1.0
