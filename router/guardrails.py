"""Per-variant guardrails: suspend a variant that errors or is slow, then probe it back.

Each variant keeps a rolling window (``window_s``) of its invocations' outcomes
and latencies. Once the window holds ``min_requests`` calls, an error rate at or
above ``error_rate`` or a p99 latency at or above ``p99_ms`` trips the variant:

    healthy ──trip──▶ suspended ──cooldown_s──▶ probing ──min_requests good──▶ healthy
                         ▲                         │
                         └──────────trip───────────┘

A suspended variant gets probability 0 and the others are renormalised; a
probing one gets exactly ``probe_share``, whatever the policy wanted (a greedy
policy may give it nothing, and a probe needs traffic to pass). The
router samples from the adjusted probabilities and logs them, so the logged
probability is always the one sampled with. When every offered variant is
suspended the guardrails stand aside (fail open): refusing all traffic would
turn one bad variant into an outage.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol


class GuardrailLimits(Protocol):
    """The ``guardrails:`` keys of an experiment (``common.config.GuardrailConfig``)."""

    @property
    def error_rate(self) -> float: ...
    @property
    def p99_ms(self) -> float: ...
    @property
    def window_s(self) -> float: ...
    @property
    def cooldown_s(self) -> float: ...
    @property
    def min_requests(self) -> int: ...
    @property
    def probe_share(self) -> float: ...


class VariantHealth(Enum):
    """Where a variant stands with its guardrails."""

    HEALTHY = "healthy"
    SUSPENDED = "suspended"
    PROBING = "probing"


@dataclass(frozen=True, slots=True)
class Trip:
    """Why a variant was suspended, for logs and stats."""

    variant: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class WindowFigures:
    """One variant's guardrail window now: calls, error rate, p99 latency (ms)."""

    calls: int
    error_rate: float | None
    p99_ms: float | None


class _Window:
    """One variant's recent calls: (time, ok, latency in seconds, at or over the p99 limit),
    with running counts of errors and of calls at or over the limit: O(1) per call."""

    __slots__ = ("calls", "errors", "slow")

    def __init__(self) -> None:
        self.calls: deque[tuple[float, bool, float, bool]] = deque()
        self.errors = 0
        self.slow = 0

    def add(self, now: float, ok: bool, latency_s: float, window_s: float,
            p99_ms: float) -> None:
        slow = latency_s * 1000.0 >= p99_ms
        self.calls.append((now, ok, latency_s, slow))
        self.errors += not ok
        self.slow += slow
        horizon = now - window_s
        while self.calls and self.calls[0][0] < horizon:
            _, old_ok, _, old_slow = self.calls.popleft()
            self.errors -= not old_ok
            self.slow -= old_slow

    def p99_reached(self) -> bool:
        """Whether the nearest-rank p99 (the k-th smallest latency, k = ceil(0.99 n)) is at
        or over the limit: exactly when fewer than k calls are under it."""
        count = len(self.calls)
        return self.slow > count - math.ceil(0.99 * count)

    def p99(self) -> float:
        latencies = sorted(call[2] for call in self.calls)
        return latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)]


