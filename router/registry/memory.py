"""The registry in one process (``memory://``): for the embedded default, the demo and tests.

Several apps may share one ``MemoryRegistry`` (replicas in one test process), each
serving on its own event loop in its own thread, so the data sits behind a
``threading.Lock`` and change notices reach each feed's loop through
``call_soon_threadsafe``. Configs are kept as the same JSON the Redis registry
stores, so both validate exactly the same way. Snapshots are read from a
``MemorySnapshots`` (``snapshots``), where the in-process learner publishes them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from contextlib import suppress

from common.config import ExperimentConfig
from common.storage.snapshots import MemorySnapshots, Snapshot

from ..errors import RegistryConflictError
from .base import RegistryView, config_json, parse_config


class _Feed:
    """One watcher's notices: an ``asyncio.Event`` on the watcher's own loop."""

    def __init__(self, owner: MemoryRegistry) -> None:
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def notify(self) -> None:
        # Called from whichever thread made the change.
        with suppress(RuntimeError):  # the loop is closed: the watcher is gone
            self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self, timeout_s: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel that
        # arrives as the event is set, and the watcher would never stop.
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
        self._event.clear()

    async def close(self) -> None:
        self._owner._forget(self)


class MemoryRegistry:
    """Experiments in dicts, snapshots in ``snapshots``; nothing survives the process."""

    def __init__(self, snapshots: MemorySnapshots | None = None) -> None:
        self._lock = threading.Lock()
        self._configs: dict[str, str] = {}
        self._deleted: set[str] = set()
        self._revision = 0
        self.snapshots = snapshots if snapshots is not None else MemorySnapshots()
        """Where the in-process learner publishes (each publication notifies the feeds)."""
        self.snapshots.listen(lambda _experiment: self._notify())
        self._feeds: set[_Feed] = set()

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release; the data stays for other apps sharing this registry."""

    def describe(self) -> str:
        return "memory"

    async def read(self) -> RegistryView:
        with self._lock:
            stored = dict(self._configs)
            revision = self._revision
        return RegistryView(revision, {name: parse_config(text) for name, text in stored.items()})

    async def poll(self, experiments: Sequence[str]) -> tuple[int, dict[str, int]]:
        with self._lock:
            revision = self._revision
        return revision, self.snapshots.versions(experiments)

    async def seed(self, configs: Sequence[ExperimentConfig]) -> int:
        with self._lock:
            added = 0
            for config in configs:
                if config.name not in self._configs and config.name not in self._deleted:
                    self._configs[config.name] = config_json(config)
                    added += 1
            if added:
                self._revision += 1
        if added:
            self._notify()
        return added

    async def put(self, config: ExperimentConfig, *, expect_revision: int | None = None) -> int:
        text = config_json(config)
        with self._lock:
            self._check(expect_revision)
            self._configs[config.name] = text
            self._deleted.discard(config.name)
            self._revision += 1
            revision = self._revision
        self._notify()
        return revision

    async def delete(self, name: str, *, expect_revision: int | None = None) -> int | None:
        with self._lock:
            self._check(expect_revision)
            if self._configs.pop(name, None) is None:
                return None
            self._deleted.add(name)
            self._revision += 1
            revision = self._revision
        self._notify()
        return revision

    async def snapshot(self, experiment: str) -> Snapshot | None:
        return self.snapshots.latest(experiment)

    def changes(self) -> _Feed:
        feed = _Feed(self)
        with self._lock:
            self._feeds.add(feed)
        return feed

    def _check(self, expect_revision: int | None) -> None:
        if expect_revision is not None and expect_revision != self._revision:
            raise RegistryConflictError(f"registry is at revision {self._revision}, "
                                   f"not {expect_revision}")

    def _notify(self) -> None:
        with self._lock:
            feeds = list(self._feeds)
        for feed in feeds:
            feed.notify()

    def _forget(self, feed: _Feed) -> None:
        with self._lock:
            self._feeds.discard(feed)
