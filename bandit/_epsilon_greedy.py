"""``epsilon_greedy``: the best mean so far, and a uniform ε to explore."""

from __future__ import annotations

from collections.abc import Sequence

from ._arm_stats import read_discount
from ._change_detection import read_change_detection
from ._context_free import ContextFreePolicy
from ._greedy import top_share
from ._policy import FloatArray, Policy
from ._registry import register
from ._spec import SpecReader
from ._types import Arm, Context


@register
class EpsilonGreedyPolicy(ContextFreePolicy):
    """Probability ``ε/k`` for each of the k offered arms, plus ``1-ε`` on the best mean.

    With ``decay = d > 0`` the exploration rate after n rewards is ``ε / (1 + d·n)``
    (n is the discounted count when ``discount`` is set). Untried arms rank first;
    tied arms share the greedy mass.
    """

    type_name = "epsilon_greedy"

    @classmethod
    def _from_reader(
        cls, reader: SpecReader, arms: Sequence[Arm], *, floor: float, seed: int
    ) -> Policy:
        epsilon = reader.number("epsilon", 0.1, low=0.0, high=1.0)
        decay = reader.number("decay", 0.0, low=0.0)
        discount = read_discount(reader)
        return cls(arms, floor=floor, seed=seed, discount=discount,
                   params={"epsilon": epsilon, "decay": decay,
                           **read_change_detection(reader)})

    def current_epsilon(self) -> float:
        """The exploration rate at the current state."""
        epsilon = float(self.params["epsilon"])
        decay = float(self.params["decay"])
        return epsilon / (1.0 + decay * float(self.stats.n.sum()))

    def _weights(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        index = [self._arms.index(arm) for arm in offered]
        greedy = top_share(self.stats.mean()[index])
        epsilon = self.current_epsilon()
        return epsilon / len(offered) + (1.0 - epsilon) * greedy