class Guardrails:
    """Tracks every variant of one experiment; ``adjust`` applies suspensions and probes."""

    def __init__(self, limits: GuardrailLimits, variants: Iterable[str]) -> None:
        self.limits = limits
        self._windows = {variant: _Window() for variant in variants}
        self._suspended_until: dict[str, float] = {}
        self._probing: set[str] = set()
        self.trips: list[Trip] = []

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants tracked, in the order they were added."""
        return tuple(self._windows)

    def add_variant(self, variant: str) -> None:
        self._windows.setdefault(variant, _Window())

    def remove_variant(self, variant: str) -> None:
        self._windows.pop(variant, None)
        self._suspended_until.pop(variant, None)
        self._probing.discard(variant)

    def health(self, variant: str, now: float) -> VariantHealth:
        """The variant's state at ``now`` (a finished cooldown turns into probing)."""
        until = self._suspended_until.get(variant)
        if until is not None:
            if now < until:
                return VariantHealth.SUSPENDED
            del self._suspended_until[variant]
            self._probing.add(variant)
            self._windows[variant] = _Window()
        return VariantHealth.PROBING if variant in self._probing else VariantHealth.HEALTHY

    def record(self, variant: str, ok: bool, latency_s: float, now: float) -> Trip | None:
        """Count one invocation's outcome; returns the trip when this call trips the variant."""
        window = self._windows.get(variant)
        if window is None or self.health(variant, now) is VariantHealth.SUSPENDED:
            return None
        limits = self.limits
        window.add(now, ok, latency_s, limits.window_s, limits.p99_ms)
        count = len(window.calls)
        if count < limits.min_requests:
            return None
        reason = None
        if window.errors / count >= limits.error_rate:
            reason = f"error rate {window.errors / count:.0%} ≥ {limits.error_rate:.0%}"
        elif window.p99_reached():
            # The sort runs only here, when the variant trips, for the message.
            reason = f"p99 {window.p99() * 1000.0:.0f} ms ≥ {limits.p99_ms:g} ms"
        if reason is None:
            if variant in self._probing:
                # Enough healthy calls since the cooldown: back to full service.
                self._probing.discard(variant)
            return None
        self._probing.discard(variant)
        self._suspended_until[variant] = now + limits.cooldown_s
        self._windows[variant] = _Window()
        trip = Trip(variant, reason, now)
        self.trips.append(trip)
        return trip

    def adjust(self, probabilities: Mapping[str, float], now: float) -> dict[str, float]:
        """Probabilities with suspended variants at 0 and probing ones capped at the probe share.

        The result sums to 1 over the variants given; it is the input itself
        (copied) when every variant is healthy, or when all are suspended.
        """
        if not self._suspended_until and not self._probing:
            return dict(probabilities)  # the usual case: nothing to look at per variant
        health = {variant: self.health(variant, now) for variant in probabilities}
        if all(state is VariantHealth.HEALTHY for state in health.values()):
            return dict(probabilities)
        if all(state is VariantHealth.SUSPENDED for state in health.values()):
            return dict(probabilities)
        share = self.limits.probe_share
        fixed = {v: share for v, state in health.items() if state is VariantHealth.PROBING}
        free = {v: p for v, p in probabilities.items() if health[v] is VariantHealth.HEALTHY}
        free_total = sum(free.values())
        room = 1.0 - sum(fixed.values())
        if not free or room <= 0.0:
            # Only probing variants are left: they share everything.
            total = sum(fixed.values())
            return {v: fixed.get(v, 0.0) / total for v in probabilities}
        if free_total <= 0.0:
            # The healthy ones had probability 0 here (e.g. not eligible): split evenly.
            free = dict.fromkeys(free, 1.0)
            free_total = float(len(free))
        return {v: fixed[v] if v in fixed else room * free[v] / free_total if v in free else 0.0
                for v in probabilities}

    def window(self, variant: str, now: float) -> WindowFigures:
        """The variant's calls in the last ``window_s`` at ``now``: count, error rate and
        nearest-rank p99 latency (read-only; a trip or the end of a cooldown empties it)."""
        window = self._windows.get(variant)
        horizon = now - self.limits.window_s
        calls = [call for call in window.calls if call[0] >= horizon] if window else []
        if not calls:
            return WindowFigures(0, None, None)
        errors = sum(1 for call in calls if not call[1])
        latencies = sorted(call[2] for call in calls)
        p99 = latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)]
        return WindowFigures(len(calls), errors / len(calls), p99 * 1000.0)

    def states(self, now: float) -> dict[str, VariantHealth]:
        """Every variant's state, for metrics and stats."""
        return {variant: self.health(variant, now) for variant in self._windows}
