"""The dashboard's statistics (``router.checks``) and the ``/stats`` fields built on them.

Seeded simulations with tolerances wide enough for chance and narrow enough for a bug:
the sample-ratio check must fire on a 52/48 split of 20,000 logged at 0.5/0.5 and stay
quiet on honest adaptive logging; the uplift interval must cover the true difference
about 95% of the time; expected loss must match the two-variant closed form.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import stats as scipy_stats

from common.config import Secrets, parse_settings
from common.config_sections import GuardrailConfig
from common.learner_stats import LATENCY_EDGES_MS, MemoryLearnerStats, latency_bucket
from router.app import create_app
from router.checks import (
    DEFAULT_SHARE_WARN,
    ERROR_RATE_WARN,
    SRM_P_VALUE,
    VariantFigures,
    expected_loss,
    experiment_warnings,
    sample_ratio,
    uplift,
)
from router.guardrails import Guardrails
from router.registry import MemoryRegistry
from router.stats import RewardTotals, parse_totals
from router.store import MemoryStore
from tests._servers import run_asgi

TOKEN = "checks-test-token"  # noqa: S105 - a test's own admin token
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def totals_of(values: np.ndarray) -> RewardTotals:
    return RewardTotals(n=len(values), total=float(values.sum()),
                        squares=float((values * values).sum()))


# -- the sample-ratio check (its chi-square: tests/bandit/test_ope_audit.py) ----------


def test_srm_fires_on_52_48_of_20000_logged_at_half() -> None:
    check = sample_ratio({"A": 10_400, "B": 9_600}, {"A": 10_000.0, "B": 10_000.0})
    assert check is not None and check.df == 1
    assert check.statistic == pytest.approx(32.0)
    assert check.p_value < SRM_P_VALUE
    # 50.5/49.5 is within chance at this size.
    near = sample_ratio({"A": 10_100, "B": 9_900}, {"A": 10_000.0, "B": 10_000.0})
    assert near is not None and near.p_value > SRM_P_VALUE


def test_srm_is_quiet_on_honest_adaptive_logging_and_needs_the_logged_sum() -> None:
    """Probabilities that drift as a bandit's would (A: 0.8 → 0.1): counts against Σ p per
    variant pass in ≥ 95% of seeded runs; against the final probability × n they fail."""
    rng = np.random.default_rng(7)
    runs, n = 200, 20_000
    quiet, naive_fires = 0, 0
    drift = np.linspace(0.8, 0.1, n)
    probabilities = np.stack([drift * 0.7, drift * 0.3, 1.0 - drift], axis=1)  # A, B, C
    for _ in range(runs):
        cumulative = probabilities.cumsum(axis=1)
        draws = rng.random(n)[:, None]
        chosen = (draws > cumulative).sum(axis=1)
        counts = np.bincount(chosen, minlength=3)
        names = ("A", "B", "C")
        realised = {name: float(counts[i]) for i, name in enumerate(names)}
        logged = {name: float(probabilities[:, i].sum()) for i, name in enumerate(names)}
        check = sample_ratio(realised, logged)
        assert check is not None
        quiet += check.p_value >= SRM_P_VALUE
        final = {name: float(probabilities[-1, i] * n) for i, name in enumerate(names)}
        naive = sample_ratio(realised, final)
        naive_fires += naive is not None and naive.p_value < SRM_P_VALUE
    assert quiet >= 0.95 * runs, quiet
    assert naive_fires == runs


def test_srm_needs_enough_expected_and_flags_impossible_counts() -> None:
    assert sample_ratio({"A": 3, "B": 1}, {"A": 2.0, "B": 2.0}) is None  # expected < 5
    assert sample_ratio({"A": 50}, {"A": 50.0}) is None  # one variant
    impossible = sample_ratio({"A": 50, "B": 5}, {"A": 55.0, "B": 0.0})
    assert impossible is not None and impossible.p_value == 0.0


# -- uplift and expected loss -------------------------------------------------------


def test_uplift_is_the_difference_with_a_welch_interval_that_covers() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.normal(1.0, 2.0, 400), rng.normal(1.3, 0.5, 100)
    result = uplift(totals_of(b), totals_of(a))
    assert result is not None
    diff, (low, high) = result
    assert diff == pytest.approx(b.mean() - a.mean())
    half = 1.959964 * math.sqrt(a.var(ddof=1) / 400 + b.var(ddof=1) / 100)
    assert (low, high) == pytest.approx((diff - half, diff + half))
    assert uplift(RewardTotals(n=1, total=1.0, squares=1.0), totals_of(a)) is None
    covered = 0
    runs = 400
    for _ in range(runs):
        a = rng.binomial(1, 0.30, 300).astype(float)
        b = rng.binomial(1, 0.36, 200).astype(float)
        result = uplift(totals_of(b), totals_of(a))
        assert result is not None
        covered += result[1][0] <= 0.06 <= result[1][1]
    assert 0.92 * runs <= covered <= 0.98 * runs, covered


def test_expected_loss_matches_the_two_variant_closed_form() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.50, 0.3, 80), rng.normal(0.55, 0.3, 60)
    moments = {"A": totals_of(a), "B": totals_of(b)}
    losses = expected_loss(moments)
    d = b.mean() - a.mean()
    s = math.sqrt(a.var(ddof=1) / 80 + b.var(ddof=1) / 60)
    # E[max(μa, μb) − μa] = E[max(0, D)], D ~ N(d, s²).
    exact_a = s * scipy_stats.norm.pdf(d / s) + d * scipy_stats.norm.cdf(d / s)
    exact_b = exact_a - d
    assert losses["A"] == pytest.approx(exact_a, rel=0.03)
    assert losses["B"] == pytest.approx(exact_b, rel=0.05)
    assert expected_loss(moments) == losses  # seeded: one input, one answer
    assert expected_loss({"A": RewardTotals(n=1, total=1.0, squares=1.0)}) == {}


def test_p99_is_the_upper_edge_of_the_bucket_holding_it() -> None:
    assert LATENCY_EDGES_MS[:4] == (1.0, 2.5, 5.0, 10.0)
    assert [latency_bucket(ms) for ms in (0.2, 1.0, 1.01, 2.5, 9.9, 10_000.0, 10_001.0)] == [
        0, 0, 1, 1, 3, 12, 13]
    fast = [0.5] * 990 + [7.0] * 10  # the 990th of 1000 is fast, the 991st slow
    slow = [0.5] * 989 + [7.0] * 11
    for latencies, p99 in ((fast, 1.0), (slow, 10.0)):
        counts = Counter(latency_bucket(ms) for ms in latencies)
        raw = {f"A:lat:{bucket}": float(count) for bucket, count in counts.items()}
        totals = parse_totals({"A:n": 1000.0, **raw})["A"]
        assert totals.p99_ms == p99
        exact = sorted(latencies)[math.ceil(0.99 * len(latencies)) - 1]
        assert exact <= totals.p99_ms  # an upper bound of the nearest-rank p99
    overflow = parse_totals({"A:n": 1.0, "A:lat:13": 1.0})["A"]
    assert overflow.p99_ms == 10_000.0  # the last edge: "10 s or more"
    assert parse_totals({"A:n": 3.0})["A"].p99_ms is None  # decision-only: no latency


# -- warnings -----------------------------------------------------------------------


def codes(**kwargs: Any) -> set[str]:
    base: dict[str, Any] = {"srm": None, "joined": None, "late": None, "default_reward": 0.0,
                            "wait_seconds": 1.0, "rewards_known": True}
    base.update(kwargs)
    variants = base.pop("variants")
    return {w.code for w in experiment_warnings(variants, **base)}


def test_each_warning_fires_over_its_threshold_and_not_under() -> None:
    healthy = [VariantFigures("A", learned=500, defaults=20), VariantFigures("B", 500, 20)]
    assert codes(variants=healthy) == set()
    over = int(1000 * DEFAULT_SHARE_WARN) + 10
    defaulted = [VariantFigures("A", 500, defaults=over), VariantFigures("B", 500, 0)]
    assert codes(variants=defaulted) == {"default_rewards_high"}
    under = [VariantFigures("A", 500, defaults=int(1000 * DEFAULT_SHARE_WARN) - 10),
             VariantFigures("B", 500, 0)]
    assert codes(variants=under) == set()
    assert codes(variants=healthy, joined=1000, late=60) == {"late_rewards_high"}
    assert codes(variants=healthy, joined=1000, late=40) == set()
    srm = sample_ratio({"A": 600, "B": 400}, {"A": 500.0, "B": 500.0})
    assert codes(variants=healthy, srm=srm) == {"sample_ratio_mismatch"}
    failing = int(500 * ERROR_RATE_WARN) + 5
    errors = [VariantFigures("A", 500, errors=failing), VariantFigures("B", 500)]
    assert codes(variants=errors) == {"variant_errors_high"}
    window = [VariantFigures("A", 500, error_rate_window=0.5, calls_window=40,
                             suspended=True), VariantFigures("B", 500)]
    assert codes(variants=window) == {"variant_errors_high", "variant_suspended"}
    assert codes(variants=[VariantFigures("A", 40), VariantFigures("B", 40)]) == {"few_rewards"}
    # Unknown reward figures: nothing said about rewards, but that they are missing.
    assert codes(variants=defaulted, rewards_known=False) == {"reward_figures_missing"}


def test_warnings_name_what_was_measured_most_severe_first() -> None:
    variants = [VariantFigures("A", 700, defaults=300), VariantFigures("B", 300, defaults=0)]
    found = experiment_warnings(variants, srm=None, joined=1000, late=300, default_reward=0.0,
                                wait_seconds=2.0, rewards_known=True)
    assert [w.code for w in found] == ["default_rewards_high", "late_rewards_high"]
    assert "30.0% of the 1000 decisions learned" in found[0].message
    assert "wait_seconds (2 s)" in found[0].message and "A, 42.9%" in found[0].message
    assert found[0].severity == "critical" and found[1].severity == "warning"


# -- the /stats fields --------------------------------------------------------------


def test_stats_route_carries_shares_uplift_loss_srm_and_warnings() -> None:
    settings = parse_settings({"store": "memory://", "experiments": [{
        "name": "shop", "endpoint": "ep-shop", "backend": "http",
        "variants": [{"name": n, "url": "http://127.0.0.1:9/"} for n in ("A", "B", "C")],
        "policy": {"type": "thompson"},
        "reward": {"default": 0, "wait_seconds": 5}}]})
    source = MemoryLearnerStats()
    # A dishonest log: B chosen 500 times though its logged probabilities sum to 300.
    figures = {"A": (400, 200.0, 200.0, 150, 0, 400.0), "B": (500, 300.0, 300.0, 0, 40, 300.0),
               "C": (100, 60.0, 60.0, 0, 0, 300.0)}
    source.add_totals("shop", [(f"{v}:{k}", float(x)) for v, row in figures.items()
                               for k, x in zip(("n", "sum", "sumsq", "defaults", "errors",
                                                "served"), row, strict=True)])

    async def counts(experiments: list[str]) -> dict[str, dict[str, int]]:
        return {"shop": {"joined": 1000, "late_rewards": 90, "default_rewards": 150}}

    source.join_counts = counts
    app = create_app(settings, store=MemoryStore(), registry=MemoryRegistry(),
                     secrets=Secrets(admin_token=TOKEN), stats_source=source)
    with run_asgi(app) as url:
        stats = httpx.get(f"{url}/v1/experiments/shop/stats", headers=AUTH).json()
        against_b = httpx.get(f"{url}/v1/experiments/shop/stats?control=B",
                              headers=AUTH).json()
        bad = httpx.get(f"{url}/v1/experiments/shop/stats?control=Z", headers=AUTH)
    variants = {v["name"]: v for v in stats["variants"]}
    assert stats["control"] == "A" and against_b["control"] == "B"
    assert variants["B"]["realised_share"] == pytest.approx(0.5)
    assert variants["B"]["mean_logged_probability"] == pytest.approx(0.3)
    assert variants["A"]["default_share"] == pytest.approx(150 / 400)
    assert variants["B"]["error_rate"] == pytest.approx(40 / 500)
    assert variants["A"]["uplift"] is None
    a, c = RewardTotals(400, 200.0, 200.0), RewardTotals(100, 60.0, 60.0)
    lift = uplift(c, a)
    assert lift is not None
    assert variants["C"]["uplift"] == pytest.approx(lift[0])
    assert variants["C"]["uplift_ci95"] == pytest.approx(list(lift[1]))
    assert {v["name"]: v["uplift"] for v in against_b["variants"]}["B"] is None
    loss = {v["name"]: v["expected_loss"] for v in stats["variants"]}
    assert loss == pytest.approx(expected_loss({
        "A": a, "B": RewardTotals(500, 300.0, 300.0), "C": c}))
    assert loss["A"] > 0.09 > loss["B"]  # A (mean 0.5) trails B and C (0.6) by 0.1
    assert stats["late_rewards"] == 90 and stats["decisions_joined"] == 1000
    assert stats["sample_ratio"]["p_value"] < SRM_P_VALUE
    assert {w["code"] for w in stats["warnings"]} == {
        "default_rewards_high", "late_rewards_high", "sample_ratio_mismatch",
        "variant_errors_high"}
    assert all(v["window_calls"] == 0 and v["window_p99_ms"] is None  # no calls yet
               for v in stats["variants"])
    assert bad.status_code == 422 and "control" in bad.json()["message"]


def test_guardrail_window_figures_cover_the_window_only() -> None:
    limits = GuardrailConfig(error_rate=0.9, p99_ms=10_000, window_s=10.0, cooldown_s=30.0,
                             min_requests=1000, probe_share=0.1)
    guard = Guardrails(limits, ["A", "B"])
    for i in range(100):  # at t = 0..9.9: latencies 1..100 ms, every tenth call failing
        guard.record("A", i % 10 != 0, (i + 1) / 1000.0, i / 10.0)
    figures = guard.window("A", 9.95)
    assert figures.calls == 100 and figures.error_rate == pytest.approx(0.1)
    assert figures.p99_ms == pytest.approx(99.0)  # nearest rank: the 99th of 100
    later = guard.window("A", 15.0)  # calls before t = 5 have left the window
    assert later.calls == 50 and later.p99_ms == pytest.approx(100.0)
    assert guard.window("B", 15.0).calls == 0 and guard.window("B", 15.0).p99_ms is None


def test_a_variant_counted_at_logged_probability_zero_is_a_mismatch_not_a_500() -> None:
    settings = parse_settings({"store": "memory://", "experiments": [{
        "name": "shop", "endpoint": "ep-shop", "backend": "http",
        "variants": [{"name": n, "url": "http://127.0.0.1:9/"} for n in ("A", "B")],
        "policy": {"type": "thompson"}}]})
    source = MemoryLearnerStats()
    source.add_totals("shop", [("A:n", 50.0), ("A:sum", 25.0), ("A:sumsq", 25.0),
                               ("B:n", 50.0), ("B:sum", 25.0), ("B:sumsq", 25.0),
                               ("B:served", 100.0)])
    app = create_app(settings, store=MemoryStore(), registry=MemoryRegistry(),
                     secrets=Secrets(admin_token=TOKEN), stats_source=source)
    with run_asgi(app) as url:
        answer = httpx.get(f"{url}/v1/experiments/shop/stats", headers=AUTH)
    assert answer.status_code == 200, answer.text
    stats = answer.json()
    assert stats["sample_ratio"] == {"statistic": None, "df": 1, "p_value": 0.0}
    assert "sample_ratio_mismatch" in {w["code"] for w in stats["warnings"]}
