"""The common base of the policies that ignore context and keep per-arm statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from ._arm_stats import ArmStatistics
from ._policy import Policy
from ._types import Arm, Feedback


class ContextFreePolicy(Policy):
    """A policy whose state is ``ArmStatistics`` plus a few parameters.

    Subclasses keep their parameters in ``params`` (JSON-ready) and implement
    ``_preferences``; learning, arm changes and snapshots live here.
    """

    def __init__(
        self,
        arms: Sequence[Arm],
        *,
        floor: float = 0.0,
        seed: int = 0,
        discount: float = 1.0,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(arms, floor=floor, seed=seed)
        self.stats = ArmStatistics(len(self._arms), discount)
        self.params: dict[str, Any] = dict(params or {})
        self._validate_params()

    def _validate_params(self) -> None:
        """Hook: check ``params`` on construction and restore."""

    def _check_reward(self, feedback: Feedback) -> None:
        """Hook: refuse rewards outside the policy's model (e.g. Beta needs [0, 1])."""

    def _learn(self, batch: list[Feedback]) -> None:
        for item in batch:
            self._check_reward(item)
        self.stats.record(batch, self._arms)

    def _on_add_arm(self, arm: Arm) -> None:
        self.stats.append()

    def _on_remove_arm(self, arm: Arm, index: int) -> None:
        self.stats.delete(index)

    def _state(self) -> dict[str, Any]:
        return {"params": self.params, "stats": self.stats.to_state()}

    @classmethod
    def _restore(cls, arms: list[Arm], floor: float, seed: int, state: dict[str, Any]) -> Self:
        stats = ArmStatistics.from_state(state["stats"])
        if stats.n.size != len(arms):
            raise ValueError("statistics and arms differ in length")
        policy = cls(arms, floor=floor, seed=seed, discount=stats.discount,
                     params=dict(state["params"]))
        policy.stats = stats
        return policy
