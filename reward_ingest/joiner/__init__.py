"""The joiner: pairs each decision with its rewards, exactly once, into the joined stream.

``base`` has the protocol, the join's counters and what a joiner reads and writes;
``memory`` the in-process joiner and joined stream (``memory://``), ``redis`` the
same on Redis (Lua scripts, a lease). ``reward_ingest.service`` builds them.
"""

from __future__ import annotations

from .base import (
    BATCH,
    COUNTERS,
    JOINED_MAXLEN,
    UNKNOWN,
    DecisionReader,
    JoinedReader,
    JoinedSource,
    Joiner,
    RewardReader,
    Rules,
    rule_lookup,
)
from .memory import JoinedLog, MemoryJoiner
from .redis import RedisJoinedLog, RedisJoiner

__all__ = [
    "BATCH", "COUNTERS", "JOINED_MAXLEN", "UNKNOWN", "DecisionReader", "JoinedLog",
    "JoinedReader", "JoinedSource", "Joiner", "MemoryJoiner", "RedisJoinedLog", "RedisJoiner",
    "RewardReader", "Rules", "rule_lookup",
]
