"""The learning loop as one running service: joiner, learners, weight pushers, archiver.

``IngestService.run(stop)`` runs every part as a task until ``stop`` is set:

- the joiner pairs decisions with rewards (exactly once: see ``joiner.redis``);
- one learner per experiment learns from joined events, checkpoints and publishes
  snapshots (routers follow them);
- a reader follows the joined stream for the archiver (DSJSON files) and for the
  recent traffic shares of contextual policies;
- one weight pusher per experiment with ``weights_push.enabled`` pushes the learned
  split to the SageMaker endpoint every ``interval_s``, recording each push in
  ``bandit:pushes:{E}`` (``stats_sink``; the learners record reward totals and the
  timeline with their checkpoints).

``redis_service`` builds it on Redis (``bandit-router ingest``); ``memory_service``
in process beside a router on ``memory://`` (the embedded default). Archive files
roll by size (``max_bytes``) and age: once the oldest open file is ``max_seconds``
old, every open file is closed, whether or not new events came. The archive is at
least once: the joined-stream offset it has archived is saved whenever everything
read is in files (so at least every ``max_seconds``), and a crash can write an event
again (readers dedupe on ``EventId``), never lose one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from common import redis_errors
from common.config import ExperimentConfig, Settings
from common.learner_stats import MemoryLearnerStats
from common.storage.snapshots import MemorySnapshots

from .archive import Archiver
from .drops import DroppedRewards, DropReporter
from .errors import PushError
from .join_rules import JoinedEvent, rules_of
from .joiner import (
    JoinedLog,
    JoinedSource,
    Joiner,
    MemoryJoiner,
    RedisJoinedLog,
    RedisJoiner,
    RewardReader,
)
from .learner import LearnerLoop, LearnerSettings, MemoryCheckpoints, MemoryLearner, RedisLearner
from .lease import MemoryLeaseTable
from .loop_metrics import LoopMetrics, LoopSampler
from .pusher import WeightPusher, default_client_factory
from .stats_sink import PushLog, RedisPushLog, push_recorder

logger = logging.getLogger(__name__)

RECENT_SHARES = 1000  # joined decisions averaged for a contextual policy's traffic share
READ_BATCH = 1000



@dataclass
class IngestService:
    """The running parts; build with ``redis_service`` or ``memory_service``."""

    settings: Settings
    joiner: Joiner
    learners: dict[str, LearnerLoop]
    joined: JoinedSource
    """The joined stream the archive and the recent shares follow."""
    archiver: Archiver | None = None
    pushers: dict[str, WeightPusher] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    recent: dict[str, deque[Mapping[str, float]]] = field(default_factory=dict)
    close_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    background: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = field(
        default_factory=list)
    idle_s: float = 0.2
    """How long the joined-stream reader waits for new events once it has caught up."""
    metrics: LoopMetrics | None = None
    """Where join lags go (and what ``with_metrics`` wired up), if anywhere."""

    def with_metrics(self, metrics: LoopMetrics | None) -> IngestService:
        """Report to ``metrics`` (None: nothing): the running parts for scrapes, a
        sampler for learner lag and snapshot age, join lags from the joined-stream reader."""
        if metrics is not None:
            self.metrics = metrics
            metrics.state.learners = self.learners
            metrics.state.pushers = self.pushers
            metrics.state.archiver = self.archiver
            self.background.append(LoopSampler(metrics, self.learners, self.joined).run)
        return self

    async def run(self, stop: asyncio.Event) -> None:
        """Run every part until ``stop`` is set, then flush and close."""
        tasks = [asyncio.create_task(self.joiner.run(stop, self.clock), name="joiner")]
        tasks += [asyncio.create_task(learner.run(stop), name=f"learner-{name}")
                  for name, learner in self.learners.items()]
        tasks.append(asyncio.create_task(self._follow_joined(stop), name="joined-reader"))
        tasks += [asyncio.create_task(self._push_loop(name, pusher, stop), name=f"push-{name}")
                  for name, pusher in self.pushers.items()]
        tasks += [asyncio.create_task(part(stop)) for part in self.background]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.archiver is not None:
                await self.archiver.close()
            for learner in self.learners.values():
                await learner.close()
            for hook in self.close_hooks:
                await hook()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """``run`` in a task for the block (a server's lifespan); stopped, flushed and
        closed on the way out."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop), name="ingest")
        try:
            yield
        finally:
            stop.set()
            await task

    def shares(self, experiment: str) -> dict[str, float] | None:
        """The traffic split the pusher follows: the policy's, or recent decisions' mean."""
        learner = self.learners.get(experiment)
        policy = learner.policy if learner is not None else None
        if policy is None:
            return None
        if policy.contextual:
            # A contextual policy has no single split: average what it served lately.
            recent = self.recent.get(experiment)
            if not recent:
                return None
            total: dict[str, float] = dict.fromkeys(policy.arms, 0.0)
            for probabilities in recent:
                for arm, p in probabilities.items():
                    if arm in total:
                        total[arm] += p
            return {arm: value / len(recent) for arm, value in total.items()}
        return dict(policy.probabilities(None))

    async def _follow_joined(self, stop: asyncio.Event) -> None:
        offset = saved = await self.joined.archived_offset()
        while True:
            # Read once more after ``stop``: what was joined before it goes to the
            # archive before the archiver's final flush (on memory:// nothing else would).
            stopping = stop.is_set()
            entries: list[tuple[str, JoinedEvent | None]] = []
            try:
                entries = list(await self.joined.read_joined(READ_BATCH, offset))
                events = [event.to_dict() for _, event in entries if event is not None]
                if self.metrics is not None:
                    for event in events:
                        self.metrics.joined(event)
                for event in events:
                    self.recent.setdefault(event["experiment"], deque(maxlen=RECENT_SHARES)) \
                        .append(event["probabilities"])
                if self.archiver is not None:
                    if events:
                        await self.archiver.add(events)
                    if stopping and len(entries) < READ_BATCH:
                        await self.archiver.flush()  # the last read: all of it into files
                    else:
                        await self._flush_archive_when_due(self.archiver)
                if entries:
                    offset = entries[-1][0]
                if offset != saved and (self.archiver is None
                                        or self.archiver.stats.pending_events == 0):
                    # Everything up to here is in files.
                    await self.joined.save_archived_offset(offset)
                    saved = offset
            except Exception as exc:  # keep following: a failed write is retried next round
                if isinstance(exc, RedisError | OSError):
                    redis_errors.count("joined_reader")
                logger.exception("joined-stream reader failed; retrying")
                if stopping:
                    return
            if len(entries) < READ_BATCH:
                if stopping:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.idle_s)
            else:
                await asyncio.sleep(0)  # memory:// reads never suspend: let the router run

    @staticmethod
    async def _flush_archive_when_due(archiver: Archiver) -> None:
        """Close every open file once the oldest is ``max_seconds`` old (read or not).

        All together, so that everything read is in files and the offset can be saved
        at least every ``max_seconds`` (files of younger streams close early); a file
        whose write failed earlier is retried here too.
        """
        if archiver.stats.pending_events == 0:
            return
        due = archiver.next_due()  # seconds until the oldest open file is due
        if due is None or due <= 0.0:
            await archiver.flush()

    async def _push_loop(self, name: str, pusher: WeightPusher, stop: asyncio.Event) -> None:
        interval = pusher.config.interval_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(interval, 5.0))
            if stop.is_set():
                return
            shares = self.shares(name)
            if shares is None:
                continue
            try:
                await pusher.push(shares, reason="learned split")
            except PushError as exc:
                logger.warning("weights push for %s: %s", name, exc)


