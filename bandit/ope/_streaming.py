"""IPS, SNIPS, DM and DR over a log read chunk by chunk, in memory that does not grow with it.

``Evaluation`` gives the same values and intervals as ``estimate`` with the
per-arm reward model, however the log is cut into chunks, while keeping only
sufficient statistics. The idea: every estimator's per-event influence term ψ_i
(the terms whose sample variance makes ``estimate``'s interval) is *linear* in one
vector z_i of per-event quantities, with coefficients θ that are only known at
the end of the log (the per-arm means, SNIPS's ratio):

    ψ_i = const + θᵀ z_i   ⇒   Σ_i (ψ_i − ψ̄)² = θᵀ C θ,   C = Σ_i (z_i − z̄)(z_i − z̄)ᵀ.

So the count, the mean z̄ and the co-moment matrix C, merged chunk by chunk
(Chan, Golub & LeVeque 1983), are all it keeps; the per-arm means are z̄'s
entries. Rewards enter as s_i = r_i − c, c the first chunk's mean reward: every
term below is unchanged by the shift, and it keeps θ's entries of the size of
the rewards' spread, not of their level (rewards of 10⁶ ± 1 would otherwise
lose every digit in θᵀCθ). With K arms (matched by name across chunks)

    z_i = (s_i, w_i s_i, w_i, Σ_a π_ia − 1, π_i, e_i, e_i s_i, e_i w_i)     (4 + 4K numbers)

where w_i = min(π_i(a_i)/μ_i, clip) is the (clipped) weight, π_i ∈ ℝᴷ the
candidate's distribution and e_i ∈ ℝᴷ the one-hot vector of the logged arm a_i.
From z̄: n_a = n·ē_a, the per-arm mean m_a = c + m′_a with m′_a = Σ_{a_i=a} s_i / n_a
(m_a = 0, so m′_a = −c, for an arm no event took), P_a = Σ_i π_ia. The terms
(those of ``estimate``, whose docstring cites them), as coefficients on z_i:

- baseline (on-policy mean r̄):  ψ_i = r_i = c + s_i                    θ: 1 on s
- IPS:    ψ_i = w_i r_i = w_i s_i + c w_i                               θ: 1 on w s, c on w
- SNIPS:  ψ_i = w_i(r_i − V)/w̄ = (w_i s_i − (V − c) w_i)/w̄, with V = Σ w r / Σ w
          and w̄ = Σ w / n (the delta method)              θ: 1/w̄ on w s, −(V − c)/w̄ on w
- DM:     ψ_i = π_i·m + h_{a_i}(r_i − m_{a_i}), h_a = P_a/n_a: the model's value plus
          each event's first-order effect on the fitted means;
          π_i·m = c(1 + (Σ_a π_ia − 1)) + π_i·m′                        θ: c on Σπ − 1, m′ on π,
                                                                           h on e s, −h∘m′ on e
- DR:     ψ_i = π_i·m + w_i(r_i − m_{a_i})                               θ: c on Σπ − 1, m′ on π,
                                                                           1 on w s, −m′ on e w

Each paired difference from the logging policy, ψ_i − r_i, has θ − (1 on s): its
variance counts the covariance between the candidate's and the baseline's
terms, which are computed on the same events. The baseline's own interval is
r̄ ± z·sd(r)/√n, the logging policy evaluated on its own log.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

import numpy as np

from .._errors import ArmError, EvaluationError
from .._policy import Policy
from .._types import Arm, Context
from ._chunks import BoolArray, FloatArray, IntArray, LogChunk
from ._estimate import (
    _SUM_TOLERANCE,
    ESTIMATORS,
    Estimate,
    RewardFunction,
    Target,
    TargetPolicy,
    _check_estimators,
    _z_score,
)
from ._json import interval_json

__all__ = ["BASELINE", "Evaluation", "EvaluationResult", "estimate_chunks"]

BASELINE = "on_policy"
"""The estimator name of the logging policy's own mean reward."""

