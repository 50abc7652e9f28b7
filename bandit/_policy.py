"""The one interface every policy implements, and what all of them share.

A policy turns (context, eligible arms) into a probability per arm. Subclasses
supply ``_preferences``: non-negative weights over the offered arms. This base
normalises them, applies the exploration floor, caches context-free answers per
state, validates arms, and numbers the state (``version``) so that a snapshot and
the probabilities computed from it always agree.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ._errors import ArmError, FeedbackError, SnapshotError, SpecError
from ._spec import SpecReader
from ._types import Arm, Context, Eligible, Feedback, PolicySpec, Probabilities

SNAPSHOT_FORMAT = 1

FloatArray = npt.NDArray[np.float64]


class Policy(ABC):
    """A bandit policy: ``probabilities``, ``update``, ``add_arm``, ``remove_arm``, ``snapshot``.

    ``version`` counts state changes (updates and arm changes); it travels in
    the snapshot, so a restored policy answers exactly as the original did.
    """

    type_name: ClassVar[str]
    contextual: ClassVar[bool] = False

    def __init__(self, arms: Sequence[Arm], *, floor: float = 0.0, seed: int = 0) -> None:
        _check_arm_list(arms)
        self._arms: list[Arm] = list(arms)
        self.floor = floor
        self.seed = seed
        self.version = 0
        self._cache: dict[tuple[Arm, ...], Probabilities] = {}

    # -- construction ---------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: PolicySpec, arms: Sequence[Arm], seed: int = 0) -> Policy:
        """Build from a validated spec; raises ``SpecError`` naming every bad key."""
        reader = SpecReader(spec)
        reader.raw("type")
        floor = reader.number("floor", 0.0, low=0.0, high=1.0, high_open=True)
        _check_arm_list(arms)
        if floor * len(arms) > 1.0:
            reader.report("policy.floor", f"{floor:g} × {len(arms)} arms exceeds 1")
            floor = 0.0
        try:
            policy = cls._from_reader(reader, arms, floor=floor, seed=seed)
        except SpecError as exc:  # a problem this type could not read past
            reader.report_error(exc)
            reader.raise_problems()
            raise
        reader.finish()
        reader.raise_problems()
        return policy

    @classmethod
    @abstractmethod
    def _from_reader(
        cls, reader: SpecReader, arms: Sequence[Arm], *, floor: float, seed: int
    ) -> Policy:
        """Read this type's own keys from ``reader`` and build the policy."""

    # -- the interface --------------------------------------------------------

    @property
    def arms(self) -> tuple[Arm, ...]:
        """The arms in their stable order (the order sampling walks)."""
        return tuple(self._arms)

    def probabilities(
        self, context: Context | None = None, eligible: Eligible = None
    ) -> Probabilities:
        """Probability of each arm for this decision; ineligible arms get 0; sums to 1.

        Deterministic for a given state, context and eligible set. Context-free
        policies compute it once per (state, eligible set) and serve it from cache.
        """
        offered = self._offered(eligible)
        cacheable = not self.contextual
        if cacheable:
            cached = self._cache.get(offered)
            if cached is not None:
                return dict(cached)
        weights = self._preferences(context, offered)
        shares = apply_floor(normalise(weights), self.floor)
        probs = dict.fromkeys(self._arms, 0.0)
        for arm, p in zip(offered, shares.tolist(), strict=True):
            probs[arm] = p
        if cacheable:
            self._cache[offered] = probs
            return dict(probs)
        return probs

    def update(self, feedback: Iterable[Feedback]) -> None:
        """Learn from a batch of feedback, in order. Unknown arms raise ``ArmError``."""
        batch = list(feedback)
        if not batch:
            return
        known = set(self._arms)
        for item in batch:
            if item.arm not in known:
                raise ArmError(f"feedback for unknown arm {item.arm!r}")
            if not math.isfinite(item.reward):
                raise FeedbackError(f"reward must be finite, got {item.reward!r}")
            if not 0.0 < item.probability <= 1.0:
                raise FeedbackError(f"probability must be in (0, 1], got {item.probability!r}")
        self._learn(batch)
        self._changed()

    def add_arm(self, arm: Arm) -> None:
        """Add an arm at the end of the order; the others keep what they learned."""
        if not isinstance(arm, str) or not arm:
            raise ArmError(f"arm names must be non-empty strings, got {arm!r}")
        if arm in self._arms:
            raise ArmError(f"arm {arm!r} already exists")
        if self.floor * (len(self._arms) + 1) > 1.0:
            raise ArmError(f"cannot add {arm!r}: floor {self.floor:g} × {len(self._arms) + 1} "
                           "arms exceeds 1")
        self._arms.append(arm)
        self._on_add_arm(arm)
        self._changed()

    def remove_arm(self, arm: Arm) -> None:
        """Remove an arm; the others keep what they learned. The last arm stays."""
        if arm not in self._arms:
            raise ArmError(f"unknown arm {arm!r}")
        if len(self._arms) == 1:
            raise ArmError(f"cannot remove {arm!r}: it is the only arm")
        index = self._arms.index(arm)
        del self._arms[index]
        self._on_remove_arm(arm, index)
        self._changed()

    def snapshot(self) -> bytes:
        """The whole state as bytes; ``load_policy`` restores it exactly."""
        document = {
            "format": SNAPSHOT_FORMAT,
            "type": self.type_name,
            "arms": self._arms,
            "floor": self.floor,
            "seed": self.seed,
            "version": self.version,
            "state": self._state(),
        }
        return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()

    # -- hooks ----------------------------------------------------------------

    @abstractmethod
    def _preferences(self, context: Context | None, offered: tuple[Arm, ...]) -> FloatArray:
        """Non-negative weights, one per offered arm (in order); need not sum to 1."""

    @abstractmethod
    def _learn(self, batch: list[Feedback]) -> None:
        """Apply validated feedback to the state."""

    @abstractmethod
    def _on_add_arm(self, arm: Arm) -> None:
        """Extend the state for a new arm (already appended to ``_arms``)."""

    @abstractmethod
    def _on_remove_arm(self, arm: Arm, index: int) -> None:
        """Drop the state of ``arm``, which was at ``index``."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """The type-specific state, as JSON-ready data."""

    @classmethod
    @abstractmethod
    def _restore(cls, arms: list[Arm], floor: float, seed: int, state: dict[str, Any]) -> Policy:
        """Rebuild a policy from ``_state()``'s output."""

    # -- helpers --------------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1
        self._cache.clear()

    def _offered(self, eligible: Eligible) -> tuple[Arm, ...]:
        if eligible is None:
            return tuple(self._arms)
        wanted = set(eligible)
        unknown = wanted.difference(self._arms)
        if unknown:
            raise ArmError(f"eligible names unknown arm(s): {', '.join(sorted(unknown))}")
        offered = tuple(arm for arm in self._arms if arm in wanted)
        if not offered:
            raise ArmError("eligible must name at least one arm")
        return offered


