"""The experiment registry: the same contract in memory and on a real redis-server."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis

from common.config import ExperimentConfig, parse_settings
from common.storage.keys import (
    DELETED_KEY,
    EXPERIMENTS_CHANNEL,
    EXPERIMENTS_KEY,
    POLICY_CHANNEL,
    REVISION_KEY,
    policy_key,
)
from router.errors import RegistryConflictError, RegistryUnavailableError
from router.registry import MemoryRegistry, Registry, RegistryView, config_json, open_registry
from router.state import build_state
from router.store import MemoryStore
from router.sync import WRITE_ATTEMPTS, RegistrySync
from tests._servers import free_port
from tests._snapshots import publish_snapshot
from tests.router._stack import experiment

T = TypeVar("T")
Publish = Callable[[str, bytes], int]


def run(make: Callable[[Registry], Awaitable[T]], registry: Registry) -> T:
    """One coroutine against a started registry, on a fresh loop."""
    async def main() -> T:
        await registry.start()
        try:
            return await make(registry)
        finally:
            await registry.close()
    return asyncio.run(main())


def config(name: str = "exp", **overrides: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate(experiment(name, **overrides))


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[Callable[[], Registry], Publish]]:
    """Fresh registry objects on one backing store (the same memory object, or one Redis),
    and how the learner publishes a snapshot there."""
    if request.param == "memory":
        shared = MemoryRegistry()
        yield (lambda: shared), shared.snapshots.publish
    else:
        url = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as client:
            yield (lambda: open_registry(url)), functools.partial(publish_snapshot, client)


@pytest.fixture
def registry_factory(backend: tuple[Callable[[], Registry], Publish]) -> Callable[[], Registry]:
    return backend[0]


@pytest.fixture
def publish(backend: tuple[Callable[[], Registry], Publish]) -> Publish:
    return backend[1]


def test_stored_config_validates_back_unchanged() -> None:
    original = config(context={"from": "json", "pointers": ["/a/0", {"pointer": "/b",
                                                                       "name": "bee"}]},
                      policy={"type": "thompson", "prior": {"alpha": 2, "beta": 0.5}},
                      guardrails={"error_rate": 0.3})
    again = ExperimentConfig.model_validate(json.loads(config_json(original)))
    assert again == original
    assert json.loads(config_json(original))["context"]["from"] == "json"  # by alias


def test_put_read_delete_bump_the_revision(registry_factory: Callable[[], Registry]) -> None:
    async def scenario(registry: Registry) -> None:
        assert (await registry.read()).revision == 0
        assert await registry.put(config("a")) == 1
        assert await registry.put(config("b", endpoint="other")) == 2
        view = await registry.read()
        assert view.revision == 2 and view.experiments == {"a": config("a"),
                                                           "b": config("b", endpoint="other")}
        assert await registry.delete("a") == 3
        assert await registry.delete("a") is None  # nothing to delete: no bump
        assert (await registry.read()).revision == 3
        assert list((await registry.read()).experiments) == ["b"]

    run(scenario, registry_factory())


def test_a_write_against_a_stale_revision_is_refused(
        registry_factory: Callable[[], Registry]) -> None:
    async def scenario(registry: Registry) -> None:
        revision = await registry.put(config("a"))
        await registry.put(config("a", seed=3), expect_revision=revision)
        with pytest.raises(RegistryConflictError):
            await registry.put(config("a", seed=4), expect_revision=revision)
        with pytest.raises(RegistryConflictError):
            await registry.delete("a", expect_revision=revision)
        assert (await registry.read()).experiments["a"].seed == 3

    run(scenario, registry_factory())


def test_seed_adds_only_what_is_missing_and_never_what_was_deleted(
        registry_factory: Callable[[], Registry]) -> None:
    async def scenario(registry: Registry) -> None:
        await registry.put(config("a", seed=9))
        await registry.put(config("gone", endpoint="gone"))
        await registry.delete("gone")
        before = (await registry.read()).revision
        added = await registry.seed([config("a"), config("b", endpoint="b"),
                                     config("gone", endpoint="gone")])
        view = await registry.read()
        assert added == 1 and view.revision == before + 1
        assert view.experiments["a"].seed == 9  # the registry wins over the file
        assert sorted(view.experiments) == ["a", "b"]
        assert await registry.seed([config("a"), config("b", endpoint="b")]) == 0
        assert (await registry.read()).revision == before + 1
        await registry.put(config("gone", endpoint="gone"))  # an explicit PUT revives it
        assert "gone" in (await registry.read()).experiments

    run(scenario, registry_factory())


def test_change_feed_wakes_a_watcher_promptly(registry_factory: Callable[[], Registry],
                                              publish: Publish) -> None:
    watcher, writer = registry_factory(), registry_factory()

    async def publish_a() -> None:
        publish("a", b"blob")

    async def scenario(registry: Registry) -> list[float]:
        await writer.start()
        feed = registry.changes()
        for _ in range(3):
            await feed.wait(0.05)  # subscribes (Redis) and drains the confirmations
        delays = []
        changes: list[Callable[[], Awaitable[object]]] = [
            lambda: writer.put(config("a")), publish_a]
        for change in changes:
            started = time.monotonic()
            later = asyncio.create_task(_after(0.05, change))
            await feed.wait(5.0)
            delays.append(time.monotonic() - started)
            await later
        await feed.close()
        await writer.close()
        return delays

    # Woken by the notice (~0.05 s after the wait began), not by the 5 s timeout.
    assert all(0.04 < delay < 1.0 for delay in run(scenario, watcher))


async def _after(delay_s: float, change: Callable[[], Awaitable[object]]) -> None:
    await asyncio.sleep(delay_s)
    await change()


def test_snapshots_are_versioned_per_experiment(registry_factory: Callable[[], Registry],
                                                publish: Publish) -> None:
    async def scenario(registry: Registry) -> None:
        assert await registry.poll(["a", "b"]) == (0, {"a": 0, "b": 0})
        assert await registry.snapshot("a") is None
        assert publish("a", b"one") == 1
        assert publish("a", b"\x00two") == 2
        snapshot = await registry.snapshot("a")
        assert snapshot is not None and (snapshot.version, snapshot.blob) == (2, b"\x00two")
        assert await registry.poll(["a", "b"]) == (0, {"a": 2, "b": 0})

    run(scenario, registry_factory())


def test_redis_layout_and_notices(redis_url: str) -> None:
    # The keys and channels other processes (the learner, operators) rely on.
    with redis.Redis.from_url(redis_url) as client, client.pubsub() as pubsub:
        pubsub.subscribe(EXPERIMENTS_CHANNEL, POLICY_CHANNEL)
        for _ in range(2):
            assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        run(lambda r: r.put(config("a")), open_registry(redis_url))
        assert client.hget(EXPERIMENTS_KEY, "a") == config_json(config("a")).encode()
        assert client.get(REVISION_KEY) == b"1"
        message = pubsub.get_message(timeout=1)
        assert message is not None
        assert (message["channel"], message["data"]) == (EXPERIMENTS_CHANNEL.encode(), b"1")
        assert publish_snapshot(client, "a", b"snap") == 1
        assert client.hgetall(policy_key("a")) == {b"version": b"1", b"snapshot": b"snap"}
        message = pubsub.get_message(timeout=1)
        assert message is not None
        assert (message["channel"], message["data"]) == (POLICY_CHANNEL.encode(), b"a")
        run(lambda r: r.delete("a"), open_registry(redis_url))
        assert client.smembers(DELETED_KEY) == {b"a"}
        assert client.get(REVISION_KEY) == b"2"


def test_an_unreachable_redis_fails_fast_with_registry_unavailable() -> None:
    registry = open_registry(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match=r"127\.0\.0\.1"):
        run(lambda r: r.read(), registry)
    assert time.monotonic() - started < 2.0


def test_open_registry_refuses_other_urls() -> None:
    with pytest.raises(ValueError, match="memory:// or redis://"):
        open_registry("postgres://db")


def test_sync_edit_retries_a_write_another_writer_beat_and_gives_up_after_five() -> None:
    variants = [{"name": "A", "url": "http://127.0.0.1:9/a"}]
    wanted = config("new", endpoint="new-ep", backend="http", variants=variants)
    settings = parse_settings({"experiments": [experiment(backend="http", variants=variants)]})

    async def scenario(beaten: int) -> tuple[int, int | None, set[str]]:
        registry = MemoryRegistry()
        sync = RegistrySync(build_state(settings, MemoryStore()), registry)
        await sync.start()
        calls = 0

        async def change(view: RegistryView) -> ExperimentConfig | None:
            nonlocal calls
            calls += 1
            if calls <= beaten:  # another replica writes between this read and the write
                await registry.put(config(f"other{calls}", endpoint=f"o{calls}",
                                          backend="http", variants=variants))
            return wanted

        try:
            revision: int | None = await sync.edit("new", change)
        except RegistryConflictError:
            revision = None
        served = set(sync.state.routes)
        await sync.close()
        return calls, revision, served

    calls, revision, served = asyncio.run(scenario(beaten=2))
    assert calls == 3 and revision is not None and "new" in served  # applied before return
    calls, revision, served = asyncio.run(scenario(beaten=WRITE_ATTEMPTS))
    assert calls == WRITE_ATTEMPTS and revision is None and "new" not in served
