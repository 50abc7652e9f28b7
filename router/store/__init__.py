"""The decision log: where every routing decision is appended before the client is answered.

``open_store(url, ...)`` picks the implementation from the URL: ``memory://`` (tests,
demo) or ``redis://host:port/db`` (a Redis stream with group commit and a local spool
that keeps the router serving through a Redis outage).
"""

from __future__ import annotations

import os

from common.storage.backends import backend
from router.store.base import DecisionStore, StoreStatus
from router.store.memory import MemoryStore
from router.store.redis import (
    DEFAULT_SEEN_TTL_S,
    DEFAULT_SPOOL_MAX_BYTES,
    DEFAULT_STREAM_MAXLEN,
    RedisStore,
)

__all__ = [
    "DecisionStore",
    "MemoryStore",
    "RedisStore",
    "StoreStatus",
    "open_store",
]


def open_store(url: str, *, spool_path: str | os.PathLike[str],
               spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
               stream_maxlen: int = DEFAULT_STREAM_MAXLEN,
               seen_ttl_s: int = DEFAULT_SEEN_TTL_S) -> DecisionStore:
    """The store ``url`` names (not started yet); ``ValueError`` naming any other URL.

    ``spool_path`` is only used by Redis stores; every router process needs its own.
    ``seen_ttl_s``: how long Redis remembers an event id for dedupe (see ``RedisStore``).
    """
    if backend(url, "decision store") == "memory":
        return MemoryStore(maxlen=stream_maxlen)
    return RedisStore(url, spool_path=spool_path, spool_max_bytes=spool_max_bytes,
                      stream_maxlen=stream_maxlen, seen_ttl_s=seen_ttl_s)
