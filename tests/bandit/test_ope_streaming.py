"""Estimators over chunks: exactly ``estimate``'s answers, and intervals that cover."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from bandit import make_policy
from bandit._errors import EvaluationError
from bandit.ope import (
    ESTIMATORS,
    Estimate,
    Evaluation,
    EvaluationResult,
    LogChunk,
    LoggedDecision,
    estimate,
)

from ._adaptive_log import ARMS, adaptive_logs, target_pi, target_truth

Floats = np.ndarray


def close(value: float, scale: float = 1.0) -> Any:
    """Equal up to rounding: 1e-10 relative, with an absolute floor for values near 0."""
    return pytest.approx(value, rel=1e-10, abs=1e-12 * scale)


def chunk(
    arms: Sequence[str],
    action: Sequence[int],
    logged: Floats,
    reward: Sequence[float],
    *,
    offered: Floats | None = None,
    contexts: Sequence[Mapping[str, Any] | None] | None = None,
    experiment: str | None = "demo",
) -> LogChunk:
    n = len(action)
    actions = np.asarray(action, dtype=np.intp)
    logged = np.asarray(logged, dtype=float)
    return LogChunk(experiment, tuple(arms), actions, logged[np.arange(n), actions], logged,
                    logged > 0 if offered is None else offered, np.asarray(reward, float),
                    np.arange(n, dtype=float), np.zeros(n, np.bool_), np.zeros(n, np.intp),
                    ("1",), contexts)


# -- (1) exactly ``estimate`` -------------------------------------------------------------

# A log whose variant list changes twice: C is added, then A is removed (and the
# columns come in another order), with eligible subsets and rewards on any scale.
LAYOUT = [("A", "B"), ("A", "B", "C"), ("C", "B")]


def random_log(
    seed: int, n: int, *, offset: float = 0.0
) -> tuple[list[LogChunk], list[Floats], list[LoggedDecision], list[dict[str, float]]]:
    """One chunk per LAYOUT part (n events each), the target's π per chunk, and the
    same events as LoggedDecisions with the target's answer per event."""
    rng = np.random.default_rng(seed)
    chunks: list[LogChunk] = []
    pis: list[Floats] = []
    decisions: list[LoggedDecision] = []
    answers: list[dict[str, float]] = []
    for arms in LAYOUT:
        k = len(arms)
        offered = rng.random((n, k)) < 0.8
        offered[np.arange(n), rng.integers(0, k, n)] = True  # never an empty set
        logged = np.where(offered, rng.dirichlet(np.ones(k), n) + 0.02, 0.0)
        logged /= logged.sum(axis=1, keepdims=True)
        action = np.minimum((rng.random(n)[:, None] > np.cumsum(logged, axis=1)).sum(axis=1),
                            k - 1)
        action = np.where(offered[np.arange(n), action], action, offered.argmax(axis=1))
        logged[np.arange(n), action] = np.maximum(logged[np.arange(n), action], 0.01)
        reward = offset + rng.normal(0.5 + 0.1 * action, 1.0)
        pi = np.where(offered, rng.dirichlet(np.full(k, 0.7), n), 0.0)
        pi[offered.sum(axis=1) == 0] = 0.0
        pi /= pi.sum(axis=1, keepdims=True)
        pis.append(pi)
        chunks.append(chunk(arms, action.tolist(), logged, reward.tolist(), offered=offered))
        propensity = chunks[-1].propensity
        for i in range(n):
            eligible = tuple(arm for arm, on in zip(arms, offered[i], strict=True) if on)
            decisions.append(LoggedDecision({"i": len(decisions)}, arms[action[i]],
                                            float(propensity[i]), float(reward[i]), eligible))
            answers.append({arm: float(p) for arm, p in zip(arms, pi[i], strict=True) if p > 0})
    return chunks, pis, decisions, answers


def recut(chunks: list[LogChunk], pis: list[Floats], size: int) -> list[tuple[LogChunk, Floats]]:
    """The same events in chunks of at most ``size`` (never across a variant-list change)."""
    out = []
    for whole, pi in zip(chunks, pis, strict=True):
        for start in range(0, len(whole), size):
            part = slice(start, start + size)
            out.append((replace(whole, action=whole.action[part],
                                propensity=whole.propensity[part], logged=whole.logged[part],
                                offered=whole.offered[part], reward=whole.reward[part],
                                timestamp=whole.timestamp[part],
                                default_reward=whole.default_reward[part],
                                version=whole.version[part]), pi[part]))
    return out


def assert_same(ours: Estimate, theirs: Estimate) -> None:
    scale = 1.0 + abs(theirs.value)
    assert ours.estimator == theirs.estimator
    assert ours.n == theirs.n
    assert ours.value == close(theirs.value, scale)
    assert ours.std_error == close(theirs.std_error, scale)
    assert ours.lower == close(theirs.lower, scale)
    assert ours.upper == close(theirs.upper, scale)
    assert ours.ess == close(theirs.ess, theirs.n)


