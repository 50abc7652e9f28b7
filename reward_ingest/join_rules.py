"""The pure rules of the join: aggregation, range filtering, deadlines, the joined event.

No I/O. The memory joiner calls these directly; the Redis joiner's Lua scripts
implement the same rules and the tests hold both to identical output. Numbers
follow Lua's arithmetic on purpose: sums run left to right in doubles (never
``math.fsum``), and a computed reward is written with ``%.17g``, which Python's
``float`` reads back to the same double. A reward that is not computed (``first``,
``max``, the default) travels as the text it arrived as.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

Aggregate: TypeAlias = Literal["first", "sum", "max", "mean"]
AGGREGATES: tuple[Aggregate, ...] = ("first", "sum", "max", "mean")

DAY_S = 86_400.0
"""The least time a finished event's marker is kept (late and duplicate inputs are ignored)."""


class RewardSettings(Protocol):
    """What the joiner needs of an experiment's ``reward`` section (``RewardConfig``)."""

    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def default(self) -> float | None: ...
    @property
    def wait_seconds(self) -> float: ...
    @property
    def aggregate(self) -> str: ...


class ExperimentSettings(Protocol):
    """An experiment as the joiner sees it (``ExperimentConfig`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def reward(self) -> RewardSettings: ...


@dataclass(frozen=True, slots=True)
class JoinRule:
    """How one experiment's rewards are joined to its decisions."""

    mode: Aggregate = "first"
    min: float = 0.0
    max: float = 1.0
    default: float | None = 0.0
    wait_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.mode not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, "
                             f"got {self.mode!r}")
        if not (math.isfinite(self.min) and math.isfinite(self.max) and self.min < self.max):
            raise ValueError(f"need finite min < max, got [{self.min!r}, {self.max!r}]")
        if not (math.isfinite(self.wait_seconds) and self.wait_seconds > 0):
            raise ValueError(f"wait_seconds must be positive, got {self.wait_seconds!r}")

    @classmethod
    def from_settings(cls, reward: RewardSettings) -> JoinRule:
        """The rule of a ``RewardConfig`` (or anything shaped like one)."""
        mode = reward.aggregate
        if mode not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {mode!r}")
        return cls(mode=mode,  # checked just above
                   min=reward.min, max=reward.max, default=reward.default,
                   wait_seconds=reward.wait_seconds)

    def in_range(self, value: float) -> bool:
        """Whether ``value`` is a reward this experiment accepts (bounds included)."""
        return self.min <= value <= self.max

    def deadline(self, decision_timestamp: float) -> float:
        """When the window of a decision made at ``decision_timestamp`` closes."""
        return decision_timestamp + self.wait_seconds


def rules_of(experiments: Iterable[ExperimentSettings]) -> dict[str, JoinRule]:
    """Experiment name -> its ``JoinRule``."""
    return {e.name: JoinRule.from_settings(e.reward) for e in experiments}


def marker_ttl(rules: Mapping[str, JoinRule]) -> float:
    """How long a finished event's marker lives: 2 × the longest window, at least a day."""
    return max(DAY_S, 2.0 * max_wait(rules))


def max_wait(rules: Mapping[str, JoinRule]) -> float:
    """The longest window: the fallback deadline of a reward whose decision is not in yet."""
    return max((rule.wait_seconds for rule in rules.values()), default=600.0)


def reward_text(value: float) -> str:
    """A number as the joiner writes it: the shortest text that reads back exactly."""
    return repr(float(value))


def computed_text(value: float) -> str:
    """A computed reward as Lua's ``string.format('%.17g', x)`` writes it."""
    return f"{value:.17g}"


