"""The experiment registry router replicas share, and the policy snapshots they serve.

``open_registry(url)`` picks the implementation from the store URL: ``memory://``
(one process) or ``redis://host:port/db`` (shared; the layout is in
``router.registry.redis_registry``). ``publish_snapshot(client, experiment, blob)``
publishes a policy snapshot with a plain synchronous Redis client.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import (
    DELETED_KEY,
    EXPERIMENTS_CHANNEL,
    EXPERIMENTS_KEY,
    POLICY_CHANNEL,
    POLICY_PREFIX,
    REVISION_KEY,
    ChangeFeed,
    Registry,
    RegistryConflictError,
    RegistryError,
    RegistryUnavailableError,
    RegistryView,
    Snapshot,
    config_json,
    parse_config,
)
from .memory import MemoryRegistry
from .redis_registry import RedisRegistry, publish_snapshot

__all__ = [
    "DELETED_KEY", "EXPERIMENTS_CHANNEL", "EXPERIMENTS_KEY", "POLICY_CHANNEL", "POLICY_PREFIX",
    "REVISION_KEY", "ChangeFeed", "MemoryRegistry", "RedisRegistry", "Registry",
    "RegistryConflictError", "RegistryError", "RegistryUnavailableError", "RegistryView",
    "Snapshot", "config_json", "open_registry", "parse_config", "publish_snapshot",
]


def open_registry(url: str) -> Registry:
    """The registry ``url`` names (not started yet); ``ValueError`` for any other URL."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryRegistry()
    if scheme in ("redis", "rediss"):
        return RedisRegistry(url)
    raise ValueError(f"unsupported registry URL {url!r}: use memory:// or redis://host:port/db")
