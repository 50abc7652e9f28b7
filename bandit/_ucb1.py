"""``ucb1``: the arm with the highest upper confidence bound (Auer et al. 2002)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._arm_stats import read_discount
from ._change_detection import read_change_detection
from ._context_free import ContextFreePolicy
from ._greedy import top_share
from ._policy import FloatArray, Policy
from ._registry import register
from ._spec import SpecReader
from ._types import Arm, Context


@register
class UCB1Policy(ContextFreePolicy):
    """Choose ``argmax mean_i + α·sqrt(2·ln N / n_i)`` over the offered arms.

    N is the total (discounted, with ``discount``: discounted UCB, Garivier &
    Moulines 2011) count over all arms, n_i the arm's. The choice is
    deterministic: probability 1 on the top arm (ties share), so exploration
    beyond the bonus comes only from ``floor``. Untried arms go first.
    """

    type_name = "ucb1"

    @classmethod
    def _from_reader(
        cls, reader: SpecReader, arms: Sequence[Arm], *, floor: float, seed: int
    ) -> Policy:
        alpha = reader.number("alpha", 1.0, low=0.0)
        discount = read_discount(reader)
        return cls(arms, floor=floor, seed=seed, discount=discount,
                   params={"alpha": alpha, **read_change_detection(reader, restart="arm")})

    def _weights(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        index = [self._arms.index(arm) for arm in offered]
        n = self.stats.n[index]
        total = float(self.stats.n.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            bonus = float(self.params["alpha"]) * np.sqrt(2.0 * math.log(max(total, 1.0)) / n)
            scores = np.where(n > 0, self.stats.total[index] / n + bonus, np.nan)
        return top_share(scores)
