"""Invariants every context-free policy keeps, over random histories (hypothesis)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit import ArmError, Feedback, FeedbackError, Policy, load_policy, make_policy

SPECS: list[dict[str, Any]] = [
    {"type": "static", "weights": {"A": 3, "B": 1}},
    {"type": "static"},
    {"type": "epsilon_greedy", "epsilon": 0.2},
    {"type": "epsilon_greedy", "epsilon": 0.3, "decay": 0.01, "discount": 0.99},
    {"type": "thompson", "samples": 500},
    {"type": "thompson", "discount": 0.95, "floor": 0.05, "samples": 500},
    {"type": "thompson", "family": "gaussian", "samples": 500},
    {"type": "ucb1"},
    {"type": "ucb1", "alpha": 0.5, "discount": 0.9, "floor": 0.1},
    # Tiny blocks and a lax δ so random histories do restart and the detector's
    # state is non-trivial in the snapshot.
    {"type": "thompson", "samples": 500, "change_detection": {"block": 2, "delta": 0.3}},
    {"type": "ucb1", "change_detection": {"block": 1, "delta": 0.5, "max_blocks": 4}},
    {"type": "epsilon_greedy", "discount": 0.9, "change_detection": {}},
]
SPEC_IDS = [f"{s['type']}-{i}" for i, s in enumerate(SPECS)]

# One step of a random history: learn from a batch, add an arm, or remove one.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.lists(
            st.tuples(st.integers(0, 9), st.floats(0, 1)), min_size=1, max_size=8)),
        st.tuples(st.just("add"), st.none()),
        st.tuples(st.just("remove"), st.integers(0, 9)),
    ),
    max_size=12,
)


def replay(policy: Policy, history: list[tuple[str, Any]]) -> None:
    """Apply a generated history; arm indexes wrap around the current arms."""
    added = 0
    for op, arg in history:
        arms = policy.arms
        if op == "update":
            policy.update(Feedback(arm=arms[i % len(arms)], reward=r, probability=0.5)
                          for i, r in arg)
        elif op == "add":
            added += 1
            if policy.floor * (len(arms) + 1) <= 1.0:
                policy.add_arm(f"new{added}")
        elif len(arms) > 1:
            policy.remove_arm(arms[arg % len(arms)])


def eligible_subsets(arms: tuple[str, ...]) -> list[tuple[str, ...] | None]:
    return [None, arms[:1], arms[::2], arms[-2:]]


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@settings(max_examples=30, deadline=None)
@given(history=steps)
def test_probabilities_are_a_distribution_over_eligible_arms(
    spec: dict[str, Any], history: list[tuple[str, Any]]
) -> None:
    policy = make_policy(spec, ["A", "B", "C"], seed=3)
    replay(policy, history)
    for eligible in eligible_subsets(policy.arms):
        probs = policy.probabilities(eligible=eligible)
        offered = set(policy.arms if eligible is None else eligible)
        assert list(probs) == list(policy.arms)  # stable order, every arm present
        assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-12)
        for arm, p in probs.items():
            if arm in offered:
                assert p >= policy.floor - 1e-12
            else:
                assert p == 0.0


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@settings(max_examples=30, deadline=None)
@given(history=steps)
def test_snapshot_round_trip_is_exact(spec: dict[str, Any], history: list[tuple[str, Any]]) -> None:
    policy = make_policy(spec, ["A", "B", "C"], seed=11)
    replay(policy, history)
    restored = load_policy(policy.snapshot())
    assert restored.snapshot() == policy.snapshot()
    assert restored.version == policy.version
    for eligible in eligible_subsets(policy.arms):
        assert restored.probabilities(eligible=eligible) == policy.probabilities(eligible=eligible)
    # ...and they stay identical as both keep learning.
    more = [Feedback(arm=policy.arms[0], reward=1.0, probability=0.5)]
    policy.update(more)
    restored.update(more)
    assert restored.probabilities() == policy.probabilities()


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@settings(max_examples=20, deadline=None)
@given(history=steps)
def test_probabilities_are_a_function_of_the_state(
    spec: dict[str, Any], history: list[tuple[str, Any]]
) -> None:
    first = make_policy(spec, ["A", "B", "C"], seed=5)
    second = make_policy(spec, ["A", "B", "C"], seed=5)
    replay(first, history)
    replay(second, history)
    assert first.probabilities() == first.probabilities() == second.probabilities()


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_adding_and_removing_an_arm_keeps_the_others_statistics(spec: dict[str, Any]) -> None:
    policy = make_policy(spec, ["A", "B", "C"], seed=1)
    policy.update([Feedback("A", 1.0, 0.5)] * 20 + [Feedback("B", 0.0, 0.5)] * 20)
    before = load_policy(policy.snapshot())
    policy.add_arm("D")
    policy.remove_arm("C")
    assert policy.arms == ("A", "B", "D")
    state = policy._state()["stats"]  # the per-arm statistics, in arm order
    old = before._state()["stats"]
    for key in ("n", "total", "total_sq"):
        assert state[key][:2] == old[key][:2]
        assert state[key][2] == 0.0


def test_thompson_moves_mass_to_the_better_arm_and_new_arms_get_tried() -> None:
    policy = make_policy({"type": "thompson"}, ["A", "B"], seed=2)
    policy.update([Feedback("A", 1.0, 0.5)] * 30 + [Feedback("B", 0.0, 0.5)] * 30)
    assert policy.probabilities()["A"] > 0.99
    policy.add_arm("C")  # prior Beta(1,1) vs A's Beta(31,1): C is best with P = 1/32
    assert policy.probabilities()["C"] == pytest.approx(1 / 32, abs=1e-4)


def test_static_weights_and_eligible_renormalisation() -> None:
    policy = make_policy({"type": "static", "weights": {"A": 3, "B": 1, "C": 0}}, ["A", "B", "C"])
    assert policy.probabilities() == {"A": 0.75, "B": 0.25, "C": 0.0}
    assert policy.probabilities(eligible=["B", "C"]) == {"A": 0.0, "B": 1.0, "C": 0.0}
    # Only zero-weight arms offered: the uniform split, so the decision can still be made.
    assert policy.probabilities(eligible=["C"]) == {"A": 0.0, "B": 0.0, "C": 1.0}


def test_floor_mixes_with_uniform() -> None:
    policy = make_policy({"type": "ucb1", "floor": 0.1}, ["A", "B", "C", "D"])
    policy.update([Feedback(a, r, 0.25) for a, r in zip("ABCD", (1.0, 0.0, 0.0, 0.0), strict=True)])
    # p' = floor + (1 - 4·floor)·p: 0.1 + 0.6·1 for the leader, 0.1 for the rest.
    assert policy.probabilities() == pytest.approx({"A": 0.7, "B": 0.1, "C": 0.1, "D": 0.1})
    # Two eligible arms: the floor applies among them.
    assert policy.probabilities(eligible=["B", "C"])["B"] >= 0.1


def test_epsilon_greedy_probabilities_follow_the_formula() -> None:
    policy = make_policy({"type": "epsilon_greedy", "epsilon": 0.2, "decay": 0.5},
                         ["A", "B", "C", "D"])
    policy.update([Feedback(a, r, 0.25) for a, r in zip("ABCD", (0.1, 0.9, 0.3, 0.3), strict=True)])
    # n = 4 rewards: ε = 0.2 / (1 + 0.5·4) = 0.0667; each arm ε/4, the best also 1 − ε.
    epsilon = 0.2 / 3
    expected = {a: epsilon / 4 for a in "ABCD"}
    expected["B"] += 1 - epsilon
    assert policy.probabilities() == pytest.approx(expected, rel=1e-12)


def test_discount_weights_events_geometrically() -> None:
    policy = make_policy({"type": "epsilon_greedy", "discount": 0.5}, ["A", "B"])
    policy.update([Feedback("A", 1.0, 0.5), Feedback("B", 1.0, 0.5)])
    policy.update([Feedback("A", 0.0, 0.5)])
    stats = policy._state()["stats"]
    # A: 1 (×0.5 ×0.5) + 0 → n = 0.25 + 1, total = 0.25; B: 1 ×0.5 → n = total = 0.5.
    assert stats["n"] == pytest.approx([1.25, 0.5])
    assert stats["total"] == pytest.approx([0.25, 0.5])


def test_update_validates_feedback() -> None:
    policy = make_policy({"type": "thompson"}, ["A", "B"])
    with pytest.raises(ArmError, match="unknown arm 'Z'"):
        policy.update([Feedback("Z", 1.0, 0.5)])
    with pytest.raises(FeedbackError, match="finite"):
        policy.update([Feedback("A", math.nan, 0.5)])
    with pytest.raises(FeedbackError, match="probability"):
        policy.update([Feedback("A", 1.0, 0.0)])
    with pytest.raises(FeedbackError, match=r"\[0, 1\]"):
        policy.update([Feedback("A", 2.0, 0.5)])
    before = policy.snapshot()
    with pytest.raises(FeedbackError):  # a valid event followed by a bad one
        policy.update([Feedback("A", 1.0, 0.5), Feedback("A", 1.5, 0.5)])
    assert policy.snapshot() == before  # a refused batch changes nothing


def test_arm_errors() -> None:
    policy = make_policy({"type": "ucb1"}, ["A", "B"])
    with pytest.raises(ArmError, match="already exists"):
        policy.add_arm("A")
    with pytest.raises(ArmError, match="unknown arm"):
        policy.remove_arm("Z")
    policy.remove_arm("B")
    with pytest.raises(ArmError, match="only arm"):
        policy.remove_arm("A")
    with pytest.raises(ArmError, match="unknown arm"):
        policy.probabilities(eligible=["Z"])
    with pytest.raises(ArmError, match="at least one"):
        policy.probabilities(eligible=[])
    with pytest.raises(ArmError, match="unique"):
        make_policy({"type": "ucb1"}, ["A", "A"])