def aggregate(values: Sequence[float], mode: Aggregate) -> float:
    """``values`` (in arrival order, non-empty) combined per ``mode``; as Lua computes it."""
    if not values:
        raise ValueError("nothing to aggregate")
    if mode == "first":
        return values[0]
    if mode == "max":
        return max(values)  # the first of equal maxima, as the Lua loop keeps it
    total = 0.0
    for value in values:  # left to right, like Lua: math.fsum would differ in the last bit
        total += value
    if mode == "sum":
        return total
    if mode == "mean":
        return total / len(values)
    raise ValueError(f"unknown aggregate {mode!r}")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a decision gets when its window closes (or at once, for ``first``)."""

    reward: str
    """The reward as written to the joined stream (see the module docstring)."""
    default: bool
    rewards: int
    out_of_range: int


def settle(texts: Sequence[str], rule: JoinRule) -> Outcome | None:
    """The outcome of a closed window over the rewards ``texts``; None: drop the decision."""
    accepted = [(text, float(text)) for text in texts if rule.in_range(float(text))]
    rejected = len(texts) - len(accepted)
    if accepted:
        values = [value for _, value in accepted]
        if rule.mode in ("first", "max"):
            best = aggregate(values, rule.mode)
            text = next(t for t, v in accepted if v == best)
        else:
            text = computed_text(aggregate(values, rule.mode))
        return Outcome(text, False, len(accepted), rejected)
    if rule.default is None:
        return None
    return Outcome(reward_text(rule.default), True, 0, rejected)


@dataclass(frozen=True, slots=True)
class JoinedEvent:
    """One joined event: the decision (verbatim JSON) and what it earned."""

    decision_json: str
    reward: float
    default_reward: bool
    rewards: int
    joined_at: float

    @property
    def decision(self) -> dict[str, Any]:
        """The decision event, parsed."""
        parsed: dict[str, Any] = json.loads(self.decision_json)
        return parsed

    def to_dict(self) -> dict[str, Any]:
        """The contract's joined event: the decision's fields plus the four join fields."""
        return {**self.decision, "reward": self.reward, "default_reward": self.default_reward,
                "rewards": self.rewards, "joined_at": self.joined_at}

    def fields(self) -> dict[str, str]:
        """The stream entry's fields (``bandit:joined``)."""
        return joined_fields(self.decision_json, reward_text(self.reward), self.default_reward,
                             self.rewards, self.joined_at)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str] | Mapping[bytes, bytes]) -> JoinedEvent:
        """Parse a ``bandit:joined`` entry (str or bytes fields); ``ValueError`` if malformed."""
        text = {(k.decode() if isinstance(k, bytes) else k):
                (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()}
        try:
            return cls(decision_json=text["event"], reward=float(text["reward"]),
                       default_reward=text["default"] == "1", rewards=int(text["rewards"]),
                       joined_at=float(text["joined_at"]))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"malformed joined entry: {exc}") from exc


def joined_fields(decision_json: str, reward: str, default: bool, rewards: int,
                  joined_at: float) -> dict[str, str]:
    """The fields of a ``bandit:joined`` entry, exactly as the Lua scripts write them."""
    return {"event": decision_json, "reward": reward, "default": "1" if default else "0",
            "rewards": str(rewards), "joined_at": reward_text(joined_at)}


@dataclass(frozen=True, slots=True)
class DecisionIn:
    """The parts of a decision event the joiner needs; the JSON travels verbatim."""

    event_id: str
    experiment: str
    timestamp: float
    json: str


@dataclass(frozen=True, slots=True)
class RewardIn:
    """One reward from the rewards stream."""

    event_id: str
    reward_id: str
    text: str
    """The reward as ``reward_text`` writes it."""
    received_at: float


def parse_decision(text: str) -> DecisionIn:
    """A decision event's JSON; ``ValueError`` when it lacks a usable id, experiment or time."""
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"decision is not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise ValueError("decision is not a JSON object")
    event_id, experiment, timestamp = (event.get(k) for k in
                                       ("event_id", "experiment", "timestamp"))
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("decision has no event_id")
    if not isinstance(experiment, str) or not experiment:
        raise ValueError(f"decision {event_id!r} has no experiment")
    if not _finite(timestamp):
        raise ValueError(f"decision {event_id!r} has no finite timestamp")
    return DecisionIn(event_id, experiment, float(timestamp), text)  # type: ignore[arg-type]


def parse_reward(value: str | Mapping[str, Any]) -> RewardIn:
    """A reward (the stream's JSON or its dict); ``ValueError`` when a field is unusable."""
    reward = json.loads(value) if isinstance(value, str) else value
    if not isinstance(reward, Mapping):
        raise ValueError("reward is not a JSON object")
    event_id, reward_id = reward.get("event_id"), reward.get("reward_id")
    number, received_at = reward.get("reward"), reward.get("received_at")
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("reward has no event_id")
    if not isinstance(reward_id, str) or not reward_id:
        raise ValueError(f"reward for {event_id!r} has no reward_id")
    if not _finite(number) or not _finite(received_at):
        raise ValueError(f"reward for {event_id!r} needs a finite reward and received_at")
    return RewardIn(event_id, reward_id, reward_text(number),  # type: ignore[arg-type]
                    float(received_at))  # type: ignore[arg-type]


def _finite(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer beyond a double's range
        return False
