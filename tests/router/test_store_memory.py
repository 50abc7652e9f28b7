"""The in-memory decision store, and open_store's choice of store by URL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from router.store import MemoryStore, RedisStore, StoreStatus, open_store


def _event(i: int) -> dict[str, object]:
    return {"event_id": f"e{i}", "experiment": "x", "variant": "A", "p": 0.5, "n": i}


def test_events_come_back_in_order_with_every_field() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        await store.start()
        for i in range(5):
            await store.append(_event(i))
        assert await store.read_decisions(10) == [(f"{i + 1}-0", _event(i)) for i in range(5)]
        assert await store.read_decisions(2, after="2-0") == [("3-0", _event(2)),
                                                               ("4-0", _event(3))]
        assert await store.read_decisions(10, after="5-0") == []
        assert store.status() == StoreStatus(reachable=True, spooling=False, spooled=0,
                                             detail="memory")
        await store.close()

    asyncio.run(scenario())


def test_a_retried_event_id_is_recorded_once() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        await asyncio.gather(*(store.append(_event(i % 3)) for i in range(9)))
        assert [event["event_id"] for _, event in await store.read_decisions(10)] == [
            "e0", "e1", "e2"]

    asyncio.run(scenario())


def test_events_are_stored_as_their_json_round_trip() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        event = {"event_id": "t", "arms": ("A", "B")}
        await store.append(event)
        event["arms"] = ("C",)  # the caller's later change does not reach the log
        assert (await store.read_decisions(1))[0][1] == {"event_id": "t", "arms": ["A", "B"]}
        with pytest.raises(TypeError):
            await store.append({"event_id": "u", "bad": object()})
        with pytest.raises(ValueError, match="event_id"):
            await store.append({"experiment": "x"})
        assert len(await store.read_decisions(10)) == 1

    asyncio.run(scenario())


def test_open_store_picks_the_store_by_url(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    assert isinstance(open_store("memory://", spool_path=spool), MemoryStore)
    assert isinstance(open_store("redis://127.0.0.1:1/2", spool_path=spool), RedisStore)
    with pytest.raises(ValueError, match=r"'postgres://db/x'"):
        open_store("postgres://db/x", spool_path=spool)


def test_the_oldest_events_are_trimmed_and_readers_skip_ahead() -> None:
    async def scenario() -> None:
        store = MemoryStore(maxlen=10)
        for i in range(10):
            await store.append(_event(i))
        assert len(await store.read_decisions(100)) == 10  # at maxlen: nothing trimmed
        await store.append(_event(10))
        await store.append(_event(0))  # still kept: a retry is still a no-op
        assert len(await store.read_decisions(100)) == 11  # a tenth over before trimming
        await store.append(_event(11))  # 12 > 10 + 1: back to the newest 10
        kept = await store.read_decisions(100)
        assert kept == [(f"{i + 1}-0", _event(i)) for i in range(2, 12)]
        # A reader at "1-0" (event 1 is gone) resumes at the oldest kept event.
        assert (await store.read_decisions(2, after="1-0"))[0] == ("3-0", _event(2))
        assert await store.read_decisions(1, after="11-0") == [("12-0", _event(11))]
        await store.append(_event(0))  # trimmed, so no longer remembered: logged again
        assert (await store.read_decisions(1, after="12-0")) == [("13-0", _event(0))]

    asyncio.run(scenario())


def test_maxlen_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxlen"):
        MemoryStore(maxlen=0)
