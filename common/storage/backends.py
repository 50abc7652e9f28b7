"""Which backend a store URL names, and the Redis clients the stores open.

Every storage package opens its backend from the same ``store`` URL: ``memory://``
(in this process) or ``redis://host:port/db`` (``rediss://`` for TLS).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

Backend = Literal["memory", "redis"]


def backend(url: str, what: str) -> Backend:
    """The backend ``url`` names; ``ValueError`` naming ``what`` (e.g. "registry") and
    the URL for any other scheme."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return "memory"
    if scheme in ("redis", "rediss"):
        return "redis"
    raise ValueError(f"unsupported {what} URL {url!r}: use memory:// or redis://host:port/db")


def describe(url: str) -> str:
    """``redis host:port/db``: where a Redis URL points, for logs and ``/readyz`` (no
    credentials)."""
    parts = urlsplit(url)
    return f"redis {parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def redis_client(url: str, *, connect_timeout_s: float, timeout_s: float | None,
                 decode_responses: bool = False) -> aioredis.Redis:
    """A client that never retries on its own (the caller decides: spool, 503, poll
    again), with these timeouts (``timeout_s=None``: replies may take any time)."""
    client: aioredis.Redis = aioredis.Redis.from_url(
        url, decode_responses=decode_responses, socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0))
    return client


async def reply(call: Any) -> Any:
    """Await a redis-py command (its stubs type commands as maybe-awaitable)."""
    return await call
