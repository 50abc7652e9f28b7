"""Every Redis key, stream and channel name the router and the learning loop share.

The router writes decisions and reads experiments, snapshots and statistics; the
reward ingester writes rewards, joined events, checkpoints, snapshots and statistics
and reads decisions. Neither package imports the other, so both take the names from
here: a rename here is a rename on both sides.

| name | type | written by | holds |
| --- | --- | --- | --- |
| ``bandit:decisions`` | stream | router | decision events (field ``event``: JSON) |
| ``bandit:decisions:seen:{event_id}`` | string | router | dedupe marker (``SET NX EX``) |
| ``bandit:rewards`` | stream | webhook | rewards (field ``reward``: JSON) |
| ``bandit:rewards:seen:{hash}`` | string | webhook | dedupe marker of a reward identity |
| ``bandit:joined`` | stream | joiner | joined events (decision + reward) |
| ``bandit:join:*`` | mixed | joiner | the joiner's state (``reward_ingest.joiner.redis``) |
| ``bandit:learner:{E}:lease`` | string | learner | the active learner's lease token |
| ``bandit:learner:{E}:checkpoint`` | hash | learner | snapshot, joined offset, version |
| ``bandit:policy:{E}`` | hash | learner | the published snapshot and its version |
| ``bandit:policy:changed`` | channel | learner | ``E`` after each published snapshot |
| ``bandit:experiments`` | hash | router | experiment name → config JSON |
| ``bandit:experiments:revision`` | string | router | counter bumped by every change |
| ``bandit:experiments:deleted`` | set | router | names deleted through the admin API |
| ``bandit:experiments:changed`` | channel | router | the new revision after every change |
| ``bandit:stats:{E}`` | hash | learner | reward totals (``common.learner_stats``) |
| ``bandit:timeline:{E}`` | list | learner | timeline points |
| ``bandit:pushes:{E}`` | list | pusher | weight push records |
| ``bandit:markers:{E}`` | list | router | guardrail trips and admin config changes (JSON) |
| ``bandit:archive:offset`` | string | archiver | the last joined id written to files |

Templated names have a builder function; prefixes are exported for ``SCAN`` patterns.
"""

from __future__ import annotations

NAMESPACE = "bandit:"
"""Every name below starts with it."""

# The decision log (router -> joiner).
DECISIONS_STREAM = NAMESPACE + "decisions"
"""Decision events, one field ``event``: compact JSON."""
DECISION_SEEN_PREFIX = DECISIONS_STREAM + ":seen:"
"""``DECISION_SEEN_PREFIX + event_id`` marks an event as already on the stream."""

# The rewards log (webhook -> joiner).
REWARDS_STREAM = NAMESPACE + "rewards"
"""Rewards, one field ``reward``: compact JSON."""
REWARD_SEEN_PREFIX = REWARDS_STREAM + ":seen:"
"""``REWARD_SEEN_PREFIX + hash of (event_id, reward_id)`` marks a reward as recorded."""

# The joiner (decisions + rewards -> joined events).
JOINED_STREAM = NAMESPACE + "joined"
"""Joined events: ``event``, ``reward``, ``default``, ``rewards``, ``joined_at``."""
JOIN_PREFIX = NAMESPACE + "join:"
"""The joiner's own keys; the per-event ones are built inside its scripts."""
JOIN_OFFSETS = JOIN_PREFIX + "offsets"
"""Hash: ``decisions``, ``rewards`` -> the last stream id whose effect is applied."""
JOIN_DEADLINES = JOIN_PREFIX + "deadlines"
"""Sorted set: event id -> when its window closes."""
JOIN_LEASE = JOIN_PREFIX + "lease"
"""The active joiner's lease token."""
JOIN_COUNTS_PREFIX = JOIN_PREFIX + "counts:"
"""``JOIN_COUNTS_PREFIX + experiment``: hash of the joiner's counters."""

# The learners (joined events -> checkpoints and published snapshots).
LEARNER_PREFIX = NAMESPACE + "learner:"
"""``bandit:learner:{experiment}:...``: one learner's lease and checkpoint."""
POLICY_PREFIX = NAMESPACE + "policy:"
"""``POLICY_PREFIX + experiment``: hash {version: publication counter, snapshot: bytes}."""
POLICY_CHANNEL = POLICY_PREFIX + "changed"
"""Pub/sub channel: the experiment's name, after every published snapshot."""

# The experiment registry (admin API and config seeding -> every router replica).
EXPERIMENTS_KEY = NAMESPACE + "experiments"
"""Hash: experiment name -> its config JSON (``ExperimentConfig`` dumped by alias)."""
REVISION_KEY = EXPERIMENTS_KEY + ":revision"
"""Counter bumped (atomically with the change) by every put or delete."""
DELETED_KEY = EXPERIMENTS_KEY + ":deleted"
"""Set of names deleted through the admin API, so a restarting router does not re-seed them."""
EXPERIMENTS_CHANNEL = EXPERIMENTS_KEY + ":changed"
"""Pub/sub channel: the new revision, after every change."""

# The learner's statistics (learner and pusher -> router's /stats and dashboard).
STATS_PREFIX = NAMESPACE + "stats:"
TIMELINE_PREFIX = NAMESPACE + "timeline:"
PUSHES_PREFIX = NAMESPACE + "pushes:"
MARKERS_PREFIX = NAMESPACE + "markers:"
"""The dashboard's time-axis markers the router records (``router.markers``)."""

# The archive (joined stream -> DSJSON files).
ARCHIVE_OFFSET_KEY = NAMESPACE + "archive:offset"
"""The last joined-stream id whose event is in an archive file."""


def decision_seen_key(event_id: str) -> str:
    """``bandit:decisions:seen:{event_id}``."""
    return DECISION_SEEN_PREFIX + event_id


def reward_seen_key(digest: str) -> str:
    """``bandit:rewards:seen:{digest}`` (``digest``: a reward identity's hash)."""
    return REWARD_SEEN_PREFIX + digest


def learner_lease_key(experiment: str) -> str:
    """``bandit:learner:{experiment}:lease``."""
    return f"{LEARNER_PREFIX}{experiment}:lease"


def learner_checkpoint_key(experiment: str) -> str:
    """``bandit:learner:{experiment}:checkpoint``."""
    return f"{LEARNER_PREFIX}{experiment}:checkpoint"


def policy_key(experiment: str) -> str:
    """``bandit:policy:{experiment}``."""
    return POLICY_PREFIX + experiment


def stats_key(experiment: str) -> str:
    """``bandit:stats:{experiment}``."""
    return STATS_PREFIX + experiment


def timeline_key(experiment: str) -> str:
    """``bandit:timeline:{experiment}``."""
    return TIMELINE_PREFIX + experiment


def pushes_key(experiment: str) -> str:
    """``bandit:pushes:{experiment}``."""
    return PUSHES_PREFIX + experiment


def markers_key(experiment: str) -> str:
    """``bandit:markers:{experiment}``."""
    return MARKERS_PREFIX + experiment
