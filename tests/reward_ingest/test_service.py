"""IngestService: what was joined before a stop is archived before the final flush."""

from __future__ import annotations

import asyncio
import json
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


def joined(i: int) -> JoinedEvent:
    decision = {k: v for k, v in event(i).items()
                if k not in ("reward", "default_reward", "rewards", "joined_at")}
    return JoinedEvent(json.dumps(decision), reward=1.0, default_reward=False, rewards=1,
                       joined_at=1.0)


def test_events_joined_just_before_stop_are_archived(tmp_path: Path) -> None:
    log = JoinedLog()
    offset = {"archived": "0"}

    async def load() -> str:
        return offset["archived"]

    async def save(value: str) -> None:
        offset["archived"] = value

    reads: list[int] = []  # entries found by each of the service's reads

    async def read_joined(after: str, count: int) -> list[tuple[str, JoinedEvent | None]]:
        entries: list[tuple[str, JoinedEvent | None]] = list(await log.read_joined(count, after))
        reads.append(len(entries))
        return entries

    async def scenario() -> None:
        settings = parse_settings({"store": "memory://", "experiments": [{
            "name": "churn", "endpoint": "ep", "variants": [{"name": "V1"}, {"name": "V2"}],
            "policy": {"type": "thompson"}}]})
        service = IngestService(settings, IdleJoiner(),
                                {}, read_joined, (load, save),
                                archiver=Archiver(str(tmp_path), clock=FakeClock()))
        async with service.running():
            await wait_for_async(lambda: reads)  # the reader found nothing and is waiting
            assert reads == [0]
            # More than one read's worth, joined right before the stop.
            for i in range(READ_BATCH + 5):
                log.append(joined(i))

    asyncio.run(scenario())
    archived = [eid for path in json_files(tmp_path) for eid in event_ids(path.read_bytes())]
    assert archived == [f"e{i}" for i in range(READ_BATCH + 5)]
    assert offset["archived"] == f"{READ_BATCH + 5}-0"
