"""The joiner in one process (``memory://``): same rules and counters as the Redis joiner.

``MemoryJoiner`` keeps its windows, markers and counters in dicts and writes joined
events to a ``JoinedLog``, the in-process joined stream (``common.storage.streams``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.storage.streams import START, MemoryStream, sequence
from reward_ingest.join_rules import (
    DecisionIn,
    JoinedEvent,
    JoinRule,
    marker_ttl,
    max_wait,
    parse_decision,
    parse_reward,
    settle,
)

from .base import (
    BATCH,
    JOINED_MAXLEN,
    UNKNOWN,
    DecisionReader,
    RewardReader,
    Rules,
    rule_lookup,
)

IDLE_S = 0.05
"""How long ``run`` waits when a step found nothing to do."""


class JoinedLog(MemoryStream[JoinedEvent]):
    """The in-process joined stream, trimmed to about ``maxlen`` events like the Redis
    joined stream (``MemoryStream``), and the archive's offset in it (a ``JoinedSource``)."""

    def __init__(self, maxlen: int = JOINED_MAXLEN) -> None:
        super().__init__(maxlen)
        self.archived = START
        """The archive's offset: the id of the last entry written to archive files."""

    async def read_joined(self, count: int,
                          after: str = START) -> list[tuple[str, JoinedEvent]]:
        """Up to ``count`` entries after the id ``after``, oldest first."""
        return self.read(count, after)

    async def count_after(self, after: str, cap: int) -> int:
        """How many entries come after the id ``after`` (at most ``cap``)."""
        start = max(sequence(after), self.trimmed)
        return max(0, min(cap, self.trimmed + len(self.entries) - start))

    async def archived_offset(self) -> str:
        return self.archived

    async def save_archived_offset(self, offset: str) -> None:
        self.archived = offset


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

    async def run(self, stop: asyncio.Event, clock: Callable[[], float] = time.time) -> None:
        """Join until ``stop`` is set; wait ``IDLE_S`` after a step that found nothing."""
        while not stop.is_set():
            if await self.step(clock()):
                # The streams are in this process, so the step never suspends: give the
                # router its turn between batches.
                await asyncio.sleep(0)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), IDLE_S)

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


__all__ = ["JoinedLog", "MemoryJoiner"]
