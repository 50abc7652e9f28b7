"""The events ``bench/loop.py`` feeds the joiner and the learners, as the router and the
webhook write them.

- decisions: the router's decision event (``router.events.decision_event``'s fields),
  4 arms, uniform logging probability 0.25; for the contextual case a context of 20
  features ``x0``…``x19`` (standard normal);
- rewards: the webhook's stream entry (``event_id``, ``reward``, ``received_at``,
  ``reward_id``);
- joined entries: ``bandit:joined`` fields, exactly as the joiner's Lua writes them
  (``join_rules.joined_fields``);
- VW's own text examples for the same events (``_common``), the reference learner's input.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import _common

from reward_ingest.join_rules import joined_fields, reward_text

EXPERIMENT = "bench"
ENDPOINT = "bench-endpoint"
ARMS = ("A", "B", "C", "D")
N_FEATURES = 20
THOMPSON = {"type": "thompson"}
ONLINE_COVER = {"type": "online_cover", "cover": 3}
SEED = 1


@dataclass(frozen=True, slots=True)
class Event:
    """One decision (its JSON, verbatim) and the reward it earned."""

    event_id: str
    decision_json: str
    arm: int
    reward: float
    context: dict[str, float] | None


def decision(event_id: str, arm: int, timestamp: float,
             context: dict[str, float] | None) -> dict[str, Any]:
    """A decision event with the router's fields."""
    share = 1.0 / len(ARMS)
    return {"format": 1, "event_id": event_id, "timestamp": timestamp,
            "experiment": EXPERIMENT, "endpoint": ENDPOINT, "policy_version": 1,
            "variants": list(ARMS), "eligible": None, "context": context,
            "variant": ARMS[arm], "probability": share,
            "probabilities": dict.fromkeys(ARMS, share), "targeted": False,
            "unit_id": None, "source": "decisions", "outcome": "decided", "latency_ms": None}


def events(n: int, *, contextual: bool, timestamp: float, seed: int = 0) -> list[Event]:
    """``n`` events; rewards are Bernoulli, depending on the arm (and on the context)."""
    rng = random.Random(seed)
    means = (0.2, 0.3, 0.4, 0.5)
    out = []
    for i in range(n):
        arm = rng.randrange(len(ARMS))
        context = None
        if contextual:
            context = {f"x{j}": rng.gauss(0.0, 1.0) for j in range(N_FEATURES)}
            p = 1.0 / (1.0 + math.exp(-2.0 * context[f"x{arm}"]))
        else:
            p = means[arm]
        event_id = f"ev-{i:08d}"
        text = json.dumps(decision(event_id, arm, timestamp, context), separators=(",", ":"))
        out.append(Event(event_id, text, arm, float(rng.random() < p), context))
    return out


def joined_entry(event: Event, joined_at: float) -> dict[str, str]:
    """The ``bandit:joined`` fields of ``event`` (one reward, not a default)."""
    return joined_fields(event.decision_json, reward_text(event.reward), False, 1, joined_at)


def reward_entry(event: Event, received_at: float) -> dict[str, str]:
    """The ``bandit:rewards`` fields the webhook writes for ``event``'s reward."""
    body = {"event_id": event.event_id, "reward": event.reward, "received_at": received_at,
            "reward_id": f"{event.event_id}/r0"}
    return {"reward": json.dumps(body, separators=(",", ":"))}


def vw_examples(items: Sequence[Event]) -> list[list[str]]:
    """VW's labelled text examples of contextual ``items`` (``_common``'s format)."""
    actions = _common.action_lines(ARMS)
    share = 1.0 / len(ARMS)
    examples = []
    for event in items:
        if event.context is None:
            raise ValueError("VW examples need contextual events")
        examples.append(_common.labelled_example(event.context, actions, event.arm,
                                                 event.reward, share))
    return examples
