"""Change-point detection for the context-free policies: a Bernoulli GLR test per arm.

Discounting forgets at a fixed rate whether or not anything changed, so it pays
for its memory on every stationary stretch. A change detector keeps the full
memory and forgets only when the data say an arm's mean moved, as in GLR-klUCB
(Besson, Kaufmann, Maillard & Seznec 2022, "Efficient change-point detection
for tackling piecewise-stationary bandits", JMLR 23). On an alarm the policy
restarts either every arm (``restart: all``, the paper's global restart) or
only the arm that changed (``restart: arm``, its local restart: the other arms
keep their evidence). A policy that stops playing the arms it thinks worse
(thompson, epsilon_greedy's greedy part) learns of their moves only by
restarting, so it defaults to ``all``; ucb1 keeps sampling every arm at a
logarithmic rate by itself, and restarting all would make it pay that
exploration again, so it defaults to ``arm`` (bench/regret.py, ``switch``:
ucb1 0.84 × mabwiser's UCB1 regret with ``arm``, 1.24 × with ``all``;
thompson 0.69 × and 0.37 ×).

A test only sees the rewards an arm is played for, so an arm the policy has
abandoned would never show that it got better. ``explore`` = α mixes the
policy's probabilities with the uniform split, ``(1 − α)·p + α/k`` over the k
offered arms (the paper's forced exploration), so every arm keeps being
observed at a rate of at least α/k; the mixture is part of the probabilities
the policy serves and logs. It costs about α·T·(mean gap) regret on a
stationary problem, so it is a trade, not free: see the README.

The test, for an arm with n rewards x₁…xₙ in [0, 1] since the last restart:

    GLR = max over splits s of  s·kl(μ̂₁:ₛ, μ̂₁:ₙ) + (n − s)·kl(μ̂ₛ₊₁:ₙ, μ̂₁:ₙ)

with kl the Bernoulli relative entropy (valid for any reward in [0, 1]: bounded
rewards are sub-Bernoulli), alarming when GLR ≥ ln(3·n^1.5 / δ), the paper's
threshold with false-alarm probability about δ per arm and stretch. To keep the
state small and the test cheap, rewards are summed in blocks of ``block`` events
and splits are tried at block boundaries only (the paper's own subsampling);
at most ``max_blocks`` blocks are kept per arm, the oldest dropped first, so
memory is bounded and a snapshot stays a few kilobytes per arm.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._policy import FloatArray
from ._spec import SpecReader

DEFAULT_DELTA = 0.001
DEFAULT_BLOCK = 10
DEFAULT_MAX_BLOCKS = 1000
DEFAULT_RESTART = "all"
DEFAULT_EXPLORE = 0.0
RESTARTS = ("arm", "all")
_EPS = 1e-12


def read_change_detection(reader: SpecReader,
                          restart: str = DEFAULT_RESTART) -> dict[str, Any]:
    """The optional ``change_detection`` section as params (``{}`` when absent).

    ``restart`` is the policy type's default for the ``restart`` key.
    """
    if not reader.has("change_detection"):
        return {}
    section = reader.section("change_detection")
    config = {
        "delta": section.number("delta", DEFAULT_DELTA, low=0.0, high=1.0,
                                low_open=True, high_open=True),
        "block": section.integer("block", DEFAULT_BLOCK, low=1, high=100_000),
        "max_blocks": section.integer("max_blocks", DEFAULT_MAX_BLOCKS, low=2,
                                      high=1_000_000),
        "restart": section.choice("restart", restart, RESTARTS),
        "explore": section.number("explore", DEFAULT_EXPLORE, low=0.0, high=1.0,
                                  high_open=True),
    }
    section.finish()
    return {"change_detection": config}


def bernoulli_kl(p: FloatArray, q: FloatArray) -> FloatArray:
    """kl(p, q) between Bernoulli means, elementwise, clipped away from 0 and 1."""
    p = np.clip(p, _EPS, 1.0 - _EPS)
    q = np.clip(q, _EPS, 1.0 - _EPS)
    return np.asarray(p * np.log(p / q) + (1.0 - p) * np.log((1.0 - p) / (1.0 - q)),
                      dtype=np.float64)


def glr_statistic(counts: FloatArray, sums: FloatArray) -> float:
    """The GLR statistic over splits at block boundaries (0 with fewer than 2 blocks)."""
    if counts.size < 2:
        return 0.0
    n = float(counts.sum())
    mean = float(sums.sum()) / n
    n1 = np.cumsum(counts)[:-1]
    s1 = np.cumsum(sums)[:-1]
    n2 = n - n1
    s2 = float(sums.sum()) - s1
    stat = n1 * bernoulli_kl(s1 / n1, np.full_like(n1, mean)) + n2 * bernoulli_kl(
        s2 / n2, np.full_like(n2, mean))
    return float(stat.max())


def glr_threshold(n: float, delta: float) -> float:
    """ln(3·n^1.5 / δ): Besson et al.'s practical threshold."""
    return math.log(3.0 * n**1.5 / delta)


