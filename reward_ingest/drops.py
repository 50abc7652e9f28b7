"""Rewards the joiner did not join, made visible: a Prometheus counter and log lines.

The joiner counts every reward it does not join, per experiment and reason, in its
counters (``joiner.COUNTERS``; on Redis ``bandit:join:counts:{E}``, durable and
exact). ``DropReporter`` reads them every ``interval_s`` and

- exposes them as ``bandit_ingest_rewards_dropped_total{experiment, reason}``
  (``DroppedRewards``, a collector in the ingester's registry: ``IngestMetrics``);
- logs what came since the previous read (the first read: the totals so far), a
  WARNING for ``out_of_range`` and ``malformed`` (the sender should fix those), INFO
  for the others.

Reasons (the joiner's counter in brackets): ``out_of_range`` (outside the range of
the decision's experiment), ``late`` (``late_rewards``: after the event was joined
or its window closed), ``duplicate`` (``duplicate_rewards``: a reward identity seen
before), ``orphan`` (``orphan_rewards``: no decision came in the window; experiment
``_unknown``), ``malformed`` (``malformed_rewards``; experiment ``_unknown``).
The values are the joiner's totals, so they survive an ingester restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from .joiner import UNKNOWN

__all__ = ["REASONS", "DropReporter", "DroppedRewards"]

logger = logging.getLogger(__name__)

REASONS = {"out_of_range": "out_of_range", "late_rewards": "late",
           "duplicate_rewards": "duplicate", "orphan_rewards": "orphan",
           "malformed_rewards": "malformed"}
"""The joiner's counter -> the metric's ``reason`` label."""
_WARN = ("out_of_range", "malformed")
INTERVAL_S = 1.0

Counts = Mapping[str, Mapping[str, int]]
Key = tuple[str, str]  # (experiment, reason)


class CountingJoiner(Protocol):
    """What the reporter reads (``MemoryJoiner``, ``RedisJoiner`` fit)."""

    async def counts(self, experiments: Iterable[str] | None = None
                     ) -> dict[str, dict[str, int]]: ...


class DroppedRewards(Collector):
    """``bandit_ingest_rewards_dropped_total{experiment, reason}``, from the joiner's totals."""

    def __init__(self) -> None:
        self.totals: dict[Key, int] = {}

    def update(self, counts: Counts) -> dict[Key, int]:
        """Take the joiner's counters; what grew since the previous update (the first
        gives the totals so far)."""
        totals = {(experiment, reason): counters[counter]
                  for experiment, counters in counts.items()
                  for counter, reason in REASONS.items() if counters.get(counter)}
        grown = {key: value - self.totals.get(key, 0) for key, value in totals.items()
                 if value > self.totals.get(key, 0)}
        self.totals = totals
        return grown

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "bandit_ingest_rewards_dropped", "Rewards the joiner did not join, by experiment "
            "and reason (out_of_range, late, duplicate, orphan, malformed); the joiner's "
            "totals", labels=("experiment", "reason"))
        for (experiment, reason), value in sorted(self.totals.items()):
            family.add_metric((experiment, reason), value)
        yield family


class DropReporter:
    """Reads ``joiner``'s counters for ``experiments`` into ``dropped`` and the log."""

    def __init__(self, joiner: CountingJoiner, experiments: Iterable[str],
                 dropped: DroppedRewards, interval_s: float = INTERVAL_S) -> None:
        self._joiner = joiner
        self._experiments = [*dict.fromkeys(experiments), UNKNOWN]
        self._dropped = dropped
        self._interval_s = interval_s

    async def report(self) -> None:
        """One read: update the metric, log what grew."""
        grown = self._dropped.update(await self._joiner.counts(self._experiments))
        for (experiment, reason), count in sorted(grown.items()):
            logger.log(logging.WARNING if reason in _WARN else logging.INFO,
                       "event=rewards_dropped experiment=%s reason=%s count=%d total=%d",
                       experiment, reason, count, self._dropped.totals[experiment, reason])

    async def run(self, stop: asyncio.Event) -> None:
        """``report`` every ``interval_s`` until ``stop``; a store error skips a round."""
        while not stop.is_set():
            try:
                await self.report()
            except (RedisError, OSError) as exc:
                logger.debug("dropped rewards: joiner counters unavailable (%s)", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)
