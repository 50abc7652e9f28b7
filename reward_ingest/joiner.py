"""The joiner's protocol, its counters, and the in-process joiner (``memory://``).

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
``MemoryJoiner`` keeps all of it in dicts; ``joiner_redis.RedisJoiner`` in Redis,
with the same semantics (the tests run both over the same input).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .join_rules import (
    DecisionIn,
    JoinedEvent,
    JoinRule,
    RewardIn,
    marker_ttl,
    max_wait,
    parse_decision,
    parse_reward,
    settle,
)

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


class JoinedLog:
    """The in-process joined stream: ids ``"1-0"``, ``"2-0"``… like ``MemoryStore``.

    Keeps the newest ``maxlen`` events, trimming a tenth at a time once over, as the
    Redis joined stream is trimmed; ids keep counting, and a reader that fell behind
    the trim resumes at the oldest event kept.
    """

    def __init__(self, maxlen: int = JOINED_MAXLEN) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        self.maxlen = maxlen
        self.entries: list[JoinedEvent] = []
        self.trimmed = 0
        """Events dropped from the front: ``entries[0]`` is event number ``trimmed + 1``."""

    def append(self, event: JoinedEvent) -> None:
        """Add ``event`` at the end."""
        self.entries.append(event)
        if len(self.entries) > self.maxlen + max(self.maxlen // 10, 1):
            excess = len(self.entries) - self.maxlen
            del self.entries[:excess]
            self.trimmed += excess

    async def read_joined(self, count: int,
                          after: str = "0") -> list[tuple[str, JoinedEvent]]:
        """Up to ``count`` entries after the id ``after``, oldest first."""
        start = max(int(after.split("-", 1)[0]), self.trimmed)
        index = start - self.trimmed
        chosen = self.entries[index:index + max(count, 0)]
        return [(f"{start + i + 1}-0", event) for i, event in enumerate(chosen)]


@dataclass(slots=True)
class _Window:
    decision: DecisionIn
    rule: JoinRule


@dataclass(slots=True)
class _Done:
    experiment: str  # "" when the rewards were dropped as orphans
    expires: float
    reward_ids: set[str] = field(default_factory=set)


class MemoryJoiner:
    """The joiner in one process: same rules and counters as the Redis joiner."""

    def __init__(self, decisions: DecisionReader, rewards: RewardReader, rules: Rules,
                 joined: JoinedLog | None = None, *, batch: int = BATCH) -> None:
        self._decisions, self._rewards = decisions, rewards
        self._rule = rule_lookup(rules)
        self._fallback_wait = max_wait(rules) if isinstance(rules, Mapping) else 600.0
        self._ttl = marker_ttl(rules) if isinstance(rules, Mapping) else 86_400.0
        self.joined = joined if joined is not None else JoinedLog()
        self._batch = batch
        self.offsets = {"decisions": "0", "rewards": "0"}
        self._windows: dict[str, _Window] = {}
        self._values: dict[str, list[str]] = {}
        self._reward_ids: dict[str, set[str]] = {}
        self._deadlines: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._done: dict[str, _Done] = {}  # insertion order = expiry order (one TTL)
        self._counts: dict[str, Counter[str]] = {}
        self._early_duplicates: Counter[str] = Counter()  # before the experiment is known

    async def counts(self, experiments: Iterable[str] | None = None
                     ) -> dict[str, dict[str, int]]:
        """Experiment -> counter -> value, for ``experiments`` (None: all)."""
        names = self._counts if experiments is None else experiments
        return {name: dict(self._counts[name]) for name in names if name in self._counts}

    async def step(self, now: float) -> int:
        """One pass: new decisions, new rewards, then windows due at ``now``."""
        self._expire(now)
        handled = 0
        for stream_id, event in await self._decisions.read_decisions(
                self._batch, self.offsets["decisions"]):
            self._on_decision(json.dumps(event, separators=(",", ":")), now)
            self.offsets["decisions"] = stream_id
            handled += 1
        for stream_id, reward in await self._rewards.read_rewards(
                self._batch, self.offsets["rewards"]):
            self._on_reward(reward, now)
            self.offsets["rewards"] = stream_id
            handled += 1
        due = 0
        while self._heap and self._heap[0][0] <= now and due < self._batch:
            deadline, event_id = heapq.heappop(self._heap)
            if self._deadlines.get(event_id) == deadline:  # else stale: superseded or done
                self._on_deadline(event_id, now)
                due += 1
        return handled + due

    def _count(self, experiment: str, name: str, by: int = 1) -> None:
        if by:
            self._counts.setdefault(experiment, Counter())[name] += by

    def _on_decision(self, text: str, now: float) -> None:
        try:
            decision = parse_decision(text)
        except ValueError:
            self._count(UNKNOWN, "malformed_decisions")
            return
        rule = self._rule(decision.experiment)
        if rule is None:
            self._count(decision.experiment, "unknown_experiment")
            return
        event_id = decision.event_id
        done = self._done.get(event_id)
        if event_id in self._windows or (done is not None and done.experiment):
            self._count(decision.experiment, "duplicate_decisions")
            return
        if done is not None:  # its rewards were dropped as orphans: join it all the same
            del self._done[event_id]
            self._reward_ids[event_id] = done.reward_ids
        self._windows[event_id] = _Window(decision, rule)
        self._count(decision.experiment, "duplicate_rewards",
                    self._early_duplicates.pop(event_id, 0))
        values = self._values.get(event_id, [])
        if rule.mode == "first":
            for i, text_value in enumerate(values):
                if rule.in_range(float(text_value)):
                    self._count(decision.experiment, "out_of_range", i)
                    self._count(decision.experiment, "late_rewards", len(values) - i - 1)
                    self._finish(event_id, text_value, False, 1, now)
                    return
            self._count(decision.experiment, "out_of_range", len(values))
            self._values.pop(event_id, None)
        self._set_deadline(event_id, rule.deadline(decision.timestamp))

    def _on_reward(self, raw: Mapping[str, Any], now: float) -> None:
        try:
            reward = parse_reward(raw)
        except ValueError:
            self._count(UNKNOWN, "malformed_rewards")
            return
        event_id = reward.event_id
        done = self._done.get(event_id)
        if done is not None:  # late ids are kept too: their redeliveries are duplicates
            duplicate = reward.reward_id in done.reward_ids
            done.reward_ids.add(reward.reward_id)
            self._count(done.experiment or UNKNOWN,
                        "duplicate_rewards" if duplicate else "late_rewards")
            return
        window = self._windows.get(event_id)
        seen = self._reward_ids.setdefault(event_id, set())
        if reward.reward_id in seen:
            if window is not None:
                self._count(window.decision.experiment, "duplicate_rewards")
            else:
                self._early_duplicates[event_id] += 1
            return
        seen.add(reward.reward_id)
        if window is None:
            self._values.setdefault(event_id, []).append(reward.text)
            if event_id not in self._deadlines:
                self._set_deadline(event_id, reward.received_at + self._fallback_wait)
            return
        if not window.rule.in_range(float(reward.text)):
            self._count(window.decision.experiment, "out_of_range")
        elif window.rule.mode == "first":
            self._finish(event_id, reward.text, False, 1, now)
        else:
            self._values.setdefault(event_id, []).append(reward.text)

    def _on_deadline(self, event_id: str, now: float) -> None:
        window = self._windows.get(event_id)
        values = self._values.get(event_id, [])
        if window is None:
            self._count(UNKNOWN, "orphan_rewards", len(values))
            self._count(UNKNOWN, "duplicate_rewards", self._early_duplicates.pop(event_id, 0))
            self._mark_done(event_id, "", now)
            return
        experiment = window.decision.experiment
        outcome = settle(values, window.rule)
        if outcome is not None:
            self._count(experiment, "out_of_range", outcome.out_of_range)
            self._finish(event_id, outcome.reward, outcome.default, outcome.rewards, now)
            return
        self._count(experiment, "out_of_range", len(values))
        self._count(experiment, "dropped_no_reward")
        self._mark_done(event_id, experiment, now)

    def _finish(self, event_id: str, reward: str, default: bool, rewards: int,
                now: float) -> None:
        decision = self._windows[event_id].decision
        self.joined.append(JoinedEvent(decision.json, float(reward), default, rewards, now))
        self._count(decision.experiment, "joined")
        if default:
            self._count(decision.experiment, "default_rewards")
        self._mark_done(event_id, decision.experiment, now)

    def _mark_done(self, event_id: str, experiment: str, now: float) -> None:
        self._windows.pop(event_id, None)
        self._values.pop(event_id, None)
        self._deadlines.pop(event_id, None)  # its heap entry goes stale
        self._early_duplicates.pop(event_id, None)
        self._done[event_id] = _Done(experiment, now + self._ttl,
                                     self._reward_ids.pop(event_id, set()))

    def _set_deadline(self, event_id: str, deadline: float) -> None:
        self._deadlines[event_id] = deadline
        heapq.heappush(self._heap, (deadline, event_id))

    def _expire(self, now: float) -> None:
        while self._done:
            event_id, done = next(iter(self._done.items()))
            if done.expires > now:
                return
            del self._done[event_id]


__all__ = ["COUNTERS", "JOINED_MAXLEN", "UNKNOWN", "DecisionReader", "JoinedLog", "Joiner",
           "MemoryJoiner", "RewardIn", "RewardReader", "Rules", "rule_lookup"]
