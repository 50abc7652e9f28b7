"""``GET /v1/experiments/{name}/stats``: what the router knows about an experiment.

``decisions`` are this replica's own since it started (its Prometheus counters); the
traffic share is what the policy would serve now to a context-free request, after
the guardrails; P(best) is the Thompson posterior's; the window figures (calls, error
rate, p99) are this replica's guardrail windows. Everything else is across replicas,
read from the shared store: the reward learner (``reward_ingest``) adds every learned
decision to per-variant totals (n, sum, sum of squares, defaults, failed invocations,
Σ logged probability, a latency histogram) in the same atomic step as its checkpoint,
so they count each joined event exactly once; the joiner counts late rewards. The
router reads both through a ``StatsSource`` (``router.stats_source``). The 95%
interval of the mean is the normal approximation with the sample variance,
``mean ± 1.96·s/√n`` (null when n < 2); uplift, expected loss, the sample-ratio check
and the warnings are ``router.checks``'s.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from bandit import BanditError, ThompsonPolicy
from common import redis_errors
from common.learner_stats import LATENCY_EDGES_MS

from .checks import (
    ExperimentWarning,
    VariantFigures,
    expected_loss,
    experiment_warnings,
    sample_ratio,
    uplift,
)
from .guardrails import VariantHealth
from .state import Route, RouterState
from .stats_source import StatsSource

logger = logging.getLogger(__name__)

Z95 = 1.959963984540054
REWARDS_FROM = ("from the reward learner (reward_ingest): rewards it learned for the variant "
                "(joined, targeted ones not learned from excluded); null when no learner "
                "records where this router reads (reward_stats says why)")


@dataclass(frozen=True, slots=True)
class RewardTotals:
    """One variant's learned rewards: count, sum, sum of squares, default ones, failed
    invocations, Σ of its logged probability over every learned decision, and its
    invocations' latency histogram (counts per ``LATENCY_EDGES_MS`` bucket)."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0
    defaults: int = 0
    errors: int = 0
    served: float = 0.0
    latencies: tuple[int, ...] = ()

    @property
    def p99_ms(self) -> float | None:
        """The upper edge of the histogram bucket holding the nearest-rank p99 (an upper
        bound of it), the last edge when it is past it (then a lower bound); None without
        invocations."""
        count = sum(self.latencies)
        if not count:
            return None
        rank, seen = math.ceil(0.99 * count), 0
        for bucket, in_bucket in enumerate(self.latencies):
            seen += in_bucket
            if seen >= rank:
                return LATENCY_EDGES_MS[min(bucket, len(LATENCY_EDGES_MS) - 1)]
        return None

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The sample variance; None when n < 2."""
        if self.n < 2:
            return None
        mean = self.total / self.n
        return max(0.0, (self.squares - self.n * mean * mean) / (self.n - 1))

    @property
    def ci95(self) -> tuple[float, float] | None:
        """``mean ± 1.96·s/√n`` with the sample variance; None when n < 2."""
        variance = self.variance
        if variance is None:
            return None
        mean = self.total / self.n
        half = Z95 * math.sqrt(variance / self.n)
        return (mean - half, mean + half)


def parse_totals(raw: Mapping[str, float]) -> dict[str, RewardTotals]:
    """variant -> totals, from the ``bandit:stats:E`` hash (``V:n``, ``V:sum``, ...,
    ``V:lat:I``); variant names hold no ``:`` (SageMaker's rule)."""
    fields: dict[str, dict[str, float]] = defaultdict(dict)
    for name, value in raw.items():
        variant, _, kind = name.partition(":")
        if variant and kind:
            fields[variant][kind] = value
    buckets = len(LATENCY_EDGES_MS) + 1
    return {variant: RewardTotals(n=round(f.get("n", 0.0)), total=f.get("sum", 0.0),
                                  squares=f.get("sumsq", 0.0),
                                  defaults=round(f.get("defaults", 0.0)),
                                  errors=round(f.get("errors", 0.0)),
                                  served=f.get("served", 0.0),
                                  latencies=tuple(round(f.get(f"lat:{i}", 0.0))
                                                  for i in range(buckets))
                                  if any(k.startswith("lat:") for k in f) else ())
            for variant, f in fields.items()}


class LastPush(BaseModel):
    """The last weights the pusher sent to the endpoint."""

    at: float = Field(description="Unix seconds")
    weights: dict[str, float]
    reason: str


def last_push(records: list[str]) -> LastPush | None:
    """The newest record that pushed (skips and errors pushed nothing)."""
    for text in reversed(records):
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("skipped") is None:
            return LastPush(at=record["at"], weights=record["after"],
                            reason=record.get("reason", ""))
    return None


RewardStatus = Literal["learner", "none", "unavailable"]


@dataclass(frozen=True, slots=True)
class RewardFigures:
    """What the stats route read from the learner's keys."""

    status: RewardStatus
    totals: dict[str, RewardTotals]
    push: LastPush | None = None
    join_counts: dict[str, int] | None = None
    """The joiner's counters (``joined``, ``late_rewards``, ...); None when not read."""


async def read_reward_figures(source: StatsSource | None, experiment: str) -> RewardFigures:
    """The learner's totals, last push and the joiner's counters for ``experiment``
    (never raises for the store)."""
    if source is None:
        return RewardFigures("none", {})
    try:
        totals = parse_totals(await source.read_totals(experiment))
        push = last_push(await source.read_pushes(experiment))
        counts = await source.read_join_counts(experiment)
    except (RedisError, OSError) as exc:
        redis_errors.count("stats")
        logger.warning("stats of %s: the learner's figures are unavailable: %s", experiment, exc)
        return RewardFigures("unavailable", {})
    return RewardFigures("learner", totals, push, counts or None)


class VariantStats(BaseModel):
    """One variant, as this replica sees it now."""

    name: str
    decisions: int = Field(description="Decisions this router replica made for the variant "
                                       "since it started (targeted ones included)")
    targeted_decisions: int = Field(description="Of those, how many the caller targeted "
                                                "(TargetVariant): probability 1, not learned from")
    traffic_share: float | None = Field(description="The probability the policy gives the "
                                                    "variant now, after guardrails (null for "
                                                    "contextual policies: it depends on "
                                                    "context); the page's \"Policy "
                                                    "probability now\"")
    realised_share: float | None = Field(description="Its share of the decisions learned "
                                         "(all replicas, targeted ones excluded); "
                                         + REWARDS_FROM)
    mean_logged_probability: float | None = Field(
        description="Mean probability the router logged for it over those same decisions "
                    "(what realised_share should be, up to chance); " + REWARDS_FROM)
    state: str = Field(description="healthy, probing or suspended (guardrails)")
    suspended: bool
    probability_best: float | None = Field(description="Posterior probability of being the best "
                                                       "variant (thompson policies only, else "
                                                       "null)")
    rewards_joined: int | None = Field(description="Rewards joined and learned; "
                                       + REWARDS_FROM)
    default_rewards: int | None = Field(description="Of those, how many were the default "
                                        "reward (none came in the window); " + REWARDS_FROM)
    default_share: float | None = Field(description="default_rewards / rewards_joined")
    errors: int | None = Field(description="Of the decisions learned, how many invocations "
                                           "failed (model_error, unavailable, not_ready); "
                               + REWARDS_FROM)
    error_rate: float | None = Field(description="errors / rewards_joined (all replicas)")
    window_calls: int | None = Field(description="Calls in this replica's guardrail window "
                                                 "(null without guardrails)")
    window_error_rate: float | None = Field(description="Error rate in this replica's "
                                                        "guardrail window")
    window_p99_ms: float | None = Field(description="Nearest-rank p99 latency (ms) in this "
                                                    "replica's guardrail window")
    p99_ms: float | None = Field(description="Upper bound of the p99 latency (ms) of the "
                                             "decisions learned (all replicas): the upper "
                                             "edge of the latency histogram's bucket that "
                                             "holds it; 10000 means 10 s or more (null: "
                                             "no invocations); " + REWARDS_FROM)
    mean_reward: float | None = Field(description="Mean learned reward (null when none); "
                                      + REWARDS_FROM)
    mean_reward_ci95: tuple[float, float] | None = Field(
        description="95% interval of the mean reward: mean ± 1.96·s/√n with the sample "
                    "variance (null when fewer than 2 rewards); " + REWARDS_FROM)
    uplift: float | None = Field(description="mean_reward minus the control's (null for "
                                              "the control, or under 2 rewards each)")
    uplift_ci95: tuple[float, float] | None = Field(
        description="95% interval of the uplift: Welch/normal, Δ ± 1.96·√(s²/n + s²_c/n_c)")
    expected_loss: float | None = Field(
        description="E[max_j μ_j − μ_v]: reward lost per decision by serving only this "
                    "variant, under a normal approximation of each mean's posterior "
                    "(seeded Monte Carlo; null under 2 rewards)")
    last_weight_pushed: float | None = Field(description="The variant's weight in the last "
                                                         "push to the endpoint (null until "
                                                         "the weight pusher records one)")


class PolicyStats(BaseModel):
    """The policy this replica serves."""

    type: str
    version: int = Field(description="The policy's own version (X-Bandit-Policy-Version)")
    snapshot_version: int = Field(description="The registry's publication counter of the "
                                              "snapshot loaded (0: none yet, config only)")


class SampleRatioStats(BaseModel):
    """Realised counts per variant against Σ of the probabilities logged for them."""

    statistic: float | None = Field(description="Pearson's chi-square (null: infinite, a "
                                                "variant was counted whose logged "
                                                "probability was always 0)")
    df: int
    p_value: float


class ExperimentStats(BaseModel):
    """The answer of ``GET /v1/experiments/{name}/stats``."""

    experiment: str
    endpoint: str
    registry_revision: int = Field(description="The registry revision this replica applied "
                                               "(-1: registry not reached yet)")
    policy: PolicyStats
    reward_stats: RewardStatus = Field(description="learner: reward figures read from the "
                                       "learner's totals; none: no learner records where this "
                                       "router reads (memory:// without the embedded "
                                       "ingester); unavailable: the store did not answer")
    last_push: LastPush | None = Field(default=None, description="The last weights pushed "
                                       "to the endpoint (null until one is)")
    control: str = Field(description="The variant uplift is measured against (query "
                                     "`control`, default: the first variant)")
    decisions_joined: int | None = Field(description="The joiner's count of decisions "
                                                     "joined (all replicas; null when unknown)")
    late_rewards: int | None = Field(description="Rewards that came after their decision "
                                                 "was joined or its window closed (the "
                                                 "joiner's count; null when unknown)")
    sample_ratio: SampleRatioStats | None = Field(
        description="Chi-square of the decisions learned per variant against Σ logged "
                    "probability (null: too few, or one variant)")
    warnings: list[ExperimentWarning] = Field(description="Ways the experiment may be "
                                              "misleading itself, most severe first")
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


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def experiment_stats(state: RouterState, route: Route, revision: int,
                     rewards: RewardFigures | None = None,
                     control: str | None = None) -> ExperimentStats:
    """The stats of ``route`` now, with the learner's ``rewards`` figures when read, uplift
    against ``control`` (default: the first variant)."""
    rewards = rewards if rewards is not None else RewardFigures("none", {})
    known = rewards.status == "learner"
    pushed = rewards.push.weights if rewards.push is not None else {}
    experiment = route.experiment
    policy = experiment.policy
    control = control if control is not None else policy.arms[0]
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
    totals = {arm: rewards.totals.get(arm, RewardTotals()) for arm in policy.arms}
    learned = sum(t.n for t in totals.values())
    losses = expected_loss(totals) if known else {}
    baseline = totals.get(control, RewardTotals())
    variants, figures = [], []
    for arm in policy.arms:
        health = guardrails.health(arm, now) if guardrails is not None else VariantHealth.HEALTHY
        window = guardrails.window(arm, now) if guardrails is not None else None
        decided, targeted = counts.get(arm, (0, 0))
        mine = totals[arm]
        lift = uplift(mine, baseline) if known and arm != control else None
        variants.append(VariantStats(
            name=arm, decisions=decided, targeted_decisions=targeted,
            traffic_share=None if shares is None else shares.get(arm, 0.0),
            realised_share=_share(mine.n, learned) if known else None,
            mean_logged_probability=_share(mine.served, learned) if known else None,
            state=health.value, suspended=health is VariantHealth.SUSPENDED,
            probability_best=None if best is None else best[arm],
            rewards_joined=mine.n if known else None,
            default_rewards=mine.defaults if known else None,
            default_share=_share(mine.defaults, mine.n) if known else None,
            errors=mine.errors if known else None,
            error_rate=_share(mine.errors, mine.n) if known else None,
            window_calls=None if window is None else window.calls,
            window_error_rate=None if window is None else window.error_rate,
            window_p99_ms=None if window is None else window.p99_ms,
            p99_ms=mine.p99_ms if known else None,
            mean_reward=mine.mean, mean_reward_ci95=mine.ci95,
            uplift=None if lift is None else lift[0],
            uplift_ci95=None if lift is None else lift[1],
            expected_loss=losses.get(arm),
            last_weight_pushed=pushed.get(arm)))
        figures.append(VariantFigures(
            name=arm, learned=mine.n, defaults=mine.defaults, errors=mine.errors,
            error_rate_window=None if window is None else window.error_rate,
            calls_window=0 if window is None else window.calls,
            suspended=health is VariantHealth.SUSPENDED))
    srm = sample_ratio({arm: float(t.n) for arm, t in totals.items()},
                       {arm: t.served for arm, t in totals.items()}) if known else None
    join = rewards.join_counts
    reward = route.config.reward
    warnings = experiment_warnings(
        figures, srm=srm, joined=None if join is None else join.get("joined", 0),
        late=None if join is None else join.get("late_rewards", 0),
        default_reward=reward.default, wait_seconds=reward.wait_seconds,
        rewards_known=known, reward_status=rewards.status)
    return ExperimentStats(
        experiment=route.config.name, endpoint=route.config.endpoint,
        registry_revision=revision,
        policy=PolicyStats(type=policy.type_name, version=policy.version,
                           snapshot_version=route.snapshot_version),
        reward_stats=rewards.status, last_push=rewards.push, control=control,
        decisions_joined=None if join is None else join.get("joined", 0),
        late_rewards=None if join is None else join.get("late_rewards", 0),
        sample_ratio=None if srm is None else SampleRatioStats(
            statistic=srm.statistic if math.isfinite(srm.statistic) else None,
            df=srm.df, p_value=srm.p_value),
        warnings=warnings, variants=variants)

