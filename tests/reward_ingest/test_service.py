"""IngestService: what was joined before a stop is archived; archive files roll by age."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from common.config import parse_settings
from reward_ingest.archive import Archiver
from reward_ingest.join_rules import JoinedEvent
from reward_ingest.joiner import JoinedLog
from reward_ingest.service import READ_BATCH, IngestService
from tests._wait import wait_for_async
from tests.reward_ingest.test_archive import FakeClock, event, event_ids, json_files


class IdleJoiner:
    """The joiner's place in the service; this test writes the joined log itself."""

    async def run(self, stop: asyncio.Event, clock: Any = None) -> None:
        await stop.wait()

    async def step(self, now: float) -> int:
        return 0

    async def counts(self, experiments: Iterable[str] | None = None
                     ) -> dict[str, dict[str, int]]:
        return {}


def joined(i: int) -> JoinedEvent:
    decision = {k: v for k, v in event(i).items()
                if k not in ("reward", "default_reward", "rewards", "joined_at")}
    return JoinedEvent(json.dumps(decision), reward=1.0, default_reward=False, rewards=1,
                       joined_at=1.0)


class CountingLog(JoinedLog):
    """The joined log, recording how many entries each of the service's reads found."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    async def read_joined(self, count: int,
                          after: str = "0") -> list[tuple[str, JoinedEvent]]:
        entries = await super().read_joined(count, after)
        self.reads.append(len(entries))
        return entries


def test_events_joined_just_before_stop_are_archived(tmp_path: Path) -> None:
    log = CountingLog()

    async def scenario() -> None:
        settings = parse_settings({"store": "memory://", "experiments": [{
            "name": "churn", "endpoint": "ep", "variants": [{"name": "V1"}, {"name": "V2"}],
            "policy": {"type": "thompson"}}]})
        service = IngestService(settings, IdleJoiner(), {}, log,
                                archiver=Archiver(str(tmp_path), clock=FakeClock()))
        async with service.running():
            await wait_for_async(lambda: log.reads)  # the reader found nothing and is waiting
            assert log.reads == [0]
            # More than one read's worth, joined right before the stop.
            for i in range(READ_BATCH + 5):
                log.append(joined(i))

    asyncio.run(scenario())
    archived = [eid for path in json_files(tmp_path) for eid in event_ids(path.read_bytes())]
    assert archived == [f"e{i}" for i in range(READ_BATCH + 5)]
    assert log.archived == f"{READ_BATCH + 5}-0"


def test_archive_files_roll_by_age_not_per_read(tmp_path: Path) -> None:
    """25 small reads one (fake) second apart with ``max_seconds: 10``: a file per 10 s,
    written when it is due even if no further read comes, not one file per read."""
    log = JoinedLog()
    clock = FakeClock()
    archiver = Archiver(str(tmp_path), max_seconds=10, clock=clock)

    def taken(count: int) -> Callable[[], bool]:
        """Whether the archiver has taken ``count`` events (written or waiting)."""
        return lambda: archiver.stats.events + archiver.stats.pending_events == count

    async def scenario() -> None:
        settings = parse_settings({"store": "memory://", "experiments": [{
            "name": "churn", "endpoint": "ep", "variants": [{"name": "V1"}, {"name": "V2"}],
            "policy": {"type": "thompson"}}]})
        service = IngestService(settings, IdleJoiner(), {}, log,
                                archiver=archiver, clock=clock, idle_s=0.005)
        async with service.running():
            for i in range(25):
                log.append(joined(i))
                await wait_for_async(taken(i + 1))
                clock.now += 1
            assert archiver.stats.files <= 3, list(archiver.recent_files)
            # No read comes any more: the open file is written once it is due all the same.
            clock.now += 10
            await wait_for_async(lambda: archiver.stats.pending_events == 0)
            await wait_for_async(lambda: log.archived == "25-0")

    asyncio.run(scenario())
    files = json_files(tmp_path)
    assert len(files) == 3, [p.name for p in files]
    archived = [eid for path in files for eid in event_ids(path.read_bytes())]
    assert archived == [f"e{i}" for i in range(25)]