# z's leading columns, then its four blocks of K (one entry per arm each).
_REWARD, _WEIGHTED_REWARD, _WEIGHT, _MASS = 0, 1, 2, 3
_LEADING = 4
_TARGET, _TAKEN, _TAKEN_REWARD, _TAKEN_WEIGHT = 0, 1, 2, 3
_BLOCKS = 4

# Up to this many arms, an event's set of supported arms packs into one int64.
_PACKED_ARMS = 62


@dataclass(frozen=True, slots=True)
class EvaluationResult:
    """A candidate's estimates, their differences from the logging policy, and its support.

    ``estimates`` and ``vs_baseline`` are keyed by estimator name (``"ips"``, ...);
    ``vs_baseline[name]`` estimates the candidate's value minus the logging policy's
    on-policy mean ``baseline``, with the interval of the paired per-event
    differences (narrower than either interval alone when they move together).
    ``unsupported_events`` counts events where the candidate puts mass on a variant
    the log gives no evidence on: not offered, offered with probability 0, or never
    taken by any event (the per-arm model cannot predict it, DM and DR use 0);
    ``unsupported_mass`` is the mean of that mass per event. IPS earns nothing on
    that mass, so when ``biased`` every estimate leans towards 0 by up to it.
    """

    estimates: dict[str, Estimate]
    vs_baseline: dict[str, Estimate]
    baseline: Estimate
    unsupported_events: int
    unsupported_mass: float

    @property
    def biased(self) -> bool:
        """True when some event put mass where the log says nothing."""
        return self.unsupported_events > 0

    def to_json(self) -> dict[str, Any]:
        """A candidate's estimator objects (upper-case keys), ``vs_baseline`` and ``support``."""
        out: dict[str, Any] = {name.upper(): interval_json(item)
                               for name, item in self.estimates.items()}
        out["vs_baseline"] = {name.upper(): interval_json(item)
                              for name, item in self.vs_baseline.items()}
        out["support"] = {"unsupported_events": self.unsupported_events,
                          "unsupported_mass": self.unsupported_mass, "biased": self.biased}
        return out


