"""The rewards log: where the webhook records each reward once, for the joiner to read.

``open_reward_store(url, ...)`` picks the implementation from the URL: ``memory://``
(one process) or ``redis://host:port/db`` (the ``bandit:rewards`` stream, deduped,
written with group commit). The value type and the protocol are in ``base``.
"""

from __future__ import annotations

from common.storage.backends import backend

from .base import (
    DEFAULT_SEEN_TTL_S,
    Reward,
    RewardStore,
    decode_reward,
    default_reward_id,
    encode_reward,
    seen_key,
    stored_object,
)
from .memory import MemoryRewardStore
from .redis import DEFAULT_STREAM_MAXLEN, RedisRewardStore

__all__ = [
    "DEFAULT_SEEN_TTL_S", "DEFAULT_STREAM_MAXLEN", "MemoryRewardStore", "RedisRewardStore",
    "Reward", "RewardStore", "decode_reward", "default_reward_id", "encode_reward",
    "open_reward_store", "seen_key", "stored_object",
]


def open_reward_store(url: str, *, seen_ttl_s: int = DEFAULT_SEEN_TTL_S,
                      stream_maxlen: int = DEFAULT_STREAM_MAXLEN) -> RewardStore:
    """The store ``url`` names (not started yet): ``memory://`` or ``redis://host:port/db``."""
    if backend(url, "reward store") == "memory":
        return MemoryRewardStore()
    return RedisRewardStore(url, seen_ttl_s=seen_ttl_s, stream_maxlen=stream_maxlen)