@pytest.mark.parametrize("size", [1, 7, 100, 10_000])
@pytest.mark.parametrize("clip", [None, 2.5])
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_values_and_intervals_equal_estimate_however_the_log_is_cut(
    size: int, clip: float | None, offset: float
) -> None:
    # offset 1e6: rewards 1e6 ± 1, where raw sums of squares would lose every digit.
    chunks, pis, decisions, answers = random_log(11, 150, offset=offset)
    evaluation = Evaluation(clip=clip)
    for part, pi in recut(chunks, pis, size):
        evaluation.add(part, pi)
    def target(context: Mapping[str, Any] | None) -> dict[str, float]:
        assert context is not None
        return answers[int(context["i"])]

    expected = estimate(decisions, target, clip=clip)
    result = evaluation.result()
    assert evaluation.n == len(decisions) == 450
    assert list(result.estimates) == list(ESTIMATORS)
    for name in ESTIMATORS:
        assert_same(result.estimates[name], expected[name])
    assert not result.biased


def per_event_terms(chunks: list[LogChunk], pis: list[Floats]) -> tuple[Floats, dict[str, Floats]]:
    """Rewards and each estimator's influence terms, spelled out event by event."""
    arms = sorted({arm for part in chunks for arm in part.arms})
    pi = np.vstack([p @ np.eye(len(arms))[[arms.index(a) for a in part.arms]]
                    for part, p in zip(chunks, pis, strict=True)])
    taken = np.concatenate([[arms.index(part.arms[a]) for a in part.action] for part in chunks])
    mu = np.concatenate([part.propensity for part in chunks])
    r = np.concatenate([part.reward for part in chunks])
    rows = np.arange(r.size)
    w = pi[rows, taken] / mu
    means = np.array([r[taken == a].mean() for a in range(len(arms))])
    counts = np.bincount(taken, minlength=len(arms))
    snips = (w @ r) / w.sum()
    h = pi.sum(axis=0) / counts
    direct = pi @ means
    residual = r - means[taken]
    return r, {"ips": w * r, "snips": w * (r - snips) / w.mean(),
               "dm": direct + h[taken] * residual, "dr": direct + w * residual}


def test_paired_differences_have_the_variance_of_the_per_event_differences() -> None:
    chunks, pis, _, _ = random_log(5, 200)
    evaluation = Evaluation()
    for part, pi in recut(chunks, pis, 64):
        evaluation.add(part, pi)
    result = evaluation.result()
    r, terms = per_event_terms(chunks, pis)
    n = r.size
    assert result.baseline.estimator == "on_policy"
    assert result.baseline.value == close(r.mean())
    assert result.baseline.std_error == close(r.std(ddof=1) / math.sqrt(n))
    assert result.baseline.ess == n
    for name, psi in terms.items():
        paired = result.vs_baseline[name]
        assert paired.value == close(result.estimates[name].value - r.mean())
        assert paired.std_error == close((psi - r).std(ddof=1) / math.sqrt(n))
        assert result.estimates[name].std_error == close(psi.std(ddof=1) / math.sqrt(n))
        # The pairing matters: these terms move with the rewards, so the paired
        # interval is narrower than the two intervals combined as if independent.
        independent = math.hypot(result.estimates[name].std_error, result.baseline.std_error)
        assert paired.std_error < independent


def test_the_logging_policy_against_itself_differs_by_exactly_zero_in_ips() -> None:
    logged = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.5, 0.5]])
    part = chunk(("A", "B"), [0, 1, 0, 1], logged, [1.0, 0.0, 0.5, 2.0])
    evaluation = Evaluation(estimators=("ips", "snips"))
    evaluation.add(part, logged)
    result = evaluation.result()
    for name in ("ips", "snips"):
        assert result.vs_baseline[name].value == close(0.0)
        assert result.vs_baseline[name].std_error == close(0.0)
        assert result.estimates[name].ess == close(4.0)


# -- (2) through ``estimate`` ---------------------------------------------------------


def test_estimate_reads_chunks_and_asks_a_context_free_policy_once_per_offered_set() -> None:
    chunks, _, decisions, _ = random_log(3, 120)
    policy = make_policy({"type": "static", "weights": {"A": 1, "B": 2, "C": 5}}, ["A", "B", "C"])
    asked: list[tuple[str, ...]] = []
    answer = policy.probabilities

    def spy(context: Any = None, eligible: Any = None) -> dict[str, float]:
        asked.append(tuple(eligible))
        return answer(context, eligible)

    expected = estimate(decisions, policy)
    policy.probabilities = spy  # type: ignore[method-assign]
    result = estimate(iter(chunks), policy)
    for name in ESTIMATORS:
        assert_same(result[name], expected[name])
    distinct = sum(len({tuple(row) for row in part.offered.tolist()}) for part in chunks)
    assert len(asked) == distinct <= 3 + 7 + 3


