"""The Redis decision store against a real redis-server: group commit, trimming, outages.

Every test drives the store with ``asyncio.run`` and reads the stream back with a
plain synchronous client, so what is asserted is what Redis really holds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from common.storage.keys import DECISIONS_STREAM
from router.errors import ServiceUnavailable
from router.store import RedisStore
from tests._redis_server import RedisServer
from tests._servers import free_port
from tests._wait import wait_for_async


def _event(event_id: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "experiment": "checkout", "variant": "B",
            "p": 0.25, "context": {"country": "DE", "x": 1.5}, **extra}


def _stream_ids(url: str) -> list[str]:
    """The event ids on the stream, in stream order."""
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return [json.loads(fields["event"])["event_id"]
                for _, fields in client.xrange(DECISIONS_STREAM)]


@pytest.fixture(params=["own connection", "redis-py"])
def store_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """The store writes over its own connection, or through redis-py for URLs that
    connection does not speak (here: one with a query option)."""
    return redis_url if request.param == "own connection" else \
        f"{redis_url}?health_check_interval=0"


def test_events_land_on_the_stream_in_order_with_all_fields(store_url: str,
                                                            tmp_path: Path) -> None:
    async def scenario() -> None:
        store = RedisStore(store_url, spool_path=tmp_path / "spool.jsonl")
        await store.start()
        events = [_event(f"e{i}", n=i) for i in range(20)]
        for event in events:
            await store.append(event)
        read = await store.read_decisions(100)
        assert [event for _, event in read] == events
        assert [event for _, event in await store.read_decisions(3, after=read[9][0])] \
            == events[10:13]
        status = store.status()
        assert (status.reachable, status.spooling, status.spooled) == (True, False, 0)
        await store.close()

    asyncio.run(scenario())
    with redis.Redis.from_url(store_url, decode_responses=True) as client:
        _, fields = client.xrange(DECISIONS_STREAM, count=1)[0]
    assert fields == {"event": json.dumps(_event("e0", n=0), separators=(",", ":"))}


@pytest.mark.parametrize("dedupe_live", [True, False])
def test_concurrent_appends_share_round_trips(store_url: str, tmp_path: Path,
                                              dedupe_live: bool) -> None:
    async def scenario() -> int:
        store = RedisStore(store_url, spool_path=tmp_path / "spool.jsonl",
                           dedupe_live=dedupe_live)
        await store.start()
        await asyncio.gather(*(store.append(_event(f"e{i}")) for i in range(500)))
        await store.close()
        return store.flushes

    flushes = asyncio.run(scenario())
    assert flushes <= 5
    assert sorted(_stream_ids(store_url)) == sorted(f"e{i}" for i in range(500))


def test_a_retried_event_id_is_recorded_once(store_url: str, tmp_path: Path) -> None:
    async def scenario() -> int:
        store = RedisStore(store_url, spool_path=tmp_path / "spool.jsonl")
        await store.start()
        await store.append(_event("once"))
        await asyncio.gather(*(store.append(_event("once")) for _ in range(3)))
        await store.close()
        return store.duplicates

    assert asyncio.run(scenario()) == 3
    assert _stream_ids(store_url) == ["once"]


def test_the_stream_is_trimmed_to_about_maxlen(store_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = RedisStore(store_url, spool_path=tmp_path / "spool.jsonl", stream_maxlen=100)
        await store.start()
        for wave in range(10):
            await asyncio.gather(*(store.append(_event(f"w{wave}-{i}")) for i in range(200)))
        await store.close()

    asyncio.run(scenario())
    ids = _stream_ids(store_url)
    # MAXLEN ~ trims whole stream nodes (100 entries each): between 100 and ~200 remain.
    assert 100 <= len(ids) <= 300
    assert ids[-1] == "w9-199"


def test_an_outage_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """2000 events in waves; Redis is SIGKILLed mid-run and restarted; all arrive once."""
    waves, per_wave, kill_after, restart_after = 40, 50, 10, 20

    async def scenario(server: RedisServer) -> tuple[list[list[str]], list[bool], RedisStore]:
        store = RedisStore(server.url, spool_path=tmp_path / "spool.jsonl")
        await store.start()
        acked: list[list[str]] = []
        spooling: list[bool] = []
        done_waves = asyncio.Queue[int]()

        async def produce() -> None:
            for wave in range(waves):
                ids = [f"w{wave}-{i}" for i in range(per_wave)]
                await asyncio.gather(*(store.append(_event(event_id)) for event_id in ids))
                acked.append(ids)
                spooling.append(store.status().spooling)
                done_waves.put_nowait(wave)
                await asyncio.sleep(0.03)  # traffic over time, so the kill lands mid-run

        async def control() -> None:
            # Stop and start from a thread, so the kill can land mid-batch.
            while await done_waves.get() < kill_after:
                pass
            await asyncio.to_thread(server.stop, kill=True)
            while await done_waves.get() < restart_after:
                pass
            await asyncio.to_thread(server.start)

        await asyncio.gather(produce(), control())
        await wait_for_async(lambda: not store.status().spooling)
        await store.close()
        return acked, spooling, store

    with RedisServer(appendonly=True) as server:
        acked, spooling, store = asyncio.run(scenario(server))
        on_stream = _stream_ids(server.url)

    assert any(spooling) and not spooling[0]
    assert store.status().spooled == 0 and store.spool_writes > 0
    counts = Counter(on_stream)
    assert len(on_stream) == waves * per_wave
    assert set(counts) == {event_id for ids in acked for event_id in ids}
    assert max(counts.values()) == 1
    wave_of = [int(event_id[1:].split("-")[0]) for event_id in on_stream]
    assert wave_of == sorted(wave_of), "a later wave overtook an earlier one"


class ReplyDroppingProxy:
    """A TCP proxy to Redis that, while ``drop_replies``, lets requests through but
    swallows the replies and cuts the connection: a batch Redis executed, whose
    acknowledgement the store never saw (as in a timeout)."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.drop_replies = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)

        async def forward(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                          replies: bool) -> None:
            while data := await source.read(65536):
                if replies and self.drop_replies:
                    break
                sink.write(data)
                await sink.drain()
            writer.close()
            up_writer.close()

        await asyncio.gather(forward(reader, up_writer, replies=False),
                             forward(up_reader, writer, replies=True),
                             return_exceptions=True)


