"""The common base of the policies that ignore context and keep per-arm statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from ._arm_stats import ArmStatistics
from ._change_detection import ChangeDetector
from ._errors import FeedbackError
from ._policy import FloatArray, Policy, normalise
from ._types import Arm, Context, Feedback


class ContextFreePolicy(Policy):
    """A policy whose state is ``ArmStatistics`` plus a few parameters.

    Subclasses keep their parameters in ``params`` (JSON-ready) and implement
    ``_weights``; learning, arm changes and snapshots live here. With
    ``params["change_detection"]`` set, a ``ChangeDetector`` watches every arm's
    rewards, a detected change clears the statistics of the arm that changed (or
    of every arm, per its ``restart``), and its ``explore`` rate is mixed into
    the probabilities.
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
        config = self.params.get("change_detection")
        self.detector: ChangeDetector | None = (
            None if config is None else ChangeDetector(len(self._arms), **config))

    @property
    def restarts(self) -> int:
        """How many detected changes restarted arms (0 without detection)."""
        return 0 if self.detector is None else self.detector.restarts

    def _preferences(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        shares = normalise(self._weights(context, offered))
        explore = 0.0 if self.detector is None else self.detector.explore
        if explore <= 0.0:
            return shares
        # Forced exploration keeps every arm observed, so the detector also
        # sees arms the policy itself has stopped playing.
        return (1.0 - explore) * shares + explore / len(offered)

    def _weights(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        """Non-negative weights, one per offered arm (in order); need not sum to 1."""
        raise NotImplementedError

    def _validate_params(self) -> None:
        """Hook: check ``params`` on construction and restore."""

    def _check_reward(self, feedback: Feedback) -> None:
        """Hook: refuse rewards outside the policy's model (e.g. Beta needs [0, 1])."""

    def _learn(self, batch: list[Feedback]) -> None:
        for item in batch:
            self._check_reward(item)
            if self.detector is not None and not 0.0 <= item.reward <= 1.0:
                raise FeedbackError(
                    f"policy.change_detection takes rewards in [0, 1], got {item.reward!r} "
                    f"for {item.arm!r}")
        self.stats.record(batch, self._arms)
        if self.detector is not None:
            self._watch(batch, self.detector)

    def _watch(self, batch: list[Feedback], detector: ChangeDetector) -> None:
        # Tested once per batch: a change is found at most a batch late, and a
        # learner's batch of 100 costs one GLR scan per arm, not 100.
        index = {arm: i for i, arm in enumerate(self._arms)}
        touched = set()
        for item in batch:
            detector.observe(index[item.arm], item.reward)
            touched.add(index[item.arm])
        alarms = detector.changed(touched)
        if alarms:
            self.stats.reset(detector.forget(alarms))

    def _on_add_arm(self, arm: Arm) -> None:
        self.stats.append()
        if self.detector is not None:
            self.detector.append()

    def _on_remove_arm(self, arm: Arm, index: int) -> None:
        self.stats.delete(index)
        if self.detector is not None:
            self.detector.delete(index)

    def _state(self) -> dict[str, Any]:
        state = {"params": self.params, "stats": self.stats.to_state()}
        if self.detector is not None:
            state["detector"] = self.detector.to_state()
        return state

    @classmethod
    def _restore(cls, arms: list[Arm], floor: float, seed: int, state: dict[str, Any]) -> Self:
        stats = ArmStatistics.from_state(state["stats"])
        if stats.n.size != len(arms):
            raise ValueError("statistics and arms differ in length")
        policy = cls(arms, floor=floor, seed=seed, discount=stats.discount,
                     params=dict(state["params"]))
        policy.stats = stats
        if policy.detector is not None:
            policy.detector.load_state(state["detector"])
        return policy
