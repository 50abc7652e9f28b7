"""Guardrails: trip on errors or latency, suspend for the cooldown, probe, recover."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.guardrails import Guardrails, VariantHealth, _Window


@dataclass(frozen=True)
class Limits:
    error_rate: float = 0.5
    p99_ms: float = 100.0
    window_s: float = 10.0
    cooldown_s: float = 30.0
    min_requests: int = 10
    probe_share: float = 0.1


PROBS = {"A": 0.6, "B": 0.3, "C": 0.1}


def test_errors_trip_a_variant_and_the_rest_are_renormalised() -> None:
    guard = Guardrails(Limits(), PROBS)
    trips = [guard.record("B", ok=i % 2 == 0, latency_s=0.01, now=float(i)) for i in range(10)]
    assert next(t for t in trips if t is not None).reason.startswith("error rate 50%")
    assert guard.health("B", 10.0) is VariantHealth.SUSPENDED
    adjusted = guard.adjust(PROBS, 10.0)
    assert adjusted["B"] == 0.0
    assert adjusted["A"] == pytest.approx(0.6 / 0.7)
    assert adjusted["C"] == pytest.approx(0.1 / 0.7)
    assert math.fsum(adjusted.values()) == pytest.approx(1.0)


def test_too_few_requests_never_trip() -> None:
    guard = Guardrails(Limits(), PROBS)
    for i in range(9):
        assert guard.record("A", ok=False, latency_s=0.01, now=float(i)) is None
    assert guard.health("A", 9.0) is VariantHealth.HEALTHY


def test_slow_variant_trips_on_p99() -> None:
    guard = Guardrails(Limits(), PROBS)
    trip = None
    for i in range(40):
        trip = trip or guard.record("C", ok=True, latency_s=0.5 if i % 3 == 0 else 0.01,
                                    now=i * 0.1)
    assert trip is not None and trip.reason.startswith("p99 500 ms")


def test_old_calls_leave_the_window() -> None:
    guard = Guardrails(Limits(), PROBS)
    for i in range(6):
        guard.record("A", ok=False, latency_s=0.01, now=float(i))
    # 20 s later the six errors are outside the 10 s window: ten good calls do not trip.
    for i in range(10):
        assert guard.record("A", ok=True, latency_s=0.01, now=20.0 + i) is None


def test_cooldown_then_probe_then_recovery() -> None:
    guard = Guardrails(Limits(), PROBS)
    for i in range(10):
        guard.record("A", ok=False, latency_s=0.01, now=float(i))
    assert guard.health("A", 20.0) is VariantHealth.SUSPENDED
    assert guard.health("A", 40.0) is VariantHealth.PROBING
    probed = guard.adjust(PROBS, 40.0)
    assert probed["A"] == pytest.approx(0.1)
    assert probed["B"] == pytest.approx(0.9 * 0.75)
    for i in range(10):
        guard.record("A", ok=True, latency_s=0.01, now=41.0 + i)
    assert guard.health("A", 52.0) is VariantHealth.HEALTHY
    assert guard.adjust(PROBS, 52.0) == PROBS


def test_a_failing_probe_suspends_again() -> None:
    guard = Guardrails(Limits(), PROBS)
    for i in range(10):
        guard.record("A", ok=False, latency_s=0.01, now=float(i))
    assert guard.health("A", 40.0) is VariantHealth.PROBING
    for i in range(10):
        guard.record("A", ok=False, latency_s=0.01, now=40.0 + i)
    assert guard.health("A", 50.0) is VariantHealth.SUSPENDED
    assert len(guard.trips) == 2


def test_all_suspended_fails_open() -> None:
    guard = Guardrails(Limits(), {"A": 0.5, "B": 0.5})
    for variant in ("A", "B"):
        for i in range(10):
            guard.record(variant, ok=False, latency_s=0.01, now=float(i))
    assert guard.adjust({"A": 0.5, "B": 0.5}, 11.0) == {"A": 0.5, "B": 0.5}


def test_greedy_zero_probability_variant_still_gets_its_probe() -> None:
    guard = Guardrails(Limits(), PROBS)
    for i in range(10):
        guard.record("C", ok=False, latency_s=0.01, now=float(i))
    probed = guard.adjust({"A": 1.0, "B": 0.0, "C": 0.0}, 45.0)
    assert probed == pytest.approx({"A": 0.9, "B": 0.0, "C": 0.1})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 0.3), min_size=1, max_size=300), st.floats(1.0, 250.0))
def test_running_p99_check_equals_the_sorted_p99(latencies: list[float], limit_ms: float) -> None:
    # The O(1) count of slow calls must trip exactly when the nearest-rank p99 does.
    window = _Window()
    for i, latency in enumerate(latencies):
        window.add(float(i), True, latency, 1e9, limit_ms)
    assert window.p99_reached() == (window.p99() * 1000.0 >= limit_ms)
