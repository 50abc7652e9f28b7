"""What every joiner provides: the protocol, its counters, and what it reads and writes.

A joiner pairs decisions with rewards by event id (see ``join_rules``):

- a decision opens a window that closes at ``timestamp + wait_seconds``;
- ``first`` joins as soon as a decision and an in-range reward are both in (in either
  order); ``sum``/``max``/``mean`` wait for the window to close;
- at the deadline a decision gets its aggregate, else the default reward, else is
  dropped; rewards whose decision never came are dropped as orphans at
  ``received_at + the longest window``;
- counters do not depend on how decisions and rewards interleave: a duplicate
  reward seen before its decision is counted for the experiment once the decision
  comes, and with ``first`` every reward after the joined one is ``late``, whether it
  came before the decision or after;
- a finished event keeps a marker for ``marker_ttl`` (≥ 1 day): inputs for it after
  that are counted (late or duplicate), never joined, and a decision that arrives
  after its rewards were dropped as orphans is still joined (with the default).

Counters per experiment (``COUNTERS``); what cannot be tied to an experiment (orphans,
rewards duplicated before their decision, malformed input) goes under ``UNKNOWN``.
``memory.MemoryJoiner`` keeps all of it in dicts; ``redis.RedisJoiner`` in Redis,
with the same semantics (the tests run both over the same input). Joined events go to
a joined stream (``memory.JoinedLog``, ``redis.RedisJoinedLog``) that the learners and
the archive follow (``JoinedSource``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from reward_ingest.join_rules import JoinedEvent, JoinRule

COUNTERS = ("joined", "default_rewards", "dropped_no_reward", "late_rewards",
            "duplicate_rewards", "out_of_range", "orphan_rewards", "duplicate_decisions",
            "unknown_experiment", "malformed_decisions", "malformed_rewards")
UNKNOWN = "_unknown"
"""The counters' experiment for inputs tied to none (not a valid experiment name)."""
BATCH = 1000

Rules = Mapping[str, JoinRule] | Callable[[str], JoinRule | None]
"""Experiment -> rule: a mapping, or a function (e.g. over a live registry)."""


class Joiner(Protocol):
    """Pairs decisions with rewards; ``step`` is one pass over whatever is new."""

    async def run(self, stop: asyncio.Event, clock: Callable[[], float]) -> None:
        """Join until ``stop`` is set, stepping at ``clock()`` (Unix seconds)."""
        ...

    async def step(self, now: float) -> int:
        """Consume new decisions and rewards, close windows due at ``now``; items handled."""
        ...

    async def counts(self, experiments: Iterable[str] | None = None
                     ) -> dict[str, dict[str, int]]:
        """Experiment -> counter -> value (``COUNTERS``; missing ones are 0), for
        ``experiments`` (None: every experiment counted so far)."""
        ...


class DecisionReader(Protocol):
    """The decision log (``router.store`` ``MemoryStore``/``RedisStore`` fit)."""

    async def read_decisions(self, count: int,
                             after: str = "0") -> list[tuple[str, dict[str, Any]]]: ...


class RewardReader(Protocol):
    """The rewards log: entries {event_id, reward, received_at, reward_id} after an id."""

    async def read_rewards(self, count: int,
                           after: str = "0") -> Sequence[tuple[str, Mapping[str, Any]]]: ...


def rule_lookup(rules: Rules) -> Callable[[str], JoinRule | None]:
    """``rules`` as a function."""
    return rules.get if isinstance(rules, Mapping) else rules


JOINED_MAXLEN = 1_000_000
"""About how many joined events a joined stream keeps (Redis: ``XADD MAXLEN ~``)."""


class JoinedReader(Protocol):
    """A joined stream: entries after an id (``None``: an entry that does not parse)."""

    async def read_joined(self, count: int,
                          after: str = "0") -> Sequence[tuple[str, JoinedEvent | None]]: ...


class JoinedSource(JoinedReader, Protocol):
    """The joined stream as the ingest service follows it, with the archive's offset."""

    async def archived_offset(self) -> str:
        """The id of the last entry written to the archive (``"0"``: none)."""
        ...

    async def save_archived_offset(self, offset: str) -> None:
        """Remember that everything up to ``offset`` is in archive files."""
        ...

    async def count_after(self, after: str, cap: int) -> int:
        """How many entries come after the id ``after``, counting at most ``cap``."""
        ...


__all__ = ["BATCH", "COUNTERS", "JOINED_MAXLEN", "UNKNOWN", "DecisionReader", "JoinedReader",
           "JoinedSource", "Joiner", "RewardReader", "Rules", "rule_lookup"]
