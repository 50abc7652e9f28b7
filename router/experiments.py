"""One experiment at run time: its policy snapshot, its guardrails, and its decisions.

``decide`` is the hot path: policy probabilities (cached per state by the
policy), guardrail adjustment, one uniform draw (the router's RNG, or a hash of
the unit id for sticky units), inverse-CDF sampling. The probability logged is
the one the variant was sampled with, after every adjustment.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bandit import Arm, Context, Policy, load_policy, sample, unit_uniform

from .errors import ValidationError
from .event_ids import new_event_id
from .guardrails import GuardrailLimits, Guardrails


@dataclass(frozen=True, slots=True)
class Decision:
    """What the router chose and with what probabilities (all of them, as served)."""

    event_id: str
    experiment: str
    variant: str
    probability: float
    probabilities: dict[str, float]
    policy_version: int
    targeted: bool
    unit_id: str | None = None


class Experiment:
    """The live state of one experiment in one router process."""

    def __init__(
        self,
        name: str,
        policy: Policy,
        *,
        guardrails: GuardrailLimits | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.guardrails = None if guardrails is None else Guardrails(guardrails, policy.arms)
        # The draws need no secrecy, only independence from the policy's own seed.
        self._rng = rng or random.Random()  # noqa: S311

    @property
    def variants(self) -> tuple[Arm, ...]:
        return self.policy.arms

    def swap_policy(self, snapshot: bytes) -> bool:
        """Serve from a newer snapshot; False (and no change) when it is not newer.

        Requests in flight keep the policy object they started with, so a swap
        never pauses or tears a decision.
        """
        policy = load_policy(snapshot)
        if policy.version <= self.policy.version and policy.arms == self.policy.arms:
            return False
        self.install(policy)
        return True

    def install(self, policy: Policy) -> None:
        """Serve from ``policy`` from now on; the guardrails follow its variants.

        The caller decides it is newer (the registry's publication counter does).
        """
        self.policy = policy
        if self.guardrails is not None:
            for variant in policy.arms:
                self.guardrails.add_variant(variant)
            for variant in set(self.guardrails.variants) - set(policy.arms):
                self.guardrails.remove_variant(variant)

    def set_variants(self, variants: Sequence[Arm]) -> bool:
        """Make the policy's arms ``variants`` (added at the end, removed in place): the
        other arms keep their statistics. Copy on write, so a request in flight keeps a
        consistent policy. False when nothing changed; ``bandit.ArmError`` when the
        policy cannot take the change (then nothing changes)."""
        policy = self.policy
        wanted = list(variants)
        if list(policy.arms) == wanted or set(policy.arms) == set(wanted):
            return False
        policy = load_policy(policy.snapshot())
        for variant in wanted:
            if variant not in policy.arms:
                policy.add_arm(variant)
        for variant in [arm for arm in policy.arms if arm not in wanted]:
            policy.remove_arm(variant)
        self.install(policy)
        return True

    def decide(
        self,
        context: Context | None,
        *,
        now: float,
        eligible: Sequence[Arm] | None = None,
        unit_id: str | None = None,
        event_id: str | None = None,
    ) -> Decision:
        """Choose a variant; raises ``ValidationError`` for eligible names it does not know."""
        policy = self.policy
        if eligible is not None:
            unknown = [arm for arm in eligible if arm not in policy.arms]
            if unknown:
                raise ValidationError(
                    f"eligible: unknown variant(s) {', '.join(map(repr, unknown))} in "
                    f"experiment {self.name!r} (variants: {', '.join(policy.arms)})")
            if not eligible:
                raise ValidationError("eligible: must name at least one variant")
        probabilities = policy.probabilities(context, eligible)
        if self.guardrails is not None:
            probabilities = self.guardrails.adjust(probabilities, now)
        u = unit_uniform(self.name, unit_id) if unit_id is not None else self._rng.random()
        variant = sample(probabilities, u)
        return Decision(
            event_id=event_id or new_event_id(),
            experiment=self.name,
            variant=variant,
            probability=probabilities[variant],
            probabilities=probabilities,
            policy_version=policy.version,
            targeted=False,
            unit_id=unit_id,
        )

    def target(self, variant: str, *, event_id: str | None = None) -> Decision:
        """A caller-chosen variant (``TargetVariant``): served as asked, probability 1."""
        if variant not in self.policy.arms:
            raise ValidationError(
                f"TargetVariant {variant!r} is not a variant of endpoint experiment "
                f"{self.name!r} (variants: {', '.join(self.policy.arms)})")
        return Decision(
            event_id=event_id or new_event_id(),
            experiment=self.name,
            variant=variant,
            probability=1.0,
            probabilities={variant: 1.0},
            policy_version=self.policy.version,
            targeted=True,
        )

    def record_outcome(self, variant: str, ok: bool, latency_s: float, now: float) -> Any:
        """Feed an invocation's outcome to the guardrails; returns a ``Trip`` when one fires."""
        if self.guardrails is None:
            return None
        return self.guardrails.record(variant, ok, latency_s, now)