class _ArmHistory:
    """One arm's closed blocks (count, sum) and the open block being filled."""

    __slots__ = ("counts", "open_count", "open_sum", "sums")

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.sums: list[float] = []
        self.open_count = 0
        self.open_sum = 0.0

    def add(self, reward: float, block: int, max_blocks: int) -> None:
        self.open_count += 1
        self.open_sum += reward
        if self.open_count == block:
            self.counts.append(self.open_count)
            self.sums.append(self.open_sum)
            self.open_count, self.open_sum = 0, 0.0
            if len(self.counts) > max_blocks:
                del self.counts[0], self.sums[0]

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        counts = [*self.counts, self.open_count] if self.open_count else self.counts
        sums = [*self.sums, self.open_sum] if self.open_count else self.sums
        return np.asarray(counts, dtype=np.float64), np.asarray(sums, dtype=np.float64)

    def to_state(self) -> list[Any]:
        return [self.counts, self.sums, self.open_count, self.open_sum]

    @classmethod
    def from_state(cls, state: list[Any]) -> _ArmHistory:
        counts, sums, open_count, open_sum = state
        if len(counts) != len(sums):
            raise ValueError("change detector blocks of different lengths")
        history = cls()
        history.counts = [int(c) for c in counts]
        history.sums = [float(s) for s in sums]
        history.open_count = int(open_count)
        history.open_sum = float(open_sum)
        return history


class ChangeDetector:
    """Per-arm GLR tests; ``observe`` then ``changed`` after each batch, then ``forget``."""

    # A config without ``restart`` / ``explore`` (a snapshot taken before they
    # existed) keeps the behaviour it was saved with: restart all, no exploration.
    def __init__(self, size: int, *, delta: float, block: int, max_blocks: int,
                 restart: str = "all", explore: float = 0.0) -> None:
        self.delta = delta
        self.block = block
        self.max_blocks = max_blocks
        self.restart = restart
        self.explore = explore
        self.restarts = 0
        self._arms = [_ArmHistory() for _ in range(size)]

    def observe(self, index: int, reward: float) -> None:
        """Record one reward (in [0, 1]) for the arm at ``index``."""
        self._arms[index].add(reward, self.block, self.max_blocks)

    def changed(self, indices: set[int]) -> list[int]:
        """Those of these arms whose rewards changed mean since their last restart, in order."""
        alarms = []
        for index in sorted(indices):
            counts, sums = self._arms[index].arrays()
            if counts.size >= 2 and glr_statistic(counts, sums) >= glr_threshold(
                    float(counts.sum()), self.delta):
                alarms.append(index)
        return alarms

    def forget(self, alarms: list[int]) -> list[int]:
        """Drop the history of the arms to restart after these alarms; return their indices.

        ``restart: arm`` restarts the arms that alarmed, ``all`` every arm.
        """
        restarted = alarms if self.restart == "arm" else list(range(len(self._arms)))
        for index in restarted:
            self._arms[index] = _ArmHistory()
        self.restarts += 1
        return restarted

    def append(self) -> None:
        self._arms.append(_ArmHistory())

    def delete(self, index: int) -> None:
        del self._arms[index]

    def to_state(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "arms": [arm.to_state() for arm in self._arms]}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``to_state()``'s output into a detector built with the same config."""
        arms = [_ArmHistory.from_state(arm) for arm in state["arms"]]
        if len(arms) != len(self._arms):
            raise ValueError("change detector and arms differ in length")
        self._arms = arms
        self.restarts = int(state["restarts"])
