"""Shares → weights and instance counts: the guarantees, as properties and examples."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reward_ingest.weights import (
    TOLERANCE,
    apply_floor,
    largest_change,
    normalise,
    plan_instance_counts,
    plan_weights,
)

NAMES = ["A", "B", "C", "D", "E", "F"]

raw = st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False)


@st.composite
def problems(draw: st.DrawFn) -> tuple[dict[str, float], dict[str, float], float, float]:
    """(shares, current, min_weight, max_step) over 1..6 variants."""
    n = draw(st.integers(1, len(NAMES)))
    names = NAMES[:n]
    shares = {name: draw(raw) for name in names}
    current = {name: draw(raw) for name in names}
    min_weight = draw(st.one_of(st.just(0.0), st.floats(0.0, 0.99)))
    max_step = draw(st.floats(1e-3, 1.0))
    return shares, current, min_weight, max_step


def _floored(split: dict[str, float], min_weight: float, slack: float = TOLERANCE) -> bool:
    floor = min(min_weight, 1.0 / len(split))
    return all(w >= floor - slack for w in split.values())


@settings(max_examples=500, deadline=None)
@given(problems())
def test_sums_to_one_and_respects_the_floor(
        problem: tuple[dict[str, float], dict[str, float], float, float]) -> None:
    shares, current, min_weight, max_step = problem
    after = plan_weights(shares, current, min_weight=min_weight, max_step=max_step)
    assert list(after) == list(shares)
    assert math.isclose(math.fsum(after.values()), 1.0, abs_tol=TOLERANCE)
    assert _floored(after, min_weight)


@settings(max_examples=500, deadline=None)
@given(problems())
def test_moves_at_most_max_step_from_a_floored_current_split(
        problem: tuple[dict[str, float], dict[str, float], float, float]) -> None:
    shares, current, min_weight, max_step = problem
    start = dict(zip(current, normalise(list(current.values())), strict=True))
    assume(_floored(start, min_weight, slack=0.0))
    after = plan_weights(shares, current, min_weight=min_weight, max_step=max_step)
    assert largest_change(start, after) <= max_step + TOLERANCE


@settings(max_examples=300, deadline=None)
@given(problems())
def test_each_weight_moves_toward_its_target_and_arrives(
        problem: tuple[dict[str, float], dict[str, float], float, float]) -> None:
    shares, current, min_weight, max_step = problem
    names = list(shares)
    target = dict(zip(names, apply_floor(normalise(list(shares.values())), min_weight),
                      strict=True))
    start = dict(zip(names, apply_floor(normalise([current[n] for n in names]), min_weight),
                     strict=True))
    after = plan_weights(shares, current, min_weight=min_weight, max_step=max_step)
    for name in names:
        low, high = sorted((start[name], target[name]))
        assert low - TOLERANCE <= after[name] <= high + TOLERANCE
    # Pushing again and again reaches the target in ceil(distance / max_step) pushes.
    steps = math.ceil(largest_change(start, target) / max_step - TOLERANCE)
    weights = current
    for _ in range(max(steps, 1)):
        weights = plan_weights(shares, weights, min_weight=min_weight, max_step=max_step)
    assert largest_change(target, weights) <= 1e-6


@settings(max_examples=300, deadline=None)
@given(st.lists(raw, min_size=1, max_size=6), st.floats(0.0, 0.99))
def test_apply_floor_keeps_the_order_and_the_ratios_above_the_floor(
        values: list[float], floor: float) -> None:
    shares = normalise(values)
    out = apply_floor(shares, floor)
    assert math.isclose(math.fsum(out), 1.0, abs_tol=TOLERANCE)
    effective = min(floor, 1.0 / len(out))
    assert all(w >= effective - TOLERANCE for w in out)
    for i, j in [(i, j) for i in range(len(out)) for j in range(len(out))]:
        if shares[i] > shares[j]:
            assert out[i] >= out[j] - TOLERANCE


def test_examples() -> None:
    # Two variants at 50/50, the policy wants 90/10: one step of 0.25 gives 75/25.
    after = plan_weights({"A": 0.9, "B": 0.1}, {"A": 1.0, "B": 1.0},
                         min_weight=0.05, max_step=0.25)
    assert after == pytest.approx({"A": 0.75, "B": 0.25})
    # The floor: a policy sending everything to A still leaves B 5 %.
    after = plan_weights({"A": 1.0, "B": 0.0}, {"A": 0.9, "B": 0.1},
                         min_weight=0.05, max_step=1.0)
    assert after == pytest.approx({"A": 0.95, "B": 0.05})
    # Relative weights: 2/2/4 on the endpoint is 25/25/50.
    after = plan_weights({"A": 1, "B": 1, "C": 2}, {"A": 2, "B": 2, "C": 4},
                         min_weight=0.0, max_step=0.1)
    assert after == pytest.approx({"A": 0.25, "B": 0.25, "C": 0.5})
    # An endpoint below the floor is lifted to it even beyond max_step (the floor wins).
    after = plan_weights({"A": 0.5, "B": 0.5}, {"A": 1.0, "B": 0.0},
                         min_weight=0.2, max_step=0.01)
    assert after["B"] == pytest.approx(0.21)
    # n · min_weight ≥ 1: only the uniform split meets the floor.
    after = plan_weights({"A": 1.0, "B": 0.0, "C": 0.0}, {"A": 1, "B": 0, "C": 0},
                         min_weight=0.5, max_step=1.0)
    assert after == pytest.approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})


def test_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="same variants"):
        plan_weights({"A": 1.0}, {"B": 1.0}, min_weight=0.0, max_step=0.5)
    with pytest.raises(ValueError, match="finite and non-negative"):
        plan_weights({"A": -1.0}, {"A": 1.0}, min_weight=0.0, max_step=0.5)
    with pytest.raises(ValueError, match="finite and non-negative"):
        plan_weights({"A": math.nan}, {"A": 1.0}, min_weight=0.0, max_step=0.5)
    with pytest.raises(ValueError, match="max_step"):
        plan_weights({"A": 1.0}, {"A": 1.0}, min_weight=0.0, max_step=0.0)
    with pytest.raises(ValueError, match="min_weight"):
        plan_weights({"A": 1.0}, {"A": 1.0}, min_weight=1.0, max_step=0.5)
    with pytest.raises(ValueError, match="no variants"):
        plan_weights({}, {}, min_weight=0.0, max_step=0.5)


@st.composite
def sizings(draw: st.DrawFn) -> tuple[dict[str, float], int, int, int]:
    n = draw(st.integers(1, len(NAMES)))
    weights = {name: draw(raw) for name in NAMES[:n]}
    low = draw(st.integers(0, 3))
    high = draw(st.integers(max(low, 1), 10))
    total = draw(st.integers(n * low, n * high))
    return weights, total, low, high


@settings(max_examples=500, deadline=None)
@given(sizings())
def test_instance_counts_sum_respect_bounds_and_follow_the_weights(
        sizing: tuple[dict[str, float], int, int, int]) -> None:
    weights, total, low, high = sizing
    counts = plan_instance_counts(weights, total, min_per_variant=low, max_per_variant=high)
    assert list(counts) == list(weights)
    assert sum(counts.values()) == total
    assert all(low <= c <= high for c in counts.values())
    shares = normalise(list(weights.values()))
    values = list(counts.values())
    for i in range(len(values)):
        for j in range(len(values)):
            if shares[i] > shares[j]:
                assert values[i] >= values[j]
    # Unbounded by the cap and floor, each count is within one of its exact quota.
    if low == 0 and high >= total:
        for share, count in zip(shares, values, strict=True):
            assert abs(count - share * total) < 1.0 + TOLERANCE


def test_instance_count_examples_and_refusals() -> None:
    assert plan_instance_counts({"A": 0.75, "B": 0.25}, 4) == {"A": 3, "B": 1}
    assert plan_instance_counts({"A": 0.95, "B": 0.05}, 4) == {"A": 3, "B": 1}
    assert plan_instance_counts({"A": 0.95, "B": 0.05}, 4, max_per_variant=2) == {"A": 2, "B": 2}
    assert plan_instance_counts({"A": 1.0, "B": 1.0}, 3) == {"A": 2, "B": 1}
    with pytest.raises(ValueError, match="cannot be split"):
        plan_instance_counts({"A": 1.0, "B": 1.0}, 1)
    with pytest.raises(ValueError, match="cannot be split"):
        plan_instance_counts({"A": 1.0, "B": 1.0}, 5, max_per_variant=2)
    with pytest.raises(ValueError, match="min_per_variant"):
        plan_instance_counts({"A": 1.0}, 2, min_per_variant=3, max_per_variant=2)
