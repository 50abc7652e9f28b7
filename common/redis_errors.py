"""Redis errors by component, counted for the whole process: ``bandit_redis_errors_total``.

Every part that catches a ``RedisError`` (or the ``OSError`` of a dropped connection)
and carries on calls ``count(component)``. The tally belongs to the process, not to
one app, because the failing connection does; ``RedisErrors`` exposes it in any
registry (router and ingester each register one). Components are a small closed set
of names (``COMPONENTS``), so the label never grows with input.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["COMPONENTS", "RedisErrors", "count", "totals"]

COMPONENTS = ("decision_log", "registry", "stats", "admin", "reward_store", "joiner",
              "learner", "lease", "drop_reporter", "push_log", "joined_reader",
              "loop_metrics")
"""Every component that counts its Redis errors."""

_lock = threading.Lock()
_totals: Counter[str] = Counter()


def count(component: str) -> None:
    """One Redis error seen by ``component`` (one of ``COMPONENTS``)."""
    with _lock:  # the router's store also fails from its writer thread
        _totals[component] += 1


def totals() -> dict[str, int]:
    """Component -> errors so far in this process."""
    with _lock:
        return dict(_totals)


class RedisErrors(Collector):
    """``bandit_redis_errors_total{component}``: the process's tally."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "bandit_redis_errors", "Redis errors (or dropped connections) a component "
            "caught and recovered from, by component", labels=("component",))
        counted = totals()
        for component in COMPONENTS:
            family.add_metric((component,), counted.get(component, 0))
        yield family