def normalise(weights: FloatArray) -> FloatArray:
    """Weights → shares summing to 1; uniform when every weight is 0."""
    total = float(weights.sum())
    if total <= 0.0 or not math.isfinite(total):
        return np.full(weights.shape, 1.0 / weights.size)
    return weights / total


def apply_floor(shares: FloatArray, floor: float) -> FloatArray:
    """Mix with uniform so that every share is at least ``floor``.

    ``p' = floor + (1 - n·floor)·p`` keeps the order of the shares and sums to 1;
    when ``n·floor ≥ 1`` the floor can only be met by the uniform split.
    """
    n = shares.size
    if floor <= 0.0:
        return shares
    if floor * n >= 1.0:
        return np.full(n, 1.0 / n)
    return floor + (1.0 - n * floor) * shares


def _check_arm_list(arms: Sequence[Arm]) -> None:
    if isinstance(arms, str):
        raise ArmError("arms must be a sequence of names, not one string")
    if not arms:
        raise ArmError("a policy needs at least one arm")
    for arm in arms:
        if not isinstance(arm, str) or not arm:
            raise ArmError(f"arm names must be non-empty strings, got {arm!r}")
    if len(set(arms)) != len(arms):
        raise ArmError("arm names must be unique")


def decode_snapshot(blob: bytes) -> dict[str, Any]:
    """Parse and check the envelope of a snapshot."""
    try:
        document = json.loads(blob)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"not a policy snapshot: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError("not a policy snapshot of format 1")
    for key in ("type", "arms", "floor", "seed", "version", "state"):
        if key not in document:
            raise SnapshotError(f"snapshot is missing {key!r}")
    return document
