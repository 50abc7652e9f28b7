"""Rewards as the webhook records them: the value type, its identity, and the store protocol.

A reward is identified by ``(event_id, reward_id)``. ``reward_id`` is the sender's
idempotency key when it gives one (``"reward_id"`` in the body); otherwise it is
derived from what the sender reports, the event id and the reward value
(``default_reward_id``), never from the delivery (its ``X-Bandit-Timestamp``, its
batch). So a retry is recognised and recorded once however it is sent again: the
same signed body, a body signed anew (new timestamp), or the reward in another
batch. That is what makes a 503 safe to retry: a write whose reply timed out may
have reached Redis all the same, and its retry is then a duplicate, not a second
reward. Consequence of the derived id, by design: the same ``(event_id, reward)``
reported twice without ``reward_id`` is one reward (while the store remembers the
identity, ``DEFAULT_SEEN_TTL_S``, and while the joiner keeps the event); senders
reporting several equal rewards for one event (``aggregate: sum`` or ``mean``) must
tell them apart with a distinct ``reward_id`` each.

Stores record each identity once and keep the order of acceptance; on Redis the
stream ``bandit:rewards`` (field ``reward``: compact JSON with ``event_id``,
``reward``, ``received_at``, ``reward_id``), see ``reward_ingest.rewards.redis``;
in one process, ``reward_ingest.rewards.memory``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

from common.storage.keys import reward_seen_key

__all__ = [
    "DEFAULT_SEEN_TTL_S",
    "Reward",
    "RewardStore",
    "decode_reward",
    "default_reward_id",
    "encode_reward",
    "seen_key",
    "stored_object",
]

DEFAULT_SEEN_TTL_S = 2 * 86400
"""How long a reward identity is remembered: two days outlasts the retry schedules of
common webhook senders (hours to ~3 days with backoff) for all but the last attempts,
and bounds Redis memory (see ``reward_ingest.rewards.redis`` for the cost per key)."""

_FIELDS = ("event_id", "reward", "received_at", "reward_id")


@dataclass(frozen=True, slots=True)
class Reward:
    """One reported outcome of one decision."""

    event_id: str
    """The decision's event id (``X-Bandit-Event-Id``)."""
    reward: float
    """The reported value; finite. Range-checked here only when the sender named the
    experiment, else by the joiner against the decision's experiment."""
    received_at: float
    """Unix seconds when the webhook accepted it (the receiver's clock, not the sender's)."""
    reward_id: str
    """The sender's idempotency key, or ``default_reward_id(...)``."""


class RewardStore(Protocol):
    """The rewards log: record each reward identity once, read them back in order."""

    async def start(self) -> None:
        """Connect; an unreachable store does not fail here, ``add`` does."""
        ...

    async def close(self) -> None:
        """Finish what is queued and release every resource."""
        ...

    async def add(self, rewards: list[Reward]) -> tuple[int, int]:
        """Record the rewards whose identity is new; ``(accepted, duplicates)``.

        All or none are decided: on ``errors.RewardStoreUnavailableError`` the caller does not
        know which were written, and retrying the same rewards is always safe.
        """
        ...

    async def read(self, count: int, after: str = "0") -> list[tuple[str, Reward]]:
        """Up to ``count`` (stream id, reward) with ids after ``after``, oldest first."""
        ...

    async def read_rewards(self, count: int,
                           after: str = "0") -> list[tuple[str, dict[str, Any]]]:
        """Like ``read``, each reward as its stored JSON object, unvalidated (the joiner's
        ``RewardReader``: it counts a malformed entry instead of stopping on it)."""
        ...


def default_reward_id(event_id: str, reward: float) -> str:
    """The identity of a reward sent without ``reward_id``: the same for every delivery
    of the same report (see the module docstring).

    ``1`` and ``1.0`` are the same reward (the value is hashed as a float).
    """
    material = json.dumps([event_id, float(reward)], separators=(",", ":"))
    return "auto-" + hashlib.blake2b(material.encode(), digest_size=16).hexdigest()


def stored_object(line: str | bytes) -> dict[str, Any]:
    """A stream entry's JSON object; ``{}`` when it is not one (for the joiner to count)."""
    try:
        data = json.loads(line)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def seen_key(reward: Reward) -> str:
    """The Redis key marking ``reward``'s identity as recorded.

    Hashed to a fixed 32 hex digits: ids may hold any printable character (so joining
    them with a separator would be ambiguous) and markers should cost the same
    whatever the ids' lengths.
    """
    material = json.dumps([reward.event_id, reward.reward_id], separators=(",", ":"))
    return reward_seen_key(hashlib.blake2b(material.encode(), digest_size=16).hexdigest())


def encode_reward(reward: Reward) -> str:
    """``reward`` as the compact JSON stored on the stream."""
    return json.dumps({"event_id": reward.event_id, "reward": reward.reward,
                       "received_at": reward.received_at, "reward_id": reward.reward_id},
                      separators=(",", ":"), allow_nan=False)


def decode_reward(line: str | bytes) -> Reward:
    """The ``Reward`` in a stream entry; ``ValueError`` naming what is wrong with it."""
    data: Any = json.loads(line)
    if not isinstance(data, dict) or set(data) != set(_FIELDS):
        raise ValueError(f"a stored reward needs exactly the fields {_FIELDS}: {line!r:.200}")
    event_id, value, received_at, reward_id = (data[key] for key in _FIELDS)
    numbers_ok = all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                     for x in (value, received_at))
    if not (isinstance(event_id, str) and isinstance(reward_id, str) and numbers_ok):
        raise ValueError(f"a stored reward has a field of the wrong type: {line!r:.200}")
    return Reward(event_id, float(value), float(received_at), reward_id)
