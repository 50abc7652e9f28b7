"""The learners: joined events -> ``policy.update`` -> checkpoint -> published snapshot.

``base`` has the loop both backends share (``LearnerLoop``, ``learn``); ``memory`` the
in-process learner (``memory://``), ``redis`` the learner whose checkpoint, fencing and
publication are one Lua script. ``reward_ingest.service`` builds one per experiment.
"""

from __future__ import annotations

from .base import (
    BATCH,
    Checkpoint,
    LearnerCounters,
    LearnerLoop,
    LearnerSettings,
    learn,
    start_policy,
)
from .memory import MemoryCheckpoints, MemoryLearner
from .redis import RedisLearner

__all__ = [
    "BATCH", "Checkpoint", "LearnerCounters", "LearnerLoop", "LearnerSettings",
    "MemoryCheckpoints", "MemoryLearner", "RedisLearner", "learn", "start_policy",
]
