"""An in-process decision log for tests and the demo: a list, ids ``"1-0"``, ``"2-0"``…"""

from __future__ import annotations

import json
from typing import Any

from router.store.base import StoreStatus, encode_event, event_id_of

DEFAULT_MAXLEN = 1_000_000


class MemoryStore:
    """Keeps the last ``maxlen`` events in memory, in append order; nothing survives
    the process.

    Like the Redis store it records an event id once (a retried append is a no-op,
    for as long as the event is kept), stores the JSON round trip, so an event that
    cannot be serialised fails here as it would there, and trims the oldest events
    once there are more than ``maxlen`` (by at least a tenth at a time, like
    ``XADD MAXLEN ~``); ids keep counting, so a reader that fell behind the trim
    resumes at the oldest kept event. Events are kept as their JSON lines, not as
    dicts: strings are not tracked by the cyclic GC, whose full collections would
    otherwise walk every event the process has logged.
    """

    def __init__(self, maxlen: int = DEFAULT_MAXLEN) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        self.maxlen = maxlen
        self._ids: list[str] = []
        self._lines: list[str] = []
        self._trimmed = 0  # events dropped from the front: the first kept is number +1
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
        self._ids.append(event_id)
        self._lines.append(line)
        if len(self._lines) > self.maxlen + max(self.maxlen // 10, 1):
            self._trim()

    def _trim(self) -> None:
        excess = len(self._lines) - self.maxlen
        self._seen.difference_update(self._ids[:excess])
        del self._ids[:excess]
        del self._lines[:excess]
        self._trimmed += excess

    def status(self) -> StoreStatus:
        """Always reachable, never spooling."""
        return StoreStatus(reachable=True, spooling=False, spooled=0, detail="memory")

    async def read_decisions(
        self, count: int, after: str = "0"
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` events after the id ``after`` (``"N-0"`` is the N-th event)."""
        start = max(_sequence(after), self._trimmed)
        index = start - self._trimmed
        chosen = self._lines[index:index + max(count, 0)]
        return [(f"{start + i + 1}-0", json.loads(line)) for i, line in enumerate(chosen)]


def _sequence(stream_id: str) -> int:
    """The N of ``"N-0"`` (or ``"N"``); ``ValueError`` naming a malformed id."""
    head = stream_id.split("-", 1)[0]
    if not head.isdigit():
        raise ValueError(f"not a stream id: {stream_id!r}")
    return int(head)
