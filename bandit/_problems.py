"""Simulated environments: the ``Problem`` protocol, Bernoulli and contextual problems."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ._policy import FloatArray
from ._types import Arm, Context


class Problem(Protocol):
    """An environment: arms, a context per step, expected and drawn rewards.

    ``means`` is the expected reward of every arm (in ``arms`` order) at step ``t``
    for that context; ``reward`` draws one reward for the chosen arm.
    """

    @property
    def arms(self) -> tuple[Arm, ...]: ...

    def context(self, t: int, rng: np.random.Generator) -> dict[str, Any] | None: ...

    def means(self, t: int, context: Context | None) -> FloatArray: ...

    def reward(
        self, t: int, context: Context | None, arm_index: int, rng: np.random.Generator
    ) -> float: ...


class BernoulliProblem:
    """Context-free arms with 0/1 rewards; ``switches`` change the means at given steps.

    ``switches=[(step, new_means), ...]``: from step ``step`` (0-based, inclusive)
    on, the means are ``new_means``, until the next switch. Each reward uses one
    uniform draw (``u < mean``), whichever arm is chosen.
    """

    def __init__(
        self,
        means: Sequence[float],
        *,
        arms: Sequence[str] | None = None,
        switches: Sequence[tuple[int, Sequence[float]]] = (),
    ) -> None:
        first = _check_means(means, None, "means")
        if arms is None:
            arms = [f"arm{i}" for i in range(first.size)]
        _check_arms(arms, first.size)
        self._arms = tuple(arms)
        self._starts = [0]
        self._schedule = [first]
        for step, new_means in sorted(switches, key=lambda switch: switch[0]):
            if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
                raise ValueError(f"switch step must be a positive integer, got {step!r}")
            if step == self._starts[-1]:
                raise ValueError(f"two switches at step {step}")
            self._starts.append(step)
            self._schedule.append(_check_means(new_means, first.size, f"switch at step {step}"))

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self._arms

    def context(self, t: int, rng: np.random.Generator) -> dict[str, float] | None:
        """Always None: these arms ignore context."""
        return None

    def means(self, t: int, context: Context | None = None) -> FloatArray:
        """The means in force at step ``t`` (read-only)."""
        return self._schedule[bisect.bisect_right(self._starts, t) - 1]

    def reward(
        self, t: int, context: Context | None, arm_index: int, rng: np.random.Generator
    ) -> float:
        return 1.0 if rng.random() < self.means(t)[arm_index] else 0.0


class DriftingProblem:
    """Context-free 0/1 arms whose means move linearly between ``knots``.

    ``knots=[(step, means), ...]`` (steps strictly increasing, the first 0): at
    a knot's step the means are the knot's, between two knots they move in a
    straight line, after the last knot they stay. Two knots one step apart make
    an abrupt switch; knots far apart a gradual drift. Each reward uses one
    uniform draw (``u < mean``), as in ``BernoulliProblem``.
    """

    def __init__(self, knots: Sequence[tuple[int, Sequence[float]]], *,
                 arms: Sequence[str] | None = None) -> None:
        if not knots or knots[0][0] != 0:
            raise ValueError("the first knot must be at step 0")
        first = _check_means(knots[0][1], None, "knot at step 0")
        steps = [step for step, _ in knots]
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"knot steps must increase strictly, got {steps}")
        if arms is None:
            arms = [f"arm{i}" for i in range(first.size)]
        _check_arms(arms, first.size)
        self._arms = tuple(arms)
        self._steps = np.array(steps, dtype=np.float64)
        self._means = np.stack([_check_means(means, first.size, f"knot at step {step}")
                                for step, means in knots])

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self._arms

    def context(self, t: int, rng: np.random.Generator) -> dict[str, float] | None:
        """Always None: these arms ignore context."""
        return None

    def means(self, t: int, context: Context | None = None) -> FloatArray:
        """The means at step ``t``, interpolated between the knots around it."""
        return np.array([np.interp(t, self._steps, column) for column in self._means.T])

    def reward(
        self, t: int, context: Context | None, arm_index: int, rng: np.random.Generator
    ) -> float:
        return 1.0 if rng.random() < self.means(t)[arm_index] else 0.0


# The contextual problem's shape. With isotropic contexts and orthonormal arm
# weights the scores of the arms are independent N(bias_a, SCALE²), whatever the
# seed, so every arm's mean and the oracle's are fixed numbers. For 4 arms, by
# numerical integration (E[σ(2Z + bₐ)] per arm; E[max] from the max's CDF
# ∏ₐ Φ((logit y − bₐ)/2)): arms 0.5752, 0.5252, 0.4748, 0.4248; oracle 0.8286.
# SCALE 2 makes the context decide (oracle ≫ best arm) while staying learnable
# by a linear model per arm in a few thousand events (VW --cb_explore_adf -q,
# measured: --squarecb ≈ 0.80, --cover 3 ≈ 0.72 over steps 6k–10k).
_SCALE = 2.0
_BIAS_RANGE = (0.5, -0.5)


class ContextualProblem:
    """Bernoulli rewards with ``p = sigmoid(2·wₐ·x + bₐ)``; the context decides the best arm.

    A context is ``{"x0": ..., "x{n_features-1}": ...}`` with independent N(0, 1)
    values. The arms' weight vectors ``wₐ`` are orthonormal (random, from
    ``seed``; merely unit-length when ``n_arms > n_features``), so each arm is
    best in its own region of context space; the intercepts ``bₐ`` run from 0.5
    down to −0.5, so arm 0 is the best *fixed* arm. For 4 arms the best fixed arm
    earns 0.575 and the per-context oracle 0.829, whatever the seed. The expected reward
    is linear-in-features per arm inside a logistic, which a learner with
    shared × action interactions (VW ``-q``) can fit.
    """

    def __init__(self, n_arms: int = 4, n_features: int = 20, seed: int = 0) -> None:
        if n_arms < 1 or n_features < 1:
            raise ValueError(f"need n_arms >= 1 and n_features >= 1, got {n_arms}, {n_features}")
        rng = np.random.default_rng(seed)
        gaussian = rng.standard_normal((n_features, n_arms))
        if n_arms <= n_features:
            weights, _ = np.linalg.qr(gaussian)
        else:
            weights = gaussian / np.linalg.norm(gaussian, axis=0)
        self.weights: FloatArray = np.ascontiguousarray(_SCALE * weights.T)
        self.bias: FloatArray = np.linspace(*_BIAS_RANGE, n_arms)
        self.features: tuple[str, ...] = tuple(f"x{j}" for j in range(n_features))
        self._arms = tuple(f"arm{i}" for i in range(n_arms))

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self._arms

    def context(self, t: int, rng: np.random.Generator) -> dict[str, float] | None:
        values = rng.standard_normal(len(self.features)).tolist()
        return dict(zip(self.features, values, strict=True))

    def means(self, t: int, context: Context | None) -> FloatArray:
        if context is None:
            raise ValueError("ContextualProblem needs a context")
        x = np.fromiter((context[name] for name in self.features), dtype=np.float64,
                        count=len(self.features))
        return np.asarray(1.0 / (1.0 + np.exp(-(self.weights @ x + self.bias))),
                          dtype=np.float64)

    def reward(
        self, t: int, context: Context | None, arm_index: int, rng: np.random.Generator
    ) -> float:
        return 1.0 if rng.random() < self.means(t, context)[arm_index] else 0.0


# The categorical problem's features: (name, values, frequencies). The last is a
# bool, present (True) in half the contexts; the policies see True as a feature
# and False as none, as they see every bool.
_CATEGORICAL_FEATURES: tuple[tuple[str, tuple[Any, ...], tuple[float, ...]], ...] = (
    ("country", tuple(f"c{i:02d}" for i in range(12)),
     tuple(1.0 / (i + 1) for i in range(12))),  # Zipf: a few big markets, a long tail
    ("device", ("ios", "android", "web"), (0.4, 0.4, 0.2)),
    ("plan", ("free", "basic", "pro", "team"), (0.55, 0.25, 0.15, 0.05)),
    ("returning", (False, True), (0.5, 0.5)),
)
_EFFECT_SCALE = 1.0


class CategoricalProblem:
    """Bernoulli rewards from categorical contexts: ``p = sigmoid(bₐ + Σ_f e[a, f, x_f])``.

    A context is ``{"country": "c00".."c11", "device": "ios" | "android" | "web",
    "plan": "free" | "basic" | "pro" | "team", "returning": bool}``, each drawn
    independently (countries Zipf-distributed, so rare values are seen rarely).
    Every arm has its own effect per feature value, N(0, 1) from ``seed``, and the
    intercepts ``bₐ`` of ``ContextualProblem``; the expected reward is additive in
    the one-hot features inside a logistic, so a per-arm linear model on the
    one-hot features (VW's ``name=value`` features with ``-q sa``) can fit it.

    There are 288 distinct contexts, so ``expected_rewards`` computes the best
    fixed arm's and the per-context oracle's mean reward exactly.
    """

    def __init__(self, n_arms: int = 4, seed: int = 0) -> None:
        if n_arms < 1:
            raise ValueError(f"need n_arms >= 1, got {n_arms}")
        rng = np.random.default_rng(seed)
        self.features: tuple[str, ...] = tuple(name for name, _, _ in _CATEGORICAL_FEATURES)
        self._values = [values for _, values, _ in _CATEGORICAL_FEATURES]
        self._frequencies = [np.array(f) / sum(f) for _, _, f in _CATEGORICAL_FEATURES]
        self._cumulative = [np.cumsum(f) for f in self._frequencies]
        self._effects: list[FloatArray] = [
            _EFFECT_SCALE * rng.standard_normal((len(values), n_arms)) for values in self._values]
        self.bias: FloatArray = np.linspace(*_BIAS_RANGE, n_arms)
        self._position = [{value: i for i, value in enumerate(values)}
                          for values in self._values]
        self._arms = tuple(f"arm{i}" for i in range(n_arms))

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self._arms

    def context(self, t: int, rng: np.random.Generator) -> dict[str, Any] | None:
        draws = rng.random(len(self.features))
        # Inverse CDF per feature; min() guards against a cumulative sum just below 1.
        return {name: values[min(int(np.searchsorted(cumulative, u, side="right")),
                                 len(values) - 1)]
                for name, values, cumulative, u in zip(self.features, self._values,
                                                       self._cumulative, draws.tolist(),
                                                       strict=True)}

    def means(self, t: int, context: Context | None) -> FloatArray:
        if context is None:
            raise ValueError("CategoricalProblem needs a context")
        logits = self.bias.copy()
        for name, effects, position in zip(self.features, self._effects, self._position,
                                           strict=True):
            logits += effects[position[context[name]]]
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def reward(
        self, t: int, context: Context | None, arm_index: int, rng: np.random.Generator
    ) -> float:
        return 1.0 if rng.random() < self.means(t, context)[arm_index] else 0.0

    def expected_rewards(self) -> tuple[FloatArray, float]:
        """Each fixed arm's mean reward and the oracle's, exactly (over every context)."""
        arms = np.zeros(len(self._arms))
        oracle = 0.0
        for combination in np.ndindex(*(len(v) for v in self._values)):
            weight = math.prod(float(f[i]) for f, i in zip(self._frequencies, combination,
                                                             strict=True))
            context = {name: values[i] for name, values, i in zip(self.features, self._values,
                                                                  combination, strict=True)}
            means = self.means(0, context)
            arms += weight * means
            oracle += weight * float(means.max())
        return arms, oracle


def _check_means(means: Sequence[float], size: int | None, what: str) -> FloatArray:
    values = np.array(means, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{what}: need a non-empty list of means")
    if size is not None and values.size != size:
        raise ValueError(f"{what}: {values.size} means for {size} arms")
    if not all(math.isfinite(m) and 0.0 <= m <= 1.0 for m in values.tolist()):
        raise ValueError(f"{what}: Bernoulli means must lie in [0, 1], got {list(means)}")
    values.setflags(write=False)
    return values


def _check_arms(arms: Sequence[str], size: int) -> None:
    if isinstance(arms, str) or len(arms) != size:
        raise ValueError(f"need {size} arm names, got {arms!r}")
    if len(set(arms)) != size or not all(isinstance(a, str) and a for a in arms):
        raise ValueError(f"arm names must be unique non-empty strings, got {list(arms)!r}")
