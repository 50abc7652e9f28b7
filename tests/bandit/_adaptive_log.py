"""Logs of an adaptive logger with known Bernoulli means, many runs at once.

The logger learns in batches: before each batch it serves
p = floor + (1 − K·floor)·softmax(β·running means), a new policy version per
batch, so its probabilities move with what it has seen. A share of events offers
a random pair of arms only (p renormalised over the pair). A dishonest logger
serves p but writes something else: ``"inflate"`` writes 1.2·p(A) renormalised,
``"stale"`` the previous batch's (pre-update) probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from bandit.ope import LogChunk

ARMS = ("A", "B", "C")
MEANS = np.array([0.3, 0.5, 0.7])
TARGET_WEIGHTS = np.array([0.2, 0.3, 0.5])

Lie = Literal["honest", "inflate", "stale"]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Logs:
    """One row per run: (runs, events) arrays, (runs, events, K) for distributions."""

    action: npt.NDArray[np.intp]
    served: Floats
    logged: Floats
    offered: npt.NDArray[np.bool_]
    reward: Floats
    version: npt.NDArray[np.intp]

    @property
    def runs(self) -> int:
        return int(self.action.shape[0])

    def chunks(self, run: int, size: int, *, propensity: Floats | None = None) -> list[LogChunk]:
        """Run ``run`` as chunks of ``size`` events; ``propensity`` overrides the logged one."""
        events = self.action.shape[1]
        rows = np.arange(events)
        logged = self.logged[run]
        chosen = logged[rows, self.action[run]] if propensity is None else propensity
        versions = tuple(str(v) for v in range(int(self.version[run].max()) + 1))
        return [LogChunk("demo", ARMS, self.action[run, s], chosen[s], logged[s],
                         self.offered[run, s], self.reward[run, s], rows[s].astype(float),
                         np.zeros(s.stop - s.start, np.bool_), self.version[run, s], versions)
                for s in (slice(i, min(i + size, events)) for i in range(0, events, size))]


def restrict(weights: Floats, offered: npt.NDArray[np.bool_]) -> Floats:
    """``weights`` (…, K) kept on the offered arms and renormalised."""
    kept = np.where(offered, weights, 0.0)
    return np.asarray(kept / kept.sum(axis=-1, keepdims=True))


def target_pi(offered: npt.NDArray[np.bool_]) -> Floats:
    """The candidate: fixed weights ``TARGET_WEIGHTS`` over whatever is offered."""
    return restrict(np.broadcast_to(TARGET_WEIGHTS, offered.shape), offered)


def target_truth(subsets: float) -> float:
    """The candidate's true mean reward when a pair is offered with probability ``subsets``."""
    full = float(TARGET_WEIGHTS @ MEANS)
    pairs = [restrict(TARGET_WEIGHTS, np.arange(3) != drop) @ MEANS for drop in range(3)]
    return (1.0 - subsets) * full + subsets * float(np.mean(pairs))


def adaptive_logs(
    runs: int,
    events: int,
    *,
    seed: int,
    batch: int = 100,
    beta: float = 8.0,
    floor: float = 0.05,
    subsets: float = 0.2,
    lie: Lie = "honest",
) -> Logs:
    rng = np.random.default_rng(seed)
    k = len(ARMS)
    offered = np.ones((runs, events, k), np.bool_)
    pair = rng.random((runs, events)) < subsets
    drop = rng.integers(0, k, (runs, events))
    offered[pair, drop[pair]] = False
    action = np.zeros((runs, events), np.intp)
    served = np.zeros((runs, events, k))
    logged = np.zeros((runs, events, k))
    reward = np.zeros((runs, events))
    version = np.repeat(np.arange(-(-events // batch)), batch)[:events]
    totals = np.zeros((runs, k))
    counts = np.zeros((runs, k))
    previous = np.full((runs, k), 1.0 / k)
    for start in range(0, events, batch):
        part = slice(start, min(start + batch, events))
        means = (totals + 0.5) / (counts + 1.0)
        scores = np.exp(beta * (means - means.max(axis=1, keepdims=True)))
        policy = floor + (1.0 - k * floor) * scores / scores.sum(axis=1, keepdims=True)
        p = restrict(policy[:, None, :], offered[:, part])
        u = rng.random(p.shape[:2])
        chosen = np.minimum((u[..., None] > np.cumsum(p, axis=-1)).sum(axis=-1), k - 1)
        r = (rng.random(chosen.shape) < MEANS[chosen]).astype(float)
        served[:, part], action[:, part], reward[:, part] = p, chosen, r
        if lie == "stale":
            logged[:, part] = restrict(previous[:, None, :], offered[:, part])
        elif lie == "inflate":
            logged[:, part] = restrict(p * np.array([1.2, 1.0, 1.0]), offered[:, part])
        else:
            logged[:, part] = p
        np.add.at(totals, (np.arange(runs)[:, None], chosen), r)
        np.add.at(counts, (np.arange(runs)[:, None], chosen), 1.0)
        previous = policy
    return Logs(action, served, logged, offered, reward, np.broadcast_to(version, (runs, events)))