class Evaluation:
    """IPS, SNIPS, DM, DR of one candidate over chunks, and its paired difference
    from the logging policy's on-policy mean.

    ``add`` each chunk with the candidate's distribution π over ``chunk.arms`` for
    every event; ``result`` answers at any point. Values and intervals equal
    ``estimate(events, target, reward_model="per_arm", clip=clip)`` on the same
    events; memory is O(K²) for K arms, whatever the number of events.
    """

    def __init__(
        self,
        *,
        estimators: Sequence[str] = ESTIMATORS,
        clip: float | None = None,
        confidence: float = 0.95,
    ) -> None:
        self._names = _check_estimators(estimators)
        self._z = _z_score(confidence)
        if clip is not None and not clip > 0.0:  # also refuses NaN
            raise EvaluationError(f"clip must be a positive number or None, got {clip!r}")
        self._clip = clip
        self._arms: dict[Arm, int] = {}
        self._moments = _Moments(_LEADING)
        self._shift: float | None = None
        self._taken = np.zeros(0, dtype=np.int64)
        # Support: events with mass on a variant logged with probability 0, that
        # mass; and, to count never-taken variants once they are known (at the
        # end), the supported events by their set of variants with π > 0 and μ > 0.
        self._outside_events = 0
        self._outside_mass = 0.0
        self._supported_mass = np.zeros(0)
        self._supported_sets: Counter[frozenset[Arm]] = Counter()

    @property
    def n(self) -> int:
        """The number of events added so far."""
        return self._moments.count

    def add(self, chunk: LogChunk, pi: FloatArray) -> None:
        """Add a chunk; ``pi[i]`` is the candidate's distribution over ``chunk.arms`` at event i."""
        rows = len(chunk)
        pi = np.asarray(pi, dtype=np.float64)
        if pi.shape != (rows, len(chunk.arms)):
            raise EvaluationError(f"pi must have shape (events, arms) = ({rows}, "
                                  f"{len(chunk.arms)}) for this chunk, got {pi.shape}")
        if rows == 0:
            return
        self._check(chunk, pi)
        columns = self._columns(chunk.arms)
        k = len(self._arms)
        target = np.zeros((rows, k))
        target[:, columns] = pi
        taken = np.zeros((rows, k))
        taken[np.arange(rows), columns[chunk.action]] = 1.0
        weight = pi[np.arange(rows), chunk.action] / chunk.propensity
        if self._clip is not None:
            weight = np.minimum(weight, self._clip)
        if self._shift is None:
            self._shift = float(chunk.reward.mean())
        reward = chunk.reward - self._shift
        z = np.empty((rows, _LEADING + _BLOCKS * k))
        z[:, _REWARD] = reward
        z[:, _WEIGHTED_REWARD] = weight * reward
        z[:, _WEIGHT] = weight
        z[:, _MASS] = pi.sum(axis=1) - 1.0
        z[:, _block(_TARGET, k)] = target
        z[:, _block(_TAKEN, k)] = taken
        z[:, _block(_TAKEN_REWARD, k)] = taken * reward[:, None]
        z[:, _block(_TAKEN_WEIGHT, k)] = taken * weight[:, None]
        self._moments.add(z)
        self._taken += np.bincount(columns[chunk.action], minlength=k)
        self._count_support(chunk, pi, columns)

    def result(self) -> EvaluationResult:
        """The estimates over every event added so far."""
        n = self.n
        if n == 0:
            raise EvaluationError("logs are empty: nothing to evaluate")
        k = len(self._arms)
        mean, comoment = self._moments.mean, self._moments.comoment
        weight_mean = float(mean[_WEIGHT])
        square = float(comoment[_WEIGHT, _WEIGHT]) + n * weight_mean * weight_mean
        total = n * weight_mean
        ess = total * total / square if square > 0.0 else 0.0

        c = self._shift if self._shift is not None else 0.0
        taken = self._taken.astype(np.float64)
        took = self._taken > 0
        arm_means = np.divide(n * mean[_block(_TAKEN_REWARD, k)], taken,
                              out=np.full(k, -c), where=took)  # m′ = m − c; m = 0 if never taken
        influence = np.divide(n * mean[_block(_TARGET, k)], taken,
                              out=np.zeros(k), where=took)
        direct = c * (1.0 + float(mean[_MASS])) + float(mean[_block(_TARGET, k)] @ arm_means)

        size = mean.size
        terms: dict[str, tuple[float, FloatArray]] = {}
        theta = _unit(size, _WEIGHTED_REWARD) + c * _unit(size, _WEIGHT)
        terms["ips"] = float(mean[_WEIGHTED_REWARD]) + c * weight_mean, theta
        if total > 0.0:
            ratio = float(mean[_WEIGHTED_REWARD]) / weight_mean  # V − c
            theta = _unit(size, _WEIGHTED_REWARD) - ratio * _unit(size, _WEIGHT)
            terms["snips"] = c + ratio, theta / weight_mean
        else:
            terms["snips"] = math.nan, np.full(size, math.nan)
        theta = c * _unit(size, _MASS)
        theta[_block(_TARGET, k)] = arm_means
        theta[_block(_TAKEN_REWARD, k)] = influence
        theta[_block(_TAKEN, k)] = -influence * arm_means
        terms["dm"] = direct, theta
        theta = c * _unit(size, _MASS)
        theta[_block(_TARGET, k)] = arm_means
        theta[_WEIGHTED_REWARD] = 1.0
        theta[_block(_TAKEN_WEIGHT, k)] = -arm_means
        terms["dr"] = direct + float(mean[_WEIGHTED_REWARD]
                                     - mean[_block(_TAKEN_WEIGHT, k)] @ arm_means), theta

        base_value, base_theta = c + float(mean[_REWARD]), _unit(size, _REWARD)
        baseline = self._interval(BASELINE, base_value, base_theta, float(n))
        estimates = {name: self._interval(name, *terms[name], ess) for name in self._names}
        vs_baseline = {name: self._interval(name, terms[name][0] - base_value,
                                            terms[name][1] - base_theta, ess)
                       for name in self._names}
        events, mass = self._support(took)
        return EvaluationResult(estimates, vs_baseline, baseline, events, mass / n)

    # -- internals ------------------------------------------------------------------

    def _check(self, chunk: LogChunk, pi: FloatArray) -> None:
        """Refuse what would make a silent nonsense of the sums, naming the event."""
        first = self.n
        invalid = np.argwhere(~np.isfinite(pi) | (pi < 0.0))
        if invalid.size:
            i, a = (int(v) for v in invalid[0])
            raise EvaluationError(f"target gives event {first + i} probability "
                                  f"{float(pi[i, a])!r} for {chunk.arms[a]!r}; "
                                  "probabilities must be finite and >= 0")
        sums = pi.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1.0) > _SUM_TOLERANCE)
        if off.size:
            i = int(off[0])
            raise EvaluationError(f"target's probabilities for event {first + i} sum to "
                                  f"{float(sums[i])!r}, not 1")
        bad = np.flatnonzero(~((chunk.propensity > 0.0) & (chunk.propensity <= 1.0)))
        if bad.size:
            i = int(bad[0])
            raise EvaluationError(f"event {first + i}'s logged probability must be in (0, 1], "
                                  f"got {float(chunk.propensity[i])!r}")
        bad = np.flatnonzero(~np.isfinite(chunk.reward))
        if bad.size:
            i = int(bad[0])
            raise EvaluationError(f"event {first + i}'s reward must be finite, "
                                  f"got {float(chunk.reward[i])!r}")

    def _columns(self, arms: Sequence[Arm]) -> IntArray:
        """The global column of each of the chunk's arms, widening the sums for new arms."""
        old = len(self._arms)
        for arm in arms:
            self._arms.setdefault(arm, len(self._arms))
        new = len(self._arms)
        if new > old:
            self._moments.widen(_widened_positions(old, new), _LEADING + _BLOCKS * new)
            self._taken = np.concatenate([self._taken, np.zeros(new - old, np.int64)])
            self._supported_mass = np.concatenate([self._supported_mass, np.zeros(new - old)])
        return np.fromiter((self._arms[arm] for arm in arms), np.intp, len(arms))

    def _count_support(self, chunk: LogChunk, pi: FloatArray, columns: IntArray) -> None:
        positive = pi > 0.0
        logged = chunk.logged > 0.0
        outside = np.where(logged, 0.0, pi).sum(axis=1)
        unsupported = outside > 0.0
        self._outside_events += int(unsupported.sum())
        self._outside_mass += float(outside.sum())
        inside = positive & logged
        np.add.at(self._supported_mass, columns, np.where(inside, pi, 0.0).sum(axis=0))
        inside = inside[~unsupported]
        arms = chunk.arms
        if len(arms) <= _PACKED_ARMS:  # one integer per event: 5x faster than rows
            bits = inside.astype(np.int64) @ (np.int64(1) << np.arange(len(arms), dtype=np.int64))
            codes, counts = np.unique(bits, return_counts=True)
            for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
                self._supported_sets[frozenset(arm for j, arm in enumerate(arms)
                                               if code >> j & 1)] += count
            return
        patterns, counts = np.unique(inside, axis=0, return_counts=True)
        for pattern, count in zip(patterns.tolist(), counts.tolist(), strict=True):
            self._supported_sets[frozenset(arm for arm, on in zip(arms, pattern, strict=True)
                                           if on)] += count

    def _support(self, took: BoolArray) -> tuple[int, float]:
        """Unsupported events and total mass, now that the never-taken arms are known."""
        never = {arm for arm, column in self._arms.items() if not took[column]}
        events = self._outside_events + sum(count for arms, count in self._supported_sets.items()
                                            if not never.isdisjoint(arms))
        mass = self._outside_mass + sum(float(self._supported_mass[self._arms[arm]])
                                        for arm in never)
        return events, mass

    def _interval(self, name: str, value: float, theta: FloatArray, ess: float) -> Estimate:
        """``value ± z·se`` with se² = θᵀCθ/(n(n − 1)): ``estimate``'s, from the sums."""
        n = self.n
        if math.isnan(value):
            std_error = math.nan
        elif n < 2:
            std_error = math.inf
        else:
            spread = max(float(theta @ self._moments.comoment @ theta), 0.0)
            std_error = math.sqrt(spread / (n - 1)) / math.sqrt(n)
        half = self._z * std_error
        return Estimate(name, value, value - half, value + half, std_error, ess, n)


