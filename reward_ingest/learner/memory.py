"""The learner in one process (``memory://``): checkpoints and snapshots in memory.

``MemoryCheckpoints`` holds what the Redis learner keeps in Redis: checkpoints, the
published snapshots (a ``MemorySnapshots`` the in-process router's registry reads) and
the learner's statistics; ``MemoryLearner`` writes each checkpoint in one synchronous
step, so it is atomic in this process as the Redis script is in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.learner_stats import MemoryLearnerStats
from common.storage.snapshots import MemorySnapshots
from reward_ingest.joiner import JoinedReader
from reward_ingest.lease import MemoryLease, MemoryLeaseTable
from reward_ingest.stats_sink import RewardTally

from .base import Checkpoint, LearnerLoop, LearnerSettings


@dataclass(slots=True)
class MemoryCheckpoints:
    """In-process checkpoints and published snapshots, as the Redis layout keeps them."""

    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    snapshots: MemorySnapshots = field(default_factory=MemorySnapshots)
    """Where snapshots are published (``bandit:policy:{experiment}``); the in-process
    router's registry reads the same object."""
    stats: MemoryLearnerStats = field(default_factory=MemoryLearnerStats)
    """Reward totals and timeline, written with each checkpoint (``bandit:stats:*``)."""


class MemoryLearner(LearnerLoop):
    """The learner in one process, over a joined stream (a ``JoinedLog``)."""

    def __init__(self, settings: LearnerSettings, joined: JoinedReader,
                 store: MemoryCheckpoints, leases: MemoryLeaseTable) -> None:
        super().__init__(settings, MemoryLease(leases, f"learner:{settings.experiment}",
                                               settings.lease_ttl_s), joined)
        self._store = store

    async def _load(self) -> Checkpoint | None:
        return self._store.checkpoints.get(self.settings.experiment)

    async def _save(self, snapshot: bytes, offset: str, *, publish: bool,
                    rewards: RewardTally | None = None, point: str | None = None) -> int | None:
        if not isinstance(self.lease, MemoryLease) or not self.lease.owns():
            return None
        # One synchronous step (no await): atomic in this process.
        name, snapshots = self.settings.experiment, self._store.snapshots
        if publish:
            version = snapshots.publish(name, snapshot)
        else:
            latest = snapshots.latest(name)
            version = latest.version if latest is not None else 0
        self._store.checkpoints[name] = Checkpoint(snapshot, offset, version)
        if rewards is not None:
            self._store.stats.add_totals(name, rewards.deltas())
        if point is not None:
            self._store.stats.append_point(name, point)
        return version
