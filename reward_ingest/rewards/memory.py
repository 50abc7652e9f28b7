"""The rewards log in one process (``memory://``): for the embedded default and tests."""

from __future__ import annotations

from typing import Any

from common.storage.streams import MemoryStream

from .base import Reward, decode_reward, encode_reward, stored_object


class MemoryRewardStore:
    """Rewards in a ``MemoryStream``, ids ``"1-0"``, ``"2-0"``…; for tests and one-process
    runs.

    Identities are remembered for the life of the process (no TTL, no trimming), and
    each reward goes through the JSON round trip, as it would on Redis.
    """

    def __init__(self) -> None:
        self._rewards: MemoryStream[Reward] = MemoryStream(dedupe=True)

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release; the rewards stay readable."""

    async def add(self, rewards: list[Reward]) -> tuple[int, int]:
        """Record each reward whose ``(event_id, reward_id)`` is new."""
        lines = [encode_reward(reward) for reward in rewards]  # fail before recording any
        accepted = 0
        for reward, line in zip(rewards, lines, strict=True):
            accepted += self._rewards.append(decode_reward(line),
                                             (reward.event_id, reward.reward_id))
        return accepted, len(rewards) - accepted

    async def read(self, count: int, after: str = "0") -> list[tuple[str, Reward]]:
        """Up to ``count`` rewards after the id ``after`` (``"N-0"`` is the N-th)."""
        return self._rewards.read(count, after)

    async def read_rewards(self, count: int,
                           after: str = "0") -> list[tuple[str, dict[str, Any]]]:
        """Like ``read``, each reward as its stored JSON object."""
        return [(stream_id, stored_object(encode_reward(reward)))
                for stream_id, reward in await self.read(count, after)]