def test_a_batch_whose_reply_was_lost_is_not_doubled(redis_url: str, redis_server: RedisServer,
                                                    tmp_path: Path) -> None:
    """Redis wrote the batch but the store saw the connection drop: it spools the batch,
    and the replay's dedupe finds every event already on the stream."""

    async def scenario() -> RedisStore:
        proxy = ReplyDroppingProxy(redis_server.port)
        await proxy.start()
        store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0",
                           spool_path=tmp_path / "spool.jsonl")
        await store.start()
        await store.append(_event("e0"))
        proxy.drop_replies = True
        await asyncio.gather(*(store.append(_event(f"e{i}")) for i in range(1, 6)))
        assert store.status().spooling and store.status().spooled == 5
        # e1 went out alone (nothing was in flight) and was written all the same; the
        # others, queued behind it, went to the spool once its connection dropped.
        assert _stream_ids(redis_url) == ["e0", "e1"]
        proxy.drop_replies = False
        await wait_for_async(lambda: not store.status().spooling)
        await store.append(_event("e6"))
        await store.close()
        await proxy.close()
        return store

    store = asyncio.run(scenario())
    assert (store.replayed, store.duplicates) == (5, 1)
    assert _stream_ids(redis_url) == [f"e{i}" for i in range(7)]


def test_a_flushed_script_cache_is_loaded_again(redis_url: str, tmp_path: Path) -> None:
    """A restarted Redis has no scripts: the store's EVALSHA meets NOSCRIPT and it
    sends the script itself, without spooling."""

    async def scenario() -> RedisStore:
        store = RedisStore(redis_url, spool_path=tmp_path / "spool.jsonl")
        await store.start()
        await store.append(_event("before"))
        with redis.Redis.from_url(redis_url) as client:
            client.script_flush()
        await store.append(_event("after"))
        await store.append(_event("after"))
        await store.close()
        return store

    store = asyncio.run(scenario())
    assert (store.spool_writes, store.duplicates) == (0, 1)
    assert _stream_ids(redis_url) == ["before", "after"]


