"""``GET /v1/experiments/{name}/stats``: what one router replica knows about an experiment.

Decisions are this replica's own since it started (its Prometheus counters); the
traffic share is what the policy would serve now to a context-free request, after
the guardrails; P(best) is the Thompson posterior's. Reward figures come from the
reward learner (``reward_ingest``), which does not publish them yet: they are null.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, Field

from bandit import BanditError, ThompsonPolicy

from .guardrails import VariantHealth
from .state import Route, RouterState

REWARDS_PENDING = ("null until the reward learner (reward_ingest) publishes joined rewards; "
                   "the router alone never sees rewards")


class VariantStats(BaseModel):
    """One variant, as this replica sees it now."""

    name: str
    decisions: int = Field(description="Decisions this router replica made for the variant "
                                       "since it started (targeted ones included)")
    targeted_decisions: int = Field(description="Of those, how many the caller targeted "
                                                "(TargetVariant): probability 1, not learned from")
    traffic_share: float | None = Field(description="The probability the policy gives the "
                                                    "variant now, after guardrails (null for "
                                                    "contextual policies: it depends on context)")
    state: str = Field(description="healthy, probing or suspended (guardrails)")
    suspended: bool
    probability_best: float | None = Field(description="Posterior probability of being the best "
                                                       "variant (thompson policies only, else "
                                                       "null)")
    rewards_joined: int | None = Field(description=REWARDS_PENDING)
    mean_reward: float | None = Field(description=REWARDS_PENDING)
    mean_reward_ci95: tuple[float, float] | None = Field(description="95% interval of the mean "
                                                         "reward; " + REWARDS_PENDING)
    last_weight_pushed: float | None = Field(description="null until the weight pusher "
                                                         "(reward_ingest) records pushes")


class PolicyStats(BaseModel):
    """The policy this replica serves."""

    type: str
    version: int = Field(description="The policy's own version (X-Bandit-Policy-Version)")
    snapshot_version: int = Field(description="The registry's publication counter of the "
                                              "snapshot loaded (0: none yet, config only)")


class ExperimentStats(BaseModel):
    """The answer of ``GET /v1/experiments/{name}/stats``."""

    experiment: str
    endpoint: str
    registry_revision: int = Field(description="The registry revision this replica applied "
                                               "(-1: registry not reached yet)")
    policy: PolicyStats
    variants: list[VariantStats]


def decision_counts(state: RouterState, experiment: str) -> dict[str, tuple[int, int]]:
    """variant → (decisions, targeted ones), from this replica's Prometheus counters."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for metric in state.metrics.decisions.collect():
        for sample in metric.samples:
            labels = sample.labels
            if not sample.name.endswith("_total") or labels.get("experiment") != experiment:
                continue
            entry = counts[labels["variant"]]
            entry[0] += int(sample.value)
            if labels.get("targeted") == "true":
                entry[1] += int(sample.value)
    return {variant: (total, targeted) for variant, (total, targeted) in counts.items()}


def probability_best(route: Route) -> dict[str, float] | None:
    """Thompson's P(best) per variant: its probabilities with the exploration floor undone.

    The policy serves ``floor + (1 − n·floor)·P(best)`` (``bandit._policy.apply_floor``),
    so P(best) = (p − floor) / (1 − n·floor); unrecoverable when n·floor ≥ 1.
    """
    policy = route.experiment.policy
    if not isinstance(policy, ThompsonPolicy):
        return None
    n, floor = len(policy.arms), policy.floor
    if floor * n >= 1.0:
        return None
    probabilities = policy.probabilities(None, None)
    return {arm: max(0.0, (p - floor) / (1.0 - n * floor)) for arm, p in probabilities.items()}


def experiment_stats(state: RouterState, route: Route, revision: int) -> ExperimentStats:
    """The stats of ``route`` now."""
    experiment = route.experiment
    policy = experiment.policy
    now = state.clock()
    shares: dict[str, float] | None = None
    if not policy.contextual:
        try:
            shares = policy.probabilities(None, None)
        except BanditError:
            shares = None
        if shares is not None and experiment.guardrails is not None:
            shares = experiment.guardrails.adjust(shares, now)
    best = probability_best(route)
    counts = decision_counts(state, route.config.name)
    guardrails = experiment.guardrails
    variants = []
    for arm in policy.arms:
        health = guardrails.health(arm, now) if guardrails is not None else VariantHealth.HEALTHY
        decided, targeted = counts.get(arm, (0, 0))
        variants.append(VariantStats(
            name=arm, decisions=decided, targeted_decisions=targeted,
            traffic_share=None if shares is None else shares.get(arm, 0.0),
            state=health.value, suspended=health is VariantHealth.SUSPENDED,
            probability_best=None if best is None else best[arm],
            rewards_joined=None, mean_reward=None, mean_reward_ci95=None,
            last_weight_pushed=None))
    return ExperimentStats(
        experiment=route.config.name, endpoint=route.config.endpoint,
        registry_revision=revision,
        policy=PolicyStats(type=policy.type_name, version=policy.version,
                           snapshot_version=route.snapshot_version),
        variants=variants)
