"""An in-process decision log for tests and the demo: a list, ids ``"1-0"``, ``"2-0"``…"""

from __future__ import annotations

import json
from typing import Any

from router.store.base import StoreStatus, encode_event, event_id_of


class MemoryStore:
    """Keeps every event in memory, in append order; nothing survives the process.

    Like the Redis store it records an event id once (a retried append is a no-op)
    and stores the JSON round trip, so an event that cannot be serialised fails
    here as it would there.
    """

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release; the events stay readable."""

    async def append(self, event: dict[str, Any]) -> None:
        """Record ``event`` unless its ``event_id`` is already recorded."""
        event_id = event_id_of(event)
        line = encode_event(event)
        if event_id in self._seen:
            return
        self._seen.add(event_id)
        self._events.append(json.loads(line))

    def status(self) -> StoreStatus:
        """Always reachable, never spooling."""
        return StoreStatus(reachable=True, spooling=False, spooled=0, detail="memory")

    async def read_decisions(
        self, count: int, after: str = "0"
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` events after the id ``after`` (``"N-0"`` is the N-th event)."""
        start = _sequence(after)
        chosen = self._events[start:start + max(count, 0)]
        return [(f"{start + i + 1}-0", event) for i, event in enumerate(chosen)]


def _sequence(stream_id: str) -> int:
    """The N of ``"N-0"`` (or ``"N"``); ``ValueError`` naming a malformed id."""
    head = stream_id.split("-", 1)[0]
    if not head.isdigit():
        raise ValueError(f"not a stream id: {stream_id!r}")
    return int(head)
