"""Per-arm sufficient statistics with optional discounting, shared by the context-free policies.

For each arm: ``n`` (weighted count), ``total`` (weighted sum of rewards) and
``total_sq`` (weighted sum of squared rewards). With a forgetting factor
``γ ∈ (0, 1]``, every event first multiplies every arm's statistics by γ, then
adds to the chosen arm (discounted UCB / discounted Thompson sampling, Garivier &
Moulines 2011; Raj & Kalyani 2017). A batch of m events is applied in closed
form: event t (1-based) ends up weighted γ^(m-t), the old state γ^m.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._policy import FloatArray
from ._spec import SpecReader
from ._types import Arm, Feedback


class ArmStatistics:
    """Discounted counts, sums and sums of squares, one entry per arm."""

    def __init__(self, size: int, discount: float = 1.0) -> None:
        self.discount = discount
        self.n: FloatArray = np.zeros(size)
        self.total: FloatArray = np.zeros(size)
        self.total_sq: FloatArray = np.zeros(size)

    def record(self, batch: Sequence[Feedback], arms: Sequence[Arm]) -> None:
        """Add a batch of feedback (arms already validated) in order."""
        index = {arm: i for i, arm in enumerate(arms)}
        chosen = np.fromiter((index[f.arm] for f in batch), dtype=np.intp, count=len(batch))
        rewards = np.fromiter((f.reward for f in batch), dtype=np.float64, count=len(batch))
        m = len(batch)
        if self.discount < 1.0:
            decay = self.discount ** m
            self.n *= decay
            self.total *= decay
            self.total_sq *= decay
            weights = self.discount ** np.arange(m - 1, -1, -1, dtype=np.float64)
        else:
            weights = np.ones(m)
        np.add.at(self.n, chosen, weights)
        np.add.at(self.total, chosen, weights * rewards)
        np.add.at(self.total_sq, chosen, weights * rewards * rewards)

    def mean(self) -> FloatArray:
        """Mean reward per arm; NaN for arms never played."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n > 0, self.total / self.n, np.nan)

    def reset(self, indices: Sequence[int]) -> None:
        """Forget these arms' statistics (back to no data)."""
        self.n[list(indices)] = 0.0
        self.total[list(indices)] = 0.0
        self.total_sq[list(indices)] = 0.0

    def append(self) -> None:
        self.n = np.append(self.n, 0.0)
        self.total = np.append(self.total, 0.0)
        self.total_sq = np.append(self.total_sq, 0.0)

    def delete(self, index: int) -> None:
        self.n = np.delete(self.n, index)
        self.total = np.delete(self.total, index)
        self.total_sq = np.delete(self.total_sq, index)

    def to_state(self) -> dict[str, Any]:
        return {
            "discount": self.discount,
            "n": self.n.tolist(),
            "total": self.total.tolist(),
            "total_sq": self.total_sq.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ArmStatistics:
        n = np.asarray(state["n"], dtype=np.float64)
        stats = cls(n.size, float(state["discount"]))
        stats.n = n
        stats.total = np.asarray(state["total"], dtype=np.float64)
        stats.total_sq = np.asarray(state["total_sq"], dtype=np.float64)
        if not stats.n.shape == stats.total.shape == stats.total_sq.shape:
            raise ValueError("arm statistics of different lengths")
        return stats


def read_discount(reader: SpecReader) -> float:
    """The ``discount`` key every context-free policy accepts: γ ∈ (0, 1], 1 = no forgetting."""
    return float(reader.number("discount", 1.0, low=0.0, high=1.0, low_open=True))
