"""Names for the shapes that recur across the bandit core."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

Arm: TypeAlias = str
"""A variant's name; the unit the policy chooses among."""

Context: TypeAlias = Mapping[str, Any]
"""Features of one decision: name -> number, string or bool."""

Probabilities: TypeAlias = dict[Arm, float]
"""Arm -> probability over the policy's arms in their stable order; sums to 1."""

Eligible: TypeAlias = Collection[Arm] | None
"""The arms a decision may choose from; None means every arm."""

PolicySpec: TypeAlias = Mapping[str, Any]
"""A policy's configuration as written in YAML: ``{"type": "thompson", ...}``."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """What came of one decision, ready for ``Policy.update``.

    ``probability`` is the probability the chosen arm was logged with (needed by
    importance-weighted learners such as VW's cover); ``eligible`` the arms that
    were offered, when it was a subset (VW learns over the offered actions).
    """

    arm: Arm
    reward: float
    probability: float = 1.0
    context: Context | None = None
    eligible: tuple[Arm, ...] | None = None