def test_estimate_asks_a_function_per_event_with_the_chunks_contexts() -> None:
    chunks, _, decisions, _ = random_log(4, 50)

    def favour_b(context: Mapping[str, Any] | None) -> dict[str, float]:
        assert context is not None
        offered = context["offered"]
        if "B" in offered and context["i"] % 3:
            return {"B": 1.0}
        return dict.fromkeys(offered, 1.0 / len(offered))

    contexts = [{"i": i, "offered": d.eligible} for i, d in enumerate(decisions)]
    with_contexts, first = [], 0
    for part in chunks:
        with_contexts.append(replace(part, contexts=contexts[first:first + len(part)]))
        first += len(part)
    everything = [replace(d, context=context) for d, context in zip(decisions, contexts,
                                                                    strict=True)]
    result = estimate(with_contexts, favour_b, clip=4.0)
    expected = estimate(everything, favour_b, clip=4.0)
    for name in ESTIMATORS:
        assert_same(result[name], expected[name])
    with pytest.raises(EvaluationError, match=r"needs each event's context .* carry none"):
        estimate(chunks, favour_b)


def test_estimate_over_chunks_refuses_what_it_cannot_do() -> None:
    chunks, _, decisions, _ = random_log(2, 20)
    static = make_policy({"type": "static"}, ["A", "B", "C"])
    with pytest.raises(EvaluationError, match=r"reward_model 'ridge' .* only 'per_arm'"):
        estimate(chunks, static, reward_model="ridge")
    with pytest.raises(EvaluationError, match=r"logs mix LogChunk with LoggedDecision"):
        estimate([*chunks, decisions[0]], static)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match=r"logs mix LoggedDecision with LogChunk"):
        estimate([decisions[0], chunks[0]], static)  # type: ignore[arg-type]
    only_ab = make_policy({"type": "static"}, ["A", "B"])
    with pytest.raises(EvaluationError, match=r"target cannot answer events offering"):
        estimate(chunks, only_ab)
    # D is no variant of the log: its mass is unsupported, and estimate refuses.
    with pytest.raises(EvaluationError, match=r"no evidence on .* in 60 of 60 events"):
        estimate([replace(part, contexts=[None] * len(part)) for part in chunks],
                 lambda context: {"D": 1.0})


# -- (3) support -------------------------------------------------------------------------


def test_mass_the_log_says_nothing_about_is_counted_and_earns_nothing() -> None:
    # Event 0 offers A and B; the candidate puts 0.25 on C, not offered.
    # Event 1 offers A, B, C but C with probability 0; the candidate puts 0.5 on C.
    # Event 2 offers A, B, C, C with 0.1 (never taken); the candidate puts 0.4 on C.
    # Event 3 is supported only by A and B.
    logged = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.5, 0.4, 0.1], [0.5, 0.5, 0.0]])
    offered = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 0]], dtype=bool)
    pi = np.array([[0.75, 0.0, 0.25], [0.5, 0.0, 0.5], [0.6, 0.0, 0.4], [1.0, 0.0, 0.0]])
    part = chunk(("A", "B", "C"), [0, 1, 0, 0], logged, [1.0, 1.0, 1.0, 1.0], offered=offered)
    evaluation = Evaluation()
    evaluation.add(part, pi)
    result = evaluation.result()
    assert isinstance(result, EvaluationResult)
    assert result.unsupported_events == 3
    assert result.unsupported_mass == close((0.25 + 0.5 + 0.4) / 4)
    assert result.biased
    # IPS: w = (1.5, 0, 1.2, 2) on rewards of 1; the mass on C earned nothing.
    assert result.estimates["ips"].value == close(4.7 / 4)
    # DM: r̂(A) = 1, r̂(B) = 1, r̂(C) = 0 (never taken): (0.75 + 0.5 + 0.6 + 1)/4.
    assert result.estimates["dm"].value == close(2.85 / 4)
    out = result.to_json()
    assert list(out) == ["IPS", "SNIPS", "DM", "DR", "vs_baseline", "support"]
    assert list(out["IPS"]) == ["value", "lower", "upper", "std_error", "ess", "n"]
    assert list(out["vs_baseline"]) == ["IPS", "SNIPS", "DM", "DR"]
    assert out["support"] == {"unsupported_events": 3, "unsupported_mass": pytest.approx(1.15 / 4),
                              "biased": True}


