"""An in-process decision log for tests and the demo: a ``MemoryStream``, ids ``"1-0"``…"""

from __future__ import annotations

import json
from typing import Any

from common.storage.streams import MemoryStream
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
        self._stream: MemoryStream[str] = MemoryStream(maxlen, dedupe=True)
        self.maxlen = maxlen

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release; the events stay readable."""

    async def append(self, event: dict[str, Any]) -> None:
        """Record ``event`` unless its ``event_id`` is already recorded."""
        event_id = event_id_of(event)
        self._stream.append(encode_event(event), event_id)

    def status(self) -> StoreStatus:
        """Always reachable, never spooling."""
        return StoreStatus(reachable=True, spooling=False, spooled=0, detail="memory")

    async def read_decisions(
        self, count: int, after: str = "0"
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` events after the id ``after`` (``"N-0"`` is the N-th event)."""
        return [(stream_id, json.loads(line))
                for stream_id, line in self._stream.read(count, after)]
