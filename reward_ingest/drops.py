"""Rewards the joiner did not join, made visible: Prometheus counters and log lines.

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
The same read gives the joined ones per experiment (``JOINED``):
``bandit_ingest_rewards_joined_total``, ``bandit_ingest_rewards_defaulted_total``
and ``bandit_ingest_decisions_unrewarded_total``. The values are the joiner's totals,
so they survive an ingester restart.
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

from common import redis_errors

from .joiner import UNKNOWN

__all__ = ["JOINED", "REASONS", "DropReporter", "DroppedRewards"]

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


JOINED = {"joined": ("bandit_ingest_rewards_joined", "Decisions joined with their reward "
                      "(or the default), by experiment; the joiner's totals"),
          "default_rewards": ("bandit_ingest_rewards_defaulted", "Decisions joined with the "
                              "experiment's default reward (none came in the window), by "
                              "experiment; the joiner's totals"),
          "dropped_no_reward": ("bandit_ingest_decisions_unrewarded", "Decisions dropped "
                                "unjoined: no reward in the window and no default, by "
                                "experiment; the joiner's totals")}
"""The joiner's counters of joined decisions -> the metric family and its help."""


class DroppedRewards(Collector):
    """``bandit_ingest_rewards_dropped_total{experiment, reason}``, from the joiner's totals,
    beside the joined ones (``JOINED``: joined, defaulted, unrewarded per experiment)."""

    def __init__(self) -> None:
        self.totals: dict[Key, int] = {}
        self.joined: dict[Key, int] = {}
        """(experiment, joiner counter in ``JOINED``) -> total."""

    def update(self, counts: Counts) -> dict[Key, int]:
        """Take the joiner's counters; what grew since the previous update (the first
        gives the totals so far)."""
        totals = {(experiment, reason): counters[counter]
                  for experiment, counters in counts.items()
                  for counter, reason in REASONS.items() if counters.get(counter)}
        grown = {key: value - self.totals.get(key, 0) for key, value in totals.items()
                 if value > self.totals.get(key, 0)}
        self.totals = totals
        self.joined = {(experiment, counter): counters.get(counter, 0)
                       for experiment, counters in counts.items() if experiment != UNKNOWN
                       for counter in JOINED}
        return grown

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "bandit_ingest_rewards_dropped", "Rewards the joiner did not join, by experiment "
            "and reason (out_of_range, late, duplicate, orphan, malformed); the joiner's "
            "totals", labels=("experiment", "reason"))
        for (experiment, reason), value in sorted(self.totals.items()):
            family.add_metric((experiment, reason), value)
        yield family
        for counter, (name, help_text) in JOINED.items():
            joined = CounterMetricFamily(name, help_text, labels=("experiment",))
            for (experiment, kind), value in sorted(self.joined.items()):
                if kind == counter:
                    joined.add_metric((experiment,), value)
            yield joined


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
                redis_errors.count("drop_reporter")
                logger.debug("dropped rewards: joiner counters unavailable (%s)", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)
