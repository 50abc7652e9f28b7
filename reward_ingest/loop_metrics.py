"""The learning loop's Prometheus metrics: join lag, learner lag, snapshot age, pushes, archive.

``LoopMetrics`` lives in the ingester's registry (``IngestMetrics.loop``; on
``memory://`` the router's, so ``serve`` and ``ingest`` expose the same names):

- ``bandit_ingest_join_lag_seconds{experiment}`` (histogram): from a decision's
  ``timestamp`` to its join (``joined_at``), observed by the joined-stream reader
  (every ingester replica follows the whole stream, so each observes every event;
  after a restart the events read again since the archive's offset count again);
- ``bandit_ingest_learner_lag_events{experiment}``: joined events after the stored
  checkpoint's offset (what the learner has not learned yet), counted up to
  ``LAG_CAP``; read from the store, so every replica reports it, lease or not;
- ``bandit_ingest_snapshot_age_seconds{experiment}``: seconds since this process's
  learner last published a snapshot (only the replica holding the learner's lease,
  and only after its first publication);
- ``bandit_ingest_weight_pushes_total{experiment, outcome}``: ``pushed``, ``failed``,
  ``skipped_status`` (endpoint not InService), ``skipped_unchanged`` (nothing moves);
- ``bandit_ingest_archive_files_total``, ``_bytes_total``, ``_write_errors_total``,
  ``_indexes_total``, ``_index_errors_total`` and ``bandit_ingest_archive_pending_events``:
  the archiver's counters.

Gauges that need the store are sampled by ``LoopSampler`` every ``interval_s``; the
rest are read at scrape time from the running parts (``LoopState``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from common import redis_errors

from .archive import Archiver
from .joiner import JoinedSource
from .learner import LearnerLoop
from .pusher import WeightPusher

__all__ = ["JOIN_LAG_BUCKETS", "LAG_CAP", "LoopMetrics", "LoopSampler", "LoopState"]

logger = logging.getLogger(__name__)

# Joins happen from milliseconds (``first``) to the end of a window (minutes to hours).
JOIN_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                    1800.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
LAG_CAP = 100_000
"""Learner lag is counted up to this many events (counting costs O(lag) in Redis)."""
INTERVAL_S = 1.0
PUSH_OUTCOMES = ("pushed", "failed", "skipped_status", "skipped_unchanged")


@dataclass(slots=True)
class LoopState:
    """The running parts a scrape reads (set by the service it belongs to)."""

    learners: Mapping[str, LearnerLoop] = field(default_factory=dict)
    pushers: Mapping[str, WeightPusher] = field(default_factory=dict)
    archiver: Archiver | None = None


class _Scraped(Collector):
    """Pushes and archive counters, read from ``LoopState`` at scrape time."""

    def __init__(self, state: LoopState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        pushes = CounterMetricFamily(
            "bandit_ingest_weight_pushes", "Weight pushes to the SageMaker endpoint by "
            "experiment and outcome (pushed, failed, skipped_status, skipped_unchanged)",
            labels=("experiment", "outcome"))
        for name, pusher in sorted(self.state.pushers.items()):
            stats = pusher.stats()
            skips = stats["skips"]
            for outcome, value in (("pushed", stats["pushes"]), ("failed", stats["errors"]),
                                   ("skipped_status", skips.get("status", 0)),
                                   ("skipped_unchanged", skips.get("unchanged", 0))):
                pushes.add_metric((name, outcome), value)
        yield pushes
        archiver = self.state.archiver
        if archiver is None:
            return
        archived = archiver.stats
        for metric, help_text, value in (
                ("bandit_ingest_archive_files", "Archive files written", archived.files),
                ("bandit_ingest_archive_events", "Joined events written to archive files",
                 archived.events),
                ("bandit_ingest_archive_bytes", "Bytes written to archive files", archived.bytes),
                ("bandit_ingest_archive_write_errors", "Archive file writes that failed "
                 "(each is retried)", archived.write_errors),
                ("bandit_ingest_archive_indexes", "Indexes written beside archive files",
                 archived.indexes),
                ("bandit_ingest_archive_index_errors", "Archive files left without an index "
                 "(replay parses them instead)", archived.index_errors)):
            family = CounterMetricFamily(metric, help_text)
            family.add_metric((), value)
            yield family
        pending = GaugeMetricFamily("bandit_ingest_archive_pending_events",
                                    "Joined events read but not yet in an archive file")
        pending.add_metric((), archived.pending_events)
        yield pending


class LoopMetrics:
    """The loop's metrics in ``registry``; ``state`` is filled in by the service."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = LoopState()
        self.join_lag = Histogram(
            "bandit_ingest_join_lag_seconds", "Seconds from a decision to its join with "
            "its reward (or its default)", ("experiment",), buckets=JOIN_LAG_BUCKETS,
            registry=registry)
        self.learner_lag = Gauge(
            "bandit_ingest_learner_lag_events", "Joined events after the learner's stored "
            f"checkpoint (counted up to {LAG_CAP})", ("experiment",), registry=registry)
        self.snapshot_age = Gauge(
            "bandit_ingest_snapshot_age_seconds", "Seconds since this process's learner "
            "last published a policy snapshot", ("experiment",), registry=registry)
        registry.register(_Scraped(self.state))

    def joined(self, event: Mapping[str, Any]) -> None:
        """One joined event (``JoinedEvent.to_dict()``): its lag, never negative (router
        and ingester clocks differ); an event without a usable time is not observed."""
        try:
            lag = float(event["joined_at"]) - float(event["timestamp"])
            experiment = str(event["experiment"])
        except (KeyError, TypeError, ValueError):
            return
        if math.isfinite(lag):
            self.join_lag.labels(experiment).observe(max(0.0, lag))


class LoopSampler:
    """Samples learner lag and snapshot age into ``metrics`` every ``interval_s``."""

    def __init__(self, metrics: LoopMetrics, learners: Mapping[str, LearnerLoop],
                 joined: JoinedSource, *, interval_s: float = INTERVAL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._metrics = metrics
        self._learners = learners
        self._joined = joined
        self._interval_s = interval_s
        self._clock = clock

    async def sample(self) -> None:
        """One round over every learner."""
        for name, learner in self._learners.items():
            offset = await learner.stored_offset()
            self._metrics.learner_lag.labels(name).set(
                await self._joined.count_after(offset, LAG_CAP))
            published = learner.counters.last_published_at
            if published is not None:
                self._metrics.snapshot_age.labels(name).set(max(0.0, self._clock() - published))

    async def run(self, stop: asyncio.Event) -> None:
        """``sample`` until ``stop``; a store error skips a round (and is counted)."""
        while not stop.is_set():
            try:
                await self.sample()
            except (RedisError, OSError) as exc:
                redis_errors.count("loop_metrics")
                logger.debug("loop metrics: store unavailable (%s)", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)