def test_a_spool_left_by_a_crash_is_replayed_exactly_once(redis_url: str,
                                                         tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"

    def lines(first: int, last: int) -> str:
        return "".join(json.dumps(_event(f"e{i}")) + "\n" for i in range(first, last + 1))

    async def scenario() -> tuple[RedisStore, tuple[bool, int]]:
        live = RedisStore(redis_url, spool_path=tmp_path / "other.jsonl")
        await live.start()
        for i in range(10):
            await live.append(_event(f"e{i}"))
        await live.close()
        # The previous run crashed after replaying e5..e9 onto the stream, before it
        # dropped them from the spool; e13..e14 were appended after, then a torn write.
        (tmp_path / "spool.jsonl.replaying").write_text(lines(5, 12))
        spool.write_text(lines(13, 14) + '{"event_id": "torn", "p"')
        store = RedisStore(redis_url, spool_path=spool)
        await store.start()
        first = store.status()
        await wait_for_async(lambda: not store.status().spooling)
        await store.append(_event("e15"))
        await store.close()
        return store, (first.spooling, first.spooled)

    store, first = asyncio.run(scenario())
    assert first == (True, 10)
    assert _stream_ids(redis_url) == [f"e{i}" for i in range(16)]
    assert (store.replayed, store.duplicates) == (10, 5)
    assert spool.read_text() == "" and not (tmp_path / "spool.jsonl.replaying").exists()


def test_a_full_spool_refuses_the_event_and_records_it_nowhere(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: Redis is "down" from the start
    spool = tmp_path / "spool.jsonl"
    event_size = len(json.dumps(_event("e0"), separators=(",", ":"))) + 1

    async def outage() -> tuple[list[str], str]:
        store = RedisStore(f"redis://127.0.0.1:{port}/0", spool_path=spool,
                           spool_max_bytes=5 * event_size + 3)
        await store.start()
        assert store.status().spooling and not store.status().reachable
        accepted: list[str] = []
        with pytest.raises(ServiceUnavailable) as refused:
            for i in range(10):
                await store.append(_event(f"e{i}"))
                accepted.append(f"e{i}")
        assert store.status().spooled == len(accepted)
        assert not store.status().accepting and "full" in store.status().detail
        await store.close()
        return accepted, refused.value.message

    accepted, message = asyncio.run(outage())
    assert message == "decision log unavailable: spool full"
    assert accepted == [f"e{i}" for i in range(5)]
    assert [json.loads(line)["event_id"] for line in spool.read_text().splitlines()] \
        == accepted

    async def recovery(url: str) -> None:
        store = RedisStore(url, spool_path=spool)
        await store.start()
        await wait_for_async(lambda: not store.status().spooling)
        await store.close()

    with RedisServer(port=port) as server:
        asyncio.run(recovery(server.url))
        assert _stream_ids(server.url) == accepted


def test_appends_do_not_wait_on_a_dead_redis(tmp_path: Path) -> None:
    async def scenario() -> float:
        store = RedisStore(f"redis://127.0.0.1:{free_port()}/0",
                           spool_path=tmp_path / "spool.jsonl")
        await store.start()
        started = time.perf_counter()
        for i in range(50):
            await store.append(_event(f"e{i}"))
        elapsed = time.perf_counter() - started
        assert store.status().spooled == 50
        await store.close()
        return elapsed

    assert asyncio.run(scenario()) < 2.0


def test_two_stores_cannot_share_a_spool(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        first = RedisStore(redis_url, spool_path=tmp_path / "spool.jsonl")
        await first.start()
        second = RedisStore(redis_url, spool_path=tmp_path / "spool.jsonl")
        with pytest.raises(RuntimeError, match="in use"):
            await second.start()
        await first.close()

    asyncio.run(scenario())
