"""What every decision store provides: the protocol, its status, the dedupe script.

A decision event is a JSON-serialisable dict carrying its ``event_id`` (the id the
router returns as ``X-Bandit-Event-Id``); the joiner pairs rewards with it, and the
Redis store dedupes on it so a replayed or retried event is recorded once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

# KEYS[1]: the stream; KEYS[i > 1]: the seen-marker of the event in ARGV[i + 1].
# ARGV[1]: MAXLEN (approximate trimming), ARGV[2]: the markers' TTL in seconds.
DEDUPE_XADD = """
local added = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[i + 1])
    added = added + 1
  end
end
return added
"""
"""One call per batch: record each event whose seen-marker was not set yet."""

EVENT_ID = "event_id"
"""The key of an event's id inside the event dict."""


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """A store's health, as ``/readyz`` reports it."""

    reachable: bool
    """The backing store answered the last time it was asked."""
    spooling: bool
    """New events go to the local spool file, not to the store."""
    spooled: int
    """Events waiting in the spool to be replayed."""
    detail: str
    """One human line: what is happening and why (why appends are refused, when they are)."""
    accepting: bool = True
    """An append now would be recorded, in the store or the spool (False: the spool is
    full or cannot be written, so appends get a 503)."""


class DecisionStore(Protocol):
    """The decision log: append events durably, read them back in order."""

    async def start(self) -> None:
        """Connect (never fails on an unreachable store: that starts spooling)."""
        ...

    async def close(self) -> None:
        """Flush what is queued and release every resource."""
        ...

    async def append(self, event: dict[str, Any]) -> None:
        """Record ``event``; on return it is durable in the store or in the spool.

        Raises ``router.errors.ServiceUnavailable`` when it cannot be made durable.
        """
        ...

    def status(self) -> StoreStatus:
        """The store's health now."""
        ...

    async def read_decisions(
        self, count: int, after: str = "0"
    ) -> list[tuple[str, dict[str, Any]]]:
        """Up to ``count`` events with stream ids after ``after``, oldest first."""
        ...


def event_id_of(event: dict[str, Any]) -> str:
    """``event``'s id; ``ValueError`` if it has none, since dedupe and joins need one."""
    event_id = event.get(EVENT_ID)
    if not isinstance(event_id, str) or not event_id:
        raise ValueError(f"a decision event needs a non-empty string {EVENT_ID!r}")
    return event_id


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps would build one per call


def encode_event(event: dict[str, Any]) -> str:
    """``event`` as the compact JSON line that goes on the stream and into the spool."""
    return _COMPACT.encode(event)
