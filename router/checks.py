"""The statistics behind the dashboard's comparisons and warnings (pure functions).

- ``sample_ratio``: Pearson's chi-square of the realised counts per variant against
  the sum of the probabilities the router logged for it over the same decisions.
  With adaptive probabilities the expected count of ``v`` is ``Σ_t p_t(v)``: exact for
  any honest logger, whatever the policy did meanwhile (the counts' variance is at
  most the binomial one, so the test errs on the quiet side).
- ``uplift``: difference of mean rewards against a control with a Welch/normal 95%
  interval, ``Δ ± 1.96·√(s²_v/n_v + s²_c/n_c)``.
- ``expected_loss``: ``E[max_j μ_j − μ_v]`` under a normal approximation of each mean's
  posterior, ``μ_v ~ N(mean_v, s²_v/n_v)``, by seeded Monte Carlo (so one input gives
  one answer). It is not the policy's own posterior (Thompson's Beta or Gaussian).
- ``experiment_warnings``: the warnings, each ``{code, severity, message, variant}``;
  thresholds are the constants below (docs/observability.md lists them).

Means and intervals on adaptively collected data are biased towards the variants the
policy starved early: read uplift as a guide, not as an A/B test's estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from bandit._chi2 import chi2_survival

Z95 = 1.959963984540054

# Thresholds (docs/observability.md, "Dashboard warnings").
DEFAULT_SHARE_WARN = 0.10
"""``default_rewards_high``: share of learned decisions that took the default reward."""
LATE_SHARE_WARN = 0.05
"""``late_rewards_high``: late rewards per decision joined."""
SRM_P_VALUE = 0.001
"""``sample_ratio_mismatch``: the chi-square's p-value below this."""
SRM_MIN_EXPECTED = 5.0
"""The chi-square is only run when every variant's expected count is at least this."""
ERROR_RATE_WARN = 0.05
"""``variant_errors_high``: share of a variant's calls that failed."""
MIN_DECISIONS = 30
"""Share-based warnings wait for this many decisions (learned, joined or called)."""
FEW_REWARDS = 100
"""``few_rewards``: fewer rewards learned than this across all variants."""
LOSS_DRAWS = 20_000
LOSS_SEED = 0

Severity = Literal["info", "warning", "critical"]


class Moments(Protocol):
    """What the comparisons need of one variant's rewards (``stats.RewardTotals`` fits)."""

    @property
    def n(self) -> int: ...
    @property
    def mean(self) -> float | None: ...
    @property
    def variance(self) -> float | None: ...


class ExperimentWarning(BaseModel):
    """One way the experiment may be misleading itself."""

    code: str = Field(description="Stable identifier, e.g. default_rewards_high")
    severity: Severity
    message: str = Field(description="What was measured, against which threshold")
    variant: str | None = Field(default=None, description="The variant concerned, if one")


# -- the sample-ratio check ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Realised counts against logged probabilities."""

    statistic: float
    df: int
    p_value: float
    expected: dict[str, float]


def sample_ratio(counts: Mapping[str, float], expected: Mapping[str, float]
                 ) -> SampleRatio | None:
    """Pearson's chi-square of ``counts`` against ``expected`` (Σ logged p per variant,
    over the same decisions). None when fewer than two variants were offered or one's
    expected count is under ``SRM_MIN_EXPECTED``. A variant counted though its logged
    probability was always 0 cannot happen with an honest logger: p-value 0."""
    names = sorted(set(counts) | set(expected))
    offered = [v for v in names if expected.get(v, 0.0) > 0.0]
    impossible = [v for v in names if expected.get(v, 0.0) <= 0.0 and counts.get(v, 0.0) > 0]
    if impossible:
        return SampleRatio(math.inf, max(1, len(offered) - 1), 0.0, dict(expected))
    if len(offered) < 2 or any(expected[v] < SRM_MIN_EXPECTED for v in offered):
        return None
    statistic = sum((counts.get(v, 0.0) - expected[v]) ** 2 / expected[v] for v in offered)
    df = len(offered) - 1
    return SampleRatio(statistic, df, chi2_survival(statistic, df), dict(expected))


# -- comparisons ---------------------------------------------------------------------


def uplift(variant: Moments, control: Moments) -> tuple[float, tuple[float, float]] | None:
    """``mean_v − mean_c`` and its Welch/normal 95% interval; None below 2 rewards each."""
    if variant.n < 2 or control.n < 2 or variant.mean is None or control.mean is None:
        return None
    if variant.variance is None or control.variance is None:
        return None
    diff = variant.mean - control.mean
    half = Z95 * math.sqrt(variant.variance / variant.n + control.variance / control.n)
    return diff, (diff - half, diff + half)