class _Moments:
    """Count, mean and co-moment matrix C = Σ (z − z̄)(z − z̄)ᵀ of rows z, merged chunk by chunk.

    Chan, Golub & LeVeque (1983): merging (n_A, z̄_A, C_A) with a chunk's
    (n_B, z̄_B, C_B) gives z̄ = z̄_A + δ n_B/n and C = C_A + C_B + δδᵀ n_A n_B/n,
    δ = z̄_B − z̄_A. No raw sum of squares is formed, so a variance small next to
    the mean squared (rewards near a constant) keeps its digits.
    """

    def __init__(self, size: int) -> None:
        self.count = 0
        self.mean = np.zeros(size)
        self.comoment = np.zeros((size, size))

    def add(self, rows: FloatArray) -> None:
        n_b = rows.shape[0]
        mean_b = rows.mean(axis=0)
        centred = rows - mean_b
        comoment_b = centred.T @ centred
        n_a, n = self.count, self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.comoment = self.comoment + comoment_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    def widen(self, positions: IntArray, size: int) -> None:
        """Insert all-zero columns: the events so far had 0 there (mean 0, co-moments 0)."""
        mean = np.zeros(size)
        mean[positions] = self.mean
        comoment = np.zeros((size, size))
        comoment[np.ix_(positions, positions)] = self.comoment
        self.mean, self.comoment = mean, comoment