def _archiver(settings: Settings) -> Archiver | None:
    archive = settings.archive
    if archive is None:
        return None
    return Archiver(archive.path, max_bytes=archive.max_bytes, max_seconds=archive.max_seconds)


def _pushers(settings: Settings, log: PushLog | MemoryLearnerStats) -> dict[str, WeightPusher]:
    return {e.name: WeightPusher(default_client_factory(), e.endpoint, e.weights_push,
                                 on_record=push_recorder(log, e.name))
            for e in settings.experiments if e.weights_push.enabled}


def _learner_settings(experiment: ExperimentConfig) -> LearnerSettings:
    return LearnerSettings.of(experiment)


def redis_service(settings: Settings, url: str, *, dropped: DroppedRewards | None = None,
                  metrics: LoopMetrics | None = None) -> IngestService:
    """The service on the Redis at ``url`` (the store the routers log to); the joiner's
    counts go to ``dropped`` when given (``IngestMetrics.dropped``), lags, pushes and
    archive counters to ``metrics`` (``IngestMetrics.loop``)."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    learners: dict[str, LearnerLoop] = {
        e.name: RedisLearner.from_url(url, _learner_settings(e)) for e in settings.experiments}
    service = IngestService(settings, RedisJoiner(client, rules_of(settings.experiments)),
                            learners, RedisJoinedLog(client), archiver=_archiver(settings),
                            pushers=_pushers(settings, RedisPushLog(client)),
                            close_hooks=[client.aclose])
    _report_drops(service, dropped)
    return service.with_metrics(metrics)


def memory_service(settings: Settings, decisions: Any, rewards: RewardReader,
                   snapshots: MemorySnapshots, stats: MemoryLearnerStats | None = None, *,
                   dropped: DroppedRewards | None = None,
                   metrics: LoopMetrics | None = None) -> IngestService:
    """The service in this process: ``decisions`` is the router's ``MemoryStore``; the
    learners publish to ``snapshots`` (the router's ``MemoryRegistry`` reads it);
    reward totals, timeline and pushes go to ``stats`` (the router reads it too), the
    joiner's counts to ``dropped`` and the loop's metrics to ``metrics`` when given."""
    stats = MemoryLearnerStats() if stats is None else stats
    joined = JoinedLog()
    joiner = MemoryJoiner(decisions, rewards, rules_of(settings.experiments), joined)
    stats.join_counts = joiner.counts  # what the router's /stats reads as the joiner's counts
    checkpoints = MemoryCheckpoints(snapshots=snapshots, stats=stats)
    leases = MemoryLeaseTable()
    learners: dict[str, LearnerLoop] = {
        e.name: MemoryLearner(_learner_settings(e), joined, checkpoints, leases)
        for e in settings.experiments}
    service = IngestService(settings, joiner, learners, joined, archiver=_archiver(settings),
                            pushers=_pushers(settings, stats))
    _report_drops(service, dropped)
    return service.with_metrics(metrics)


def _report_drops(service: IngestService, dropped: DroppedRewards | None) -> None:
    if dropped is not None:
        names = [experiment.name for experiment in service.settings.experiments]
        service.background.append(DropReporter(service.joiner, names, dropped).run)
