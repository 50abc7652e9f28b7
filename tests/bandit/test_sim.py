"""The simulator: schedules, delayed batched feedback, regret bookkeeping, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bandit import Feedback, Policy, Probabilities, StaticPolicy, make_policy
from bandit._types import Context, Eligible
from bandit.sim import BernoulliProblem, ContextualProblem, Progress, Simulation, run


class Clock:
    """A problem whose context is the step number, so feedback can be traced to its step."""

    arms = ("a", "b")

    def context(self, t: int, rng: np.random.Generator) -> dict[str, float] | None:
        return {"t": t}

    def means(self, t: int, context: Context | None) -> np.ndarray:
        return np.array([0.5, 0.5])

    def reward(
        self, t: int, context: Context | None, arm_index: int, rng: np.random.Generator
    ) -> float:
        return float(rng.random() < 0.5)


class Recorder(StaticPolicy):
    """A static policy that remembers what it had learned at every decision."""

    def __init__(self) -> None:
        super().__init__(("a", "b"), params={"weights": {"a": 3.0, "b": 1.0}})
        self.learned: list[Feedback] = []
        self.batches: list[int] = []
        self.at_decision: list[tuple[int, list[int]]] = []

    def probabilities(self, context: Context | None = None, eligible: Eligible = None
                      ) -> Probabilities:
        assert context is not None
        self.at_decision.append((int(context["t"]), [int(f.context["t"]) for f in self.learned
                                                     if f.context is not None]))
        return super().probabilities(context, eligible)

    def _learn(self, batch: list[Feedback]) -> None:
        self.batches.append(len(batch))
        self.learned.extend(batch)
        super()._learn(batch)


def test_switches_change_the_means_from_their_step_on() -> None:
    problem = BernoulliProblem([0.9, 0.1], switches=[(120, [0.5, 0.5]), (50, [0.1, 0.9])])
    assert problem.means(0).tolist() == [0.9, 0.1]
    assert problem.means(49).tolist() == [0.9, 0.1]
    assert problem.means(50).tolist() == [0.1, 0.9]
    assert problem.means(119).tolist() == [0.1, 0.9]
    assert problem.means(120).tolist() == [0.5, 0.5]
    assert problem.means(10**9).tolist() == [0.5, 0.5]
    # A policy that always plays arm0: regret 0, then 0.8 while arm1 is best, then 0.
    always_first = make_policy({"type": "static", "weights": {"arm0": 1}}, problem.arms)
    result = run(always_first, problem, 150, seed=1)
    expected = np.concatenate([np.zeros(50), np.full(70, 0.8), np.zeros(30)])
    np.testing.assert_allclose(result.regret, expected, atol=1e-12)
    assert result.chosen.tolist() == [0] * 150


@pytest.mark.parametrize(
    ("means", "switches", "message"),
    [
        ([0.5, 1.5], (), "lie in"),
        ([], (), "non-empty"),
        ([0.5, 0.5], [(10, [0.1])], "1 means for 2 arms"),
        ([0.5, 0.5], [(0, [0.1, 0.2])], "positive integer"),
        ([0.5, 0.5], [(5, [0.1, 0.2]), (5, [0.3, 0.4])], "two switches"),
    ],
)
def test_bad_problems_are_refused(
    means: list[float], switches: list[tuple[int, list[float]]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BernoulliProblem(means, switches=switches)


@pytest.mark.parametrize(("delay", "batch"), [(0, 1), (3, 1), (5, 4), (0, 7), (40, 1)])
def test_feedback_arrives_delay_steps_late_in_whole_batches(delay: int, batch: int) -> None:
    policy = Recorder()
    steps = 60
    result = run(policy, Clock(), steps, seed=2, delay=delay, batch=batch)
    for t, learned in policy.at_decision:
        # Due at the end of step s + delay: decision t has seen steps < t - delay,
        # rounded down to whole batches.
        due = max(0, t - delay)
        assert learned == list(range(due - due % batch)), (t, learned)
    assert set(policy.batches) <= {batch}
    # Every learned event carries the arm and the probability it was sampled with.
    probability = {"a": 0.75, "b": 0.25}
    for item in policy.learned:
        assert item.context is not None
        t = int(item.context["t"])
        assert item.arm == result.arms[result.chosen[t]]
        assert item.probability == probability[item.arm]
        assert item.reward == result.rewards[t]


def test_uniform_static_regret_matches_its_expectation() -> None:
    means = np.array([0.2, 0.5, 0.8])
    steps = 6000
    problem = BernoulliProblem(means.tolist())
    result = run(make_policy({"type": "static"}, problem.arms), problem, steps, seed=3)
    # Per step the regret is max − m_a with a uniform: mean 0.3, variance
    # E[(max − m)²] − 0.3² = 0.15 − 0.09 = 0.06; steps are independent, so the
    # total is 1800 ± sqrt(6000 · 0.06) = ±19; 4 sd = 76. A wrong arm index or a
    # regret against the mean instead of the max is off by hundreds.
    gap = means.max() - means
    sd = math.sqrt(steps * gap.var())
    assert abs(result.total_regret - steps * gap.mean()) < 4 * sd
    # The drawn rewards average 0.5 ± sqrt(0.25 / 6000) = ±0.0065 per sd.
    assert abs(result.mean_reward - 0.5) < 4 * math.sqrt(0.25 / steps)
    assert result.probabilities.sum(axis=1) == pytest.approx(np.ones(steps))


def test_same_seed_same_run_other_seed_other_run() -> None:
    problem = ContextualProblem(seed=4)

    def once(seed: int) -> tuple[np.ndarray, np.ndarray]:
        policy = make_policy({"type": "thompson", "samples": 200}, problem.arms, seed=1)
        result = run(policy, problem, 400, seed=seed, batch=5, delay=2)
        return result.chosen, result.rewards

    first, again, other = once(11), once(11), once(12)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize("seed", [0, 7])
def test_contextual_oracle_far_above_the_best_fixed_arm(seed: int) -> None:
    problem = ContextualProblem(n_arms=4, n_features=20, seed=seed)
    rng = np.random.default_rng(100 + seed)
    n = 20_000
    contexts = [problem.context(t, rng) for t in range(n)]
    assert contexts[0] is not None and sorted(contexts[0]) == sorted(f"x{j}" for j in range(20))
    means = np.array([problem.means(t, c) for t, c in enumerate(contexts)])
    # Exact values by numerical integration (see bandit/sim.py): arms 0.5752,
    # 0.5252, 0.4748, 0.4248; oracle 0.8286. Per-context sd ≈ 0.31 per arm and
    # 0.17 for the max, so over 20k contexts 4 standard errors ≈ 0.009 and 0.005.
    np.testing.assert_allclose(means.mean(axis=0), [0.5752, 0.5252, 0.4748, 0.4248], atol=0.01)
    assert means.max(axis=1).mean() == pytest.approx(0.8286, abs=0.006)
    assert means.max(axis=1).mean() - means.mean(axis=0).max() > 0.2
    # Every arm owns a region: it is the best for a sizeable share of contexts
    # (measured 0.34, 0.27, 0.22, 0.17).
    assert (np.bincount(means.argmax(axis=1), minlength=4) / n).min() > 0.12


def test_thompson_puts_most_traffic_on_the_best_arm() -> None:
    problem = BernoulliProblem([0.2, 0.8])
    policy = make_policy({"type": "thompson"}, problem.arms, seed=0)
    result = run(policy, problem, 2000, seed=0)
    # Thompson pulls the worse arm O(log T / KL) times (Agrawal & Goyal 2012);
    # KL(0.2 ‖ 0.8) = 0.83, log 2000 = 7.6: about 10 pulls, measured 6–16 over
    # seeds 0–7 (share ≥ 0.992). 0.97 allows 60; uniform play would give 0.5.
    assert result.best_share() > 0.97
    assert result.shares(window=1000)[1] > 0.99
    assert result.total_regret < 0.6 * 60


def test_progress_reports_every_n_steps_and_agrees_with_the_result() -> None:
    problem = BernoulliProblem([0.3, 0.6, 0.5])
    reports: list[Progress] = []
    policy = make_policy({"type": "epsilon_greedy"}, problem.arms, seed=0)
    result = run(policy, problem, 1000, seed=5, on_progress=reports.append,
                 progress_every=300, window=200)
    assert [r.step for r in reports] == [300, 600, 900, 1000]
    last = reports[-1]
    assert last.steps == 1000 and last.arms == problem.arms
    assert last.regret == pytest.approx(result.total_regret)
    assert last.mean_reward == pytest.approx(result.mean_reward)
    np.testing.assert_allclose(last.shares, result.shares(window=200))
    assert last.best_share == pytest.approx(result.best_share(window=200))
    assert last.recent_reward == pytest.approx(result.rewards[-200:].mean())
    np.testing.assert_allclose(last.probabilities, result.probabilities[-1])


def test_result_shares_count_the_trailing_window() -> None:
    problem = BernoulliProblem([0.1, 0.9])
    policy = make_policy({"type": "static", "weights": {"arm0": 1, "arm1": 1}}, problem.arms)
    result = run(policy, problem, 500, seed=6)
    chosen = result.chosen
    assert result.shares().tolist() == [np.mean(chosen == 0), np.mean(chosen == 1)]
    assert result.shares(window=10).tolist() == [np.mean(chosen[-10:] == 0),
                                                 np.mean(chosen[-10:] == 1)]
    assert result.best_share(window=50) == np.mean(chosen[-50:] == 1)
    assert result.oracle_reward == pytest.approx(0.9)
    np.testing.assert_allclose(result.arm_rewards, [0.1, 0.9])


def test_run_refuses_bad_arguments() -> None:
    problem = BernoulliProblem([0.5, 0.5])
    with pytest.raises(ValueError, match="differ"):
        run(make_policy({"type": "static"}, ["x", "y"]), problem, 10)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        run(make_policy({"type": "static"}, problem.arms), problem, 10, batch=0)
    with pytest.raises(ValueError, match="delay must be >= 0"):
        run(make_policy({"type": "static"}, problem.arms), problem, 10, delay=-1)


def test_stepping_in_chunks_gives_the_same_run() -> None:
    problem = ContextualProblem(seed=2)

    def policy() -> Policy:
        return make_policy({"type": "epsilon_greedy", "epsilon": 0.2}, problem.arms, seed=3)

    whole = run(policy(), problem, 500, seed=9, delay=3, batch=4)
    simulation = Simulation(policy(), problem, 500, seed=9, delay=3, batch=4)
    chunks = [simulation.advance(n) for n in (1, 7, 100, 0, 250, 1000)]
    assert chunks == [1, 7, 100, 0, 250, 142] and simulation.finished
    stepped = simulation.result()
    assert np.array_equal(whole.chosen, stepped.chosen)
    assert np.array_equal(whole.rewards, stepped.rewards)
    np.testing.assert_array_equal(whole.probabilities, stepped.probabilities)