def expected_loss(moments: Mapping[str, Moments], *, draws: int = LOSS_DRAWS,
                  seed: int = LOSS_SEED) -> dict[str, float]:
    """``E[max_j μ_j − μ_v]`` per variant with at least 2 rewards, the means drawn from
    ``N(mean, s²/n)`` (normal approximation), ``draws`` seeded Monte Carlo draws."""
    names = [v for v, m in moments.items()
             if m.n >= 2 and m.mean is not None and m.variance is not None]
    if not names:
        return {}
    means = np.array([moments[v].mean for v in names], dtype=float)
    sds = np.sqrt(np.array([(moments[v].variance or 0.0) / moments[v].n for v in names]))
    rng = np.random.default_rng(seed)
    samples = means + sds * rng.standard_normal((draws, len(names)))
    losses = (samples.max(axis=1, keepdims=True) - samples).mean(axis=0)
    return {v: float(loss) for v, loss in zip(names, losses, strict=True)}


# -- warnings ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariantFigures:
    """What the warnings read of one variant."""

    name: str
    learned: int = 0
    defaults: int = 0
    errors: int = 0
    error_rate_window: float | None = None
    calls_window: int = 0
    suspended: bool = False


def _pct(share: float) -> str:
    return f"{100.0 * share:.1f}%"


def experiment_warnings(variants: Sequence[VariantFigures], *, srm: SampleRatio | None,
                        joined: int | None, late: int | None, default_reward: float | None,
                        wait_seconds: float | None, rewards_known: bool,
                        reward_status: str = "learner") -> list[ExperimentWarning]:
    """Every warning that applies, the most severe first.

    ``joined`` and ``late`` are the joiner's counters (None when unknown); ``learned``,
    ``defaults`` and ``errors`` the learner's totals across replicas; the window figures
    and ``suspended`` this replica's guardrails. Without the learner's figures
    (``rewards_known`` false) the reward checks cannot run, and a warning says so.
    """
    found: list[ExperimentWarning] = []
    if not rewards_known:
        where = ("the store did not answer" if reward_status == "unavailable"
                 else "no reward learner records where this router reads")
        found.append(ExperimentWarning(
            code="reward_figures_missing",
            severity="warning" if reward_status == "unavailable" else "info",
            message=f"reward figures are missing ({where}): defaults, late rewards, the "
                    "sample ratio and learned error rates cannot be checked"))
    learned = sum(v.learned for v in variants)
    defaults = sum(v.defaults for v in variants)
    if rewards_known and learned >= MIN_DECISIONS and defaults / learned > DEFAULT_SHARE_WARN:
        worst = max(variants, key=lambda v: v.defaults / v.learned if v.learned else 0.0)
        wait = f" within wait_seconds ({wait_seconds:g} s)" if wait_seconds is not None else ""
        value = f" ({default_reward:g})" if default_reward is not None else ""
        found.append(ExperimentWarning(
            code="default_rewards_high", severity="critical",
            message=f"{_pct(defaults / learned)} of the {learned} decisions learned took the "
                    f"default reward{value}: no reward came{wait}, so the policy learns the "
                    f"default, not the metric (most: {worst.name}, "
                    f"{_pct(worst.defaults / worst.learned)}); threshold "
                    f"{_pct(DEFAULT_SHARE_WARN)}"))
    if joined is not None and late is not None and joined >= MIN_DECISIONS \
            and late / joined > LATE_SHARE_WARN:
        found.append(ExperimentWarning(
            code="late_rewards_high", severity="warning",
            message=f"{late} rewards ({_pct(late / joined)} of the {joined} decisions joined) "
                    "came after their decision was joined or its window closed and were "
                    f"dropped: the reward sender lags; threshold {_pct(LATE_SHARE_WARN)}"))
    if srm is not None and srm.p_value < SRM_P_VALUE:
        found.append(ExperimentWarning(
            code="sample_ratio_mismatch", severity="critical",
            message=f"realised decisions per variant do not match the probabilities logged "
                    f"for them (chi-square {srm.statistic:.1f}, df {srm.df}, "
                    f"p = {srm.p_value:.2g} < {SRM_P_VALUE:g}): the logged propensities are "
                    "not the ones sampled with, or decisions are lost or counted twice "
                    "per variant; every estimate from them is suspect"))
    for v in variants:
        if v.suspended:
            found.append(ExperimentWarning(
                code="variant_suspended", severity="warning", variant=v.name,
                message=f"{v.name} is suspended by its guardrails on this replica: it gets "
                        "no traffic until its cooldown ends"))
        rates = []
        if v.learned >= MIN_DECISIONS:
            rates.append((v.errors / v.learned, f"of {v.learned} decisions learned"))
        if v.error_rate_window is not None and v.calls_window >= MIN_DECISIONS:
            rates.append((v.error_rate_window,
                          f"of {v.calls_window} calls in this replica's guardrail window"))
        over = [(rate, what) for rate, what in rates if rate > ERROR_RATE_WARN]
        if over:
            rate, what = max(over)
            found.append(ExperimentWarning(
                code="variant_errors_high", severity="critical", variant=v.name,
                message=f"{v.name} failed {_pct(rate)} {what}; threshold "
                        f"{_pct(ERROR_RATE_WARN)}"))
    if rewards_known and learned < FEW_REWARDS:
        found.append(ExperimentWarning(
            code="few_rewards", severity="info",
            message=f"only {learned} rewards learned (under {FEW_REWARDS}): means, uplift "
                    "and expected loss are noisy"))
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda w: order[w.severity])
