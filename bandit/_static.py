"""``static``: fixed weights, for A/B tests, canaries and blue/green switches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._arm_stats import read_discount
from ._context_free import ContextFreePolicy
from ._policy import FloatArray, Policy
from ._registry import register
from ._spec import SpecReader
from ._types import Arm, Context


@register
class StaticPolicy(ContextFreePolicy):
    """Serve each arm in proportion to its weight; learning only keeps statistics.

    ``weights`` maps arm → non-negative weight (normalised over the offered
    arms); arms it omits, and arms added later, get weight 0. Without
    ``weights`` every arm gets the same share.
    """

    type_name = "static"

    @classmethod
    def _from_reader(
        cls, reader: SpecReader, arms: Sequence[Arm], *, floor: float, seed: int
    ) -> Policy:
        weights: dict[str, float] = {}
        if reader.has("weights"):
            section = reader.section("weights")
            strangers = [arm for arm in section.keys() if arm not in arms]  # noqa: SIM118
            for arm in section.keys():  # noqa: SIM118 - a SpecReader, not a dict
                if arm in strangers:
                    section.raw(arm)  # reported here, not again as an unknown key
                    section.report(f"{section.path}.{arm}", f"is not an arm ({', '.join(arms)})")
                else:
                    weights[arm] = section.number(arm, 0.0, low=0.0)
            section.finish()
            if not any(weights.values()):
                if not strangers:  # else naming the arms right may be the whole fix
                    section.report(section.path, "must give at least one arm a positive weight")
                weights = dict.fromkeys(arms, 1.0)  # to read on; the spec is refused
        else:
            weights = dict.fromkeys(arms, 1.0)
        read_discount(reader)  # accepted for symmetry; static never uses its statistics
        return cls(arms, floor=floor, seed=seed, params={"weights": weights})

    def _on_add_arm(self, arm: Arm) -> None:
        super()._on_add_arm(arm)
        self.params["weights"].setdefault(arm, 0.0)

    def _on_remove_arm(self, arm: Arm, index: int) -> None:
        super()._on_remove_arm(arm, index)
        self.params["weights"].pop(arm, None)

    def _preferences(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        weights = self.params["weights"]
        return np.array([weights.get(arm, 0.0) for arm in offered], dtype=np.float64)