def _block(block: int, k: int) -> slice:
    start = _LEADING + block * k
    return slice(start, start + k)


def _widened_positions(old: int, new: int) -> IntArray:
    """Where each of z's columns for ``old`` arms goes when there are ``new`` arms."""
    leading = np.arange(_LEADING)
    blocks = [_LEADING + block * new + np.arange(old) for block in range(_BLOCKS)]
    return np.concatenate([leading, *blocks]).astype(np.intp)


def _unit(size: int, index: int) -> FloatArray:
    vector = np.zeros(size)
    vector[index] = 1.0
    return vector


# -- ``estimate`` over chunks ----------------------------------------------------------


def estimate_chunks(
    chunks: Iterable[LogChunk],
    target: Target,
    *,
    estimators: Sequence[str] = ESTIMATORS,
    reward_model: str | RewardFunction = "per_arm",
    clip: float | None = None,
    confidence: float = 0.95,
) -> dict[str, Estimate]:
    """``estimate`` over chunks: the target asked chunk by chunk, the sums kept by ``Evaluation``.

    A context-free ``Policy`` is asked once per distinct offered set in a chunk;
    any other target once per event, with that event's context, so the chunks
    must carry ``contexts``. Like ``estimate``, it refuses a target that puts mass
    where the log says nothing (``Evaluation`` reports such estimates, marked biased).
    """
    if not (isinstance(reward_model, str) and reward_model == "per_arm"):
        raise EvaluationError(f"reward_model {reward_model!r} needs every event at once; over "
                              "chunks only 'per_arm' is available")
    evaluation = Evaluation(estimators=estimators, clip=clip, confidence=confidence)
    for chunk in chunks:
        if not isinstance(chunk, LogChunk):
            raise EvaluationError(f"logs mix LogChunk with {type(chunk).__name__}; "
                                  "pass chunks only or decisions only")
        evaluation.add(*target_probabilities(target, chunk, first=evaluation.n))
    result = evaluation.result()
    if result.biased:
        raise EvaluationError(f"target gives probability to variants the log has no evidence "
                              f"on (not offered, offered with 0, or never taken) in "
                              f"{result.unsupported_events} of {evaluation.n} events; its "
                              "estimates would be biased (Evaluation reports them, marked so)")
    return result.estimates


