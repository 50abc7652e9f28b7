"""Inverse-CDF sampling matches the probabilities; sticky units keep their arm."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from bandit import make_policy, sample, unit_uniform


def test_choice_frequencies_match_probabilities_chi_square() -> None:
    probabilities = {"A": 0.5, "B": 0.3, "C": 0.0, "D": 0.15, "E": 0.05}
    rng = random.Random(20261125)
    n = 100_000
    counts = dict.fromkeys(probabilities, 0)
    for _ in range(n):
        counts[sample(probabilities, rng.random())] += 1
    assert counts["C"] == 0  # probability 0 is never chosen
    arms = [a for a, p in probabilities.items() if p > 0]
    observed = [counts[a] for a in arms]
    expected = [probabilities[a] * n for a in arms]
    # Goodness of fit at the 0.1% level: a correct sampler fails 1 seed in 1000;
    # an off-by-one-arm or biased CDF walk moves thousands of draws and fails always.
    _, p_value = stats.chisquare(observed, expected)
    assert p_value > 0.001


def test_sample_walks_the_cdf_in_mapping_order() -> None:
    probabilities = {"A": 0.25, "B": 0.0, "C": 0.75}
    assert sample(probabilities, 0.0) == "A"
    assert sample(probabilities, 0.2499999) == "A"
    assert sample(probabilities, 0.25) == "C"
    assert sample(probabilities, 0.9999999999) == "C"
    # Rounding leaves the total a hair under 1: the last positive arm takes the rest.
    assert sample({"A": 0.1, "B": 0.2, "C": 0.7 - 1e-15, "D": 0.0}, 1 - 1e-16) == "C"


@pytest.mark.parametrize("u", [-0.1, 1.0, float("nan")])
def test_sample_refuses_u_outside_the_unit_interval(u: float) -> None:
    with pytest.raises(ValueError, match="u must be in"):
        sample({"A": 1.0}, u)


def test_sample_refuses_all_zero() -> None:
    with pytest.raises(ValueError, match="no arm"):
        sample({"A": 0.0}, 0.5)


def test_unit_uniform_is_uniform_and_independent_across_experiments() -> None:
    draws = np.array([unit_uniform("exp", f"user-{i}") for i in range(20_000)])
    assert draws.min() >= 0.0
    assert draws.max() < 1.0
    # Kolmogorov–Smirnov against U(0, 1) at the 0.1% level.
    assert stats.kstest(draws, "uniform").pvalue > 0.001
    other = np.array([unit_uniform("exp2", f"user-{i}") for i in range(20_000)])
    # Independent uniforms: correlation ~ N(0, 1/n), so |r| < 4/sqrt(n) = 0.028.
    assert abs(np.corrcoef(draws, other)[0, 1]) < 0.028
    # Prefix ambiguity cannot make two pairs collide.
    assert unit_uniform("ab", "c") != unit_uniform("a", "bc")


def test_sticky_units_keep_their_arm_while_the_shares_hold() -> None:
    policy = make_policy({"type": "static", "weights": {"A": 1, "B": 1, "C": 2}}, ["A", "B", "C"])
    probabilities = policy.probabilities()
    first = {u: sample(probabilities, unit_uniform("exp", u)) for u in map(str, range(2000))}
    again = {u: sample(policy.probabilities(), unit_uniform("exp", u)) for u in first}
    assert first == again
    # The units spread over the arms in proportion to the shares (binomial, 4 sd).
    share_c = sum(arm == "C" for arm in first.values()) / len(first)
    assert abs(share_c - 0.5) < 4 * (0.25 / len(first)) ** 0.5
