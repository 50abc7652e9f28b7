"""The experiment registry router replicas share, and the policy snapshots they serve.

``open_registry(url)`` picks the implementation from the store URL: ``memory://``
(one process) or ``redis://host:port/db`` (shared; the layout is in
``router.registry.redis``). Snapshots are published by the learner
(``common.storage.snapshots``); the registry reads them.
"""

from __future__ import annotations

from common.storage.backends import backend
from common.storage.snapshots import Snapshot

from .base import ChangeFeed, Registry, RegistryView, config_json, parse_config
from .memory import MemoryRegistry
from .redis import RedisRegistry

__all__ = [
    "ChangeFeed", "MemoryRegistry", "RedisRegistry", "Registry", "RegistryView", "Snapshot",
    "config_json", "open_registry", "parse_config",
]


def open_registry(url: str) -> Registry:
    """The registry ``url`` names (not started yet); ``ValueError`` for any other URL."""
    return MemoryRegistry() if backend(url, "registry") == "memory" else RedisRegistry(url)