def target_probabilities(
    target: Target, chunk: LogChunk, *, first: int = 0
) -> tuple[LogChunk, FloatArray]:
    """The target's π over the chunk's arms, one row per event.

    ``first`` numbers the chunk's first event in error messages.

    Arms the target names beyond ``chunk.arms`` become extra columns (logged with
    probability 0, so their mass counts as unsupported): the chunk returned is
    the one π is over.
    """
    if isinstance(target, Policy) and not target.contextual:
        blocks = _ask_per_offered_set(target, chunk)
    else:
        blocks = _ask_per_event(_asker(target), chunk, first)
    index = {arm: column for column, arm in enumerate(chunk.arms)}
    for keys, _, _ in blocks:
        for arm in keys:
            index.setdefault(arm, len(index))
    extra = len(index) - len(chunk.arms)
    if extra:
        rows = len(chunk)
        chunk = replace(chunk, arms=tuple(index),
                        logged=np.hstack([chunk.logged, np.zeros((rows, extra))]),
                        offered=np.hstack([chunk.offered, np.zeros((rows, extra), np.bool_)]))
    pi = np.zeros((len(chunk), len(index)))
    for keys, rows_, values in blocks:
        if keys:
            columns = np.fromiter((index[arm] for arm in keys), np.intp, len(keys))
            pi[np.ix_(rows_, columns)] = values
    return chunk, pi


# The target's answers for a set of rows: (its arms, the rows, one row of
# probabilities per row, or one shared by all of them).
_Block: TypeAlias = tuple[tuple[Arm, ...], IntArray, FloatArray]


def _ask_per_offered_set(policy: Policy, chunk: LogChunk) -> list[_Block]:
    """A context-free policy's answer depends on the offered set alone: ask once per set."""
    sets, inverse = np.unique(chunk.offered, axis=0, return_inverse=True)
    blocks: list[_Block] = []
    for number, offered in enumerate(sets):
        eligible = tuple(arm for arm, on in zip(chunk.arms, offered.tolist(), strict=True) if on)
        try:
            distribution = policy.probabilities(None, eligible)
        except ArmError as exc:
            raise EvaluationError(f"target cannot answer events offering {list(eligible)}: "
                                  f"{exc}") from exc
        values = np.array(list(distribution.values()), dtype=np.float64)
        blocks.append((tuple(distribution), np.flatnonzero(inverse.ravel() == number), values))
    return blocks


def _ask_per_event(
    ask: Callable[[Context | None, tuple[Arm, ...]], Mapping[Arm, float]],
    chunk: LogChunk,
    first: int,
) -> list[_Block]:
    """Ask once per event with its context; answers grouped by their keys to fill π fast."""
    contexts = chunk.contexts
    if contexts is None:
        raise EvaluationError("the target needs each event's context (it is contextual or a "
                              "function), but the chunks carry none; read them with contexts")
    arms = np.asarray(chunk.arms, dtype=object)
    groups: dict[tuple[Arm, ...], tuple[list[int], list[tuple[float, ...]]]] = {}
    for i, (context, offered) in enumerate(zip(contexts, chunk.offered, strict=True)):
        try:
            distribution = ask(context, tuple(arms[offered].tolist()))
        except ArmError as exc:
            raise EvaluationError(f"target cannot answer event {first + i}: {exc}") from exc
        keys = tuple(distribution)
        group = groups.get(keys)
        if group is None:
            group = groups[keys] = ([], [])
        group[0].append(i)
        group[1].append(tuple(distribution.values()))
    return [(keys, np.array(rows, dtype=np.intp),
             np.array(values, dtype=np.float64).reshape(len(rows), len(keys)))
            for keys, (rows, values) in groups.items()]


def _asker(target: Target) -> Callable[[Context | None, tuple[Arm, ...]], Mapping[Arm, float]]:
    if isinstance(target, TargetPolicy):
        policy = target
        return lambda context, eligible: policy.probabilities(context, eligible)
    if callable(target):
        function = target
        return lambda context, eligible: function(context)
    raise EvaluationError("target must be a policy (with .probabilities) or a callable "
                          f"context -> {{action: probability}}, got {target!r}")