# -- (4) coverage on an adaptive log -------------------------------------------------------

RUNS = 1000
EVENTS = 1000
SUBSETS = 0.2
WINDOW = (0.93, 0.97)


def coverage(*, clip: float | None = None, wrong_propensity: bool = False) -> dict[str, float]:
    """How often the 95% intervals hold the candidate's true value, over RUNS logs."""
    logs = adaptive_logs(RUNS, EVENTS, seed=2024, subsets=SUBSETS)
    truth = target_truth(SUBSETS)
    rows = np.arange(EVENTS)
    covered = dict.fromkeys(("ips", "snips", "dr"), 0)
    for run in range(RUNS):
        propensity = None
        if wrong_propensity:  # the logger's probability of the next arm, where it has one
            other = logs.logged[run, rows, (logs.action[run] + 1) % len(ARMS)]
            propensity = np.where(other > 0, other, logs.logged[run, rows, logs.action[run]])
        evaluation = Evaluation(estimators=tuple(covered), clip=clip)
        for part in logs.chunks(run, 250, propensity=propensity):
            evaluation.add(part, target_pi(part.offered))
        for name, item in evaluation.result().estimates.items():
            covered[name] += item.lower <= truth <= item.upper
    return {name: count / RUNS for name, count in covered.items()}


def outside_window(rates: dict[str, float]) -> list[str]:
    # Binomial(1000, 0.95): sd 0.0069, so 0.93–0.97 is ±2.9 sd around 0.95.
    return [name for name, rate in rates.items() if not WINDOW[0] <= rate <= WINDOW[1]]


def test_intervals_cover_the_true_value_on_an_adaptive_log() -> None:
    # The logger's probabilities move every 100 events with what it has seen,
    # a fifth of the events offer a pair; weights reach 10.
    # Measured: ips 0.957, snips 0.957, dr 0.946.
    rates = coverage()
    assert outside_window(rates) == [], rates


def test_the_same_check_fails_a_clip_left_on() -> None:
    # Measured: ips 0.447, snips 0.751, dr 0.918.
    rates = coverage(clip=1.5)
    assert outside_window(rates) == ["ips", "snips", "dr"], rates


def test_the_same_check_fails_a_wrong_propensity() -> None:
    # Measured: ips 0.0, snips 0.0, dr 1.0 (its interval is inflated by the wrong weights).
    rates = coverage(wrong_propensity=True)
    assert outside_window(rates) == ["ips", "snips", "dr"], rates


# -- (5) bad input -------------------------------------------------------------------------

GOOD = chunk(("A", "B"), [0, 1], np.array([[0.5, 0.5], [0.5, 0.5]]), [1.0, 0.0])


@pytest.mark.parametrize(
    ("pi", "message"),
    [
        (np.ones((2, 3)) / 3, r"pi must have shape \(events, arms\) = \(2, 2\) .* got \(2, 3\)"),
        (np.array([[0.5, 0.5], [0.6, 0.6]]), r"probabilities for event 1 sum to 1\.2, not 1"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), r"event 0 probability -0\.5 for 'B'"),
        (np.array([[math.nan, 1.0], [0.5, 0.5]]), r"probability nan for 'A'"),
    ],
)
def test_a_bad_pi_is_refused_naming_the_event(pi: Floats, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        Evaluation().add(GOOD, pi)


def test_bad_options_and_logs_are_refused() -> None:
    with pytest.raises(EvaluationError, match=r"clip must be a positive number"):
        Evaluation(clip=0.0)
    with pytest.raises(EvaluationError, match=r"unknown estimator\(s\) 'wis'"):
        Evaluation(estimators=("wis",))
    with pytest.raises(EvaluationError, match=r"confidence must be in \(0, 1\)"):
        Evaluation(confidence=95)
    with pytest.raises(EvaluationError, match=r"logs are empty"):
        Evaluation().result()
    evaluation = Evaluation()
    evaluation.add(GOOD, GOOD.logged)
    zero = replace(GOOD, propensity=np.array([0.5, 0.0]))
    with pytest.raises(EvaluationError, match=r"event 3's logged probability .* got 0\.0"):
        evaluation.add(zero, GOOD.logged)


def test_one_event_has_an_unbounded_interval_and_no_weight_makes_snips_nan() -> None:
    evaluation = Evaluation()
    evaluation.add(chunk(("A", "B"), [0], np.array([[0.5, 0.5]]), [1.0]), np.array([[0.0, 1.0]]))
    result = evaluation.result()
    assert result.estimates["ips"].value == 0.0
    assert math.isinf(result.estimates["ips"].std_error)
    assert math.isnan(result.estimates["snips"].value)
    assert math.isnan(result.vs_baseline["snips"].value)
    assert result.estimates["ips"].ess == 0.0
