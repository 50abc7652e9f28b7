"""Publishing a policy snapshot: how the learner hands routers a new policy.

A published snapshot is the policy's bytes under a publication counter per
experiment (``version``: 1, 2, …), plus a notice to whoever watches. The learner
publishes in the same atomic step as its checkpoint; routers load the newest one
(``router.registry``). There is one way to publish per backend:

- Redis: ``PUBLISH_SNAPSHOT_LUA`` defines the Lua function ``publish_snapshot(key,
  blob, experiment)`` for the learner's checkpoint script: ``HINCRBY`` the version of
  ``bandit:policy:{E}``, store the bytes, ``PUBLISH`` the name on
  ``bandit:policy:changed``; it returns the new version.
- In one process (``memory://``): ``MemorySnapshots.publish``, shared by the memory
  learner (writer) and the memory registry (reader, notified on every publication).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from common.storage.keys import POLICY_CHANNEL

PUBLISH_SNAPSHOT_LUA = f"""
local function publish_snapshot(key, blob, experiment)
  local version = redis.call('HINCRBY', key, 'version', 1)
  redis.call('HSET', key, 'snapshot', blob)
  redis.call('PUBLISH', '{POLICY_CHANNEL}', experiment)
  return version
end
"""
"""Lua defining ``publish_snapshot(key, blob, experiment) -> version``; prepend it to a
script that publishes (``key``: ``keys.policy_key(experiment)``, passed in ``KEYS``)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A published policy snapshot: the publication counter and the policy's bytes."""

    version: int
    blob: bytes


class MemorySnapshots:
    """Published snapshots in this process, safe to use from any thread.

    ``listen(callback)`` registers a function called (in the publishing thread,
    after the snapshot is stored) with the experiment's name on every publication.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}
        self._listeners: list[Callable[[str], None]] = []

    def publish(self, experiment: str, blob: bytes) -> int:
        """Store ``blob`` as ``experiment``'s newest snapshot, notify; its version."""
        with self._lock:
            old = self._snapshots.get(experiment)
            version = (old.version if old is not None else 0) + 1
            self._snapshots[experiment] = Snapshot(version, bytes(blob))
            listeners = list(self._listeners)
        for listener in listeners:
            listener(experiment)
        return version

    def latest(self, experiment: str) -> Snapshot | None:
        """The newest snapshot of ``experiment``, if any."""
        with self._lock:
            return self._snapshots.get(experiment)

    def versions(self, experiments: Iterable[str]) -> dict[str, int]:
        """Each experiment's newest version (0: none published)."""
        with self._lock:
            return {name: self._snapshots[name].version if name in self._snapshots else 0
                    for name in experiments}

    def listen(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(experiment)`` after every publication."""
        with self._lock:
            self._listeners.append(callback)
