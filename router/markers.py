"""Events the dashboard marks on its time axis, shared by every router replica.

The router records guardrail trips (where the invocation's outcome is counted) and
configuration changes made through the admin API; weight pushes are the pusher's
records (``bandit:pushes:E``), read with the timeline. On Redis the markers are a
bounded list per experiment, ``bandit:markers:E`` (``RPUSH`` + ``LTRIM`` in one
``MULTI``, at most ``MARKERS_MAXLEN`` JSON entries, oldest first); on ``memory://`` the
same list in this process. Recording never fails the caller: a lost marker only thins
the chart.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable
from typing import Literal, Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import RedisError

from common import redis_errors
from common.storage.backends import reply
from common.storage.keys import markers_key

logger = logging.getLogger(__name__)

MARKERS_MAXLEN = 200
TIMEOUT_S = 1.0

MarkerKind = Literal["weight_push", "guardrail_trip", "policy_change"]


class Marker(BaseModel):
    """One event on the time axis."""

    t: float = Field(description="Unix seconds")
    kind: MarkerKind
    label: str
    variant: str | None = None


class MarkerLog(Protocol):
    """Where markers are appended and read (``MemoryMarkerLog``, ``RedisMarkerLog``)."""

    async def append(self, experiment: str, marker: Marker) -> None: ...
    async def read(self, experiment: str) -> list[Marker]: ...
    async def close(self) -> None: ...


class MemoryMarkerLog:
    """The markers of this process (``memory://``)."""

    def __init__(self, maxlen: int = MARKERS_MAXLEN) -> None:
        self._maxlen = maxlen
        self._lists: dict[str, deque[Marker]] = {}

    async def append(self, experiment: str, marker: Marker) -> None:
        self._lists.setdefault(experiment, deque(maxlen=self._maxlen)).append(marker)

    async def read(self, experiment: str) -> list[Marker]:
        return list(self._lists.get(experiment, ()))

    async def close(self) -> None:
        return None


class RedisMarkerLog:
    """``bandit:markers:E`` with its own small client (1 s timeouts, no retries)."""

    def __init__(self, url: str, maxlen: int = MARKERS_MAXLEN) -> None:
        self._maxlen = maxlen
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S, retry_on_timeout=False)

    async def append(self, experiment: str, marker: Marker) -> None:
        key = markers_key(experiment)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, marker.model_dump_json())
            pipe.ltrim(key, -self._maxlen, -1)
            await pipe.execute()

    async def read(self, experiment: str) -> list[Marker]:
        entries: list[str] = await reply(self._redis.lrange(markers_key(experiment), 0, -1))
        markers = []
        for text in entries:
            try:
                markers.append(Marker.model_validate_json(text))
            except ValidationError:
                continue  # not ours: skipped, never fatal for a chart
        return markers

    async def close(self) -> None:
        await self._redis.aclose()


def push_markers(records: Iterable[str]) -> list[Marker]:
    """The weight pusher's records (``bandit:pushes:E``) that pushed, as markers (skips
    and errors pushed nothing)."""
    found = []
    for text in records:
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("skipped") is not None:
            continue
        weights = record.get("after") or {}
        split = ", ".join(f"{v} {w:.0%}" for v, w in weights.items()
                          if isinstance(w, int | float))
        try:
            found.append(Marker(t=record["at"], kind="weight_push",
                                label=f"weights pushed ({split}): {record.get('reason', '')}"))
        except (KeyError, ValidationError):
            continue
    return found


def open_marker_log(url: str) -> MarkerLog:
    """Redis for ``redis://`` and ``rediss://`` stores, else this process's memory."""
    if urlsplit(url).scheme in ("redis", "rediss"):
        return RedisMarkerLog(url)
    return MemoryMarkerLog()


async def record(log: MarkerLog | None, experiment: str, marker: Marker) -> None:
    """Append ``marker``; a store failure is logged and counted, never raised."""
    if log is None:
        return
    try:
        await log.append(experiment, marker)
    except (RedisError, OSError) as exc:
        redis_errors.count("stats")
        logger.warning("could not record a %s marker for %s: %s", marker.kind, experiment, exc)
