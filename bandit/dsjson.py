"""Joined events as Vowpal Wabbit Decision Service JSON (``--dsjson``), one line each, and back.

A line, keys in the order VW's own logs use (the ``_label_*`` keys must come
before ``c``: VW applies the label when ``c`` closes)::

    {"_label_cost":-1.0,"_label_probability":0.8,"_label_Action":2,"_labelIndex":1,
     "o":[{"v":1.0,"EventId":"e1","ActionTaken":false}],
     "Timestamp":"2024-05-01T12:00:00.250Z","Version":"1","EventId":"e1",
     "a":[2,1],"c":{"s":{"age":42,"plan=gold":1},"_multi":[{"a":{"arm=V1":1}},{"a":{"arm=V2":1}}]},
     "p":[0.8,0.2],
     "experiment":"churn","policy_version":"7","variants":["V1","V2"],
     "targeted":false,"default_reward":false}

Decisions of mine, documented here because the replay and VW depend on them:

- **Features are the policy's features.** ``c.s`` holds exactly the tokens
  ``bandit._vw_features.FeatureEncoder`` writes on the policy's ``shared |s`` line
  (``age:42`` becomes ``"age":42``, ``plan=gold`` becomes ``"plan=gold":1``,
  nested keys stay flattened as ``user.country=fr``), and each ``_multi`` item is
  ``{"a":{"arm=<name>":1}}``, the action line ``|a arm=<name>``. VW hashes a JSON
  number feature exactly as the text token (checked with ``--audit``), so a model
  trained on the archive with ``--dsjson`` sees what the policy saw. (A JSON string
  value would not do: VW hashes ``"plan":"gold"`` as ``plangold``.)
  One exception: VW's JSON parser ignores or specially treats every key starting
  with ``_``, so a feature name that starts with ``_`` is written with it
  percent-encoded (``%5F``); only such features hash differently from the policy's.
- **The action set is the eligible set.** ``_multi`` lists the variants the
  decision was made over, in the experiment's variant order: all of them, or the
  caller's ``eligible`` subset. ``a`` is a permutation of their 1-based ids,
  chosen first, the rest in variant order, and ``p`` their probabilities as
  served, so ``p`` is a pmf over ``_multi``. Variants the caller excluded are not
  in ``_multi`` (a learner must not treat them as available); variants that were
  offered with probability 0 (suspended by a guardrail, weight 0) stay, with 0.
  The experiment's full variant list is our own top-level ``variants``.
- **Targeted** decisions (the caller chose): ``_label_probability`` 1, the other
  actions 0, ``"targeted":true``; learners decide whether to use them.
- **Rewards**: ``_label_cost`` is −reward. ``o`` holds the observed reward as
  ``{"v","EventId","ActionTaken"}`` (the aggregate when several were combined);
  it is empty when no reward came and the default was used (``"default_reward":true``).
- **Context back**: ``from_dsjson`` rebuilds the context from ``c.s``. It is the
  original up to the feature encoding (``True`` comes back as ``1``, false and null
  values and empty objects are gone, numbers are the 9 digits VW was given), so the
  policy encodes it to the very same features; contexts the encoder refuses (a list,
  say, logged by a context-free experiment) keep their encodable keys and list the
  others in our own top-level ``dropped_features``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict

from ._errors import ContextError
from ._vw_features import ACTION_NAMESPACE, SHARED_NAMESPACE, FeatureEncoder, escape

VERSION = "1"
ARM_FEATURE = "arm="

# Built once: the encoder caches escaped key names (bounded).
_ENCODER = FeatureEncoder()
_SHARED_PREFIX_LEN = len(f"shared |{SHARED_NAMESPACE}")
_PERCENT = re.compile(r"%(u[0-9A-F]{4}|[0-9A-F]{2})")
_NUMBER = re.compile(r"-?[0-9]+")


class ReplayEvent(TypedDict):
    """What ``from_dsjson`` reads back: enough to replay a decision offline."""

    event_id: str
    timestamp: float
    experiment: str | None
    policy_version: str | None
    variants: list[str]
    eligible: list[str] | None
    context: dict[str, Any] | None
    variant: str
    probability: float
    probabilities: dict[str, float]
    reward: float
    targeted: bool
    default_reward: bool


def to_dsjson(event: Mapping[str, Any]) -> str:
    """One DSJSON line (no newline) for a joined event; ``ValueError`` if it is malformed."""
    try:
        event_id = str(event["event_id"])
        variants = [str(v) for v in event["variants"]]
        chosen = str(event["variant"])
        probability = float(event["probability"])
        reward = float(event["reward"])
        timestamp = float(event["timestamp"])
        probabilities: Mapping[str, Any] = event.get("probabilities") or {}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"joined event {event.get('event_id')!r}: bad or missing "
                         f"field: {exc}") from None
    offered = _offered(event_id, variants, event.get("eligible"))
    if chosen not in offered:
        raise ValueError(f"joined event {event_id!r}: variant {chosen!r} is not among the "
                         f"offered variants {offered!r}")
    if not (0.0 < probability <= 1.0 and math.isfinite(reward) and math.isfinite(timestamp)):
        raise ValueError(f"joined event {event_id!r}: probability must be in (0, 1] and "
                         "reward and timestamp finite")
    index = offered.index(chosen)
    order = [index, *(i for i in range(len(offered)) if i != index)]
    try:
        pmf = [probability if i == index else float(probabilities.get(offered[i]) or 0.0)
               for i in order]
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"joined event {event_id!r}: probabilities must map variants to numbers, "
                         f"got {probabilities!r}") from None
    shared, dropped = _shared_features(event.get("context"))
    default_reward = bool(event.get("default_reward", False))
    context: dict[str, Any] = {SHARED_NAMESPACE: shared} if shared else {}
    context["_multi"] = [{ACTION_NAMESPACE: {ARM_FEATURE + escape(v): 1}} for v in offered]
    line: dict[str, Any] = {
        "_label_cost": 0.0 - reward,  # 0.0 - 0.0 is 0.0, not -0.0
        "_label_probability": probability,
        "_label_Action": index + 1,
        "_labelIndex": index,
        "o": [] if default_reward else [{"v": reward, "EventId": event_id,
                                         "ActionTaken": False}],
        "Timestamp": iso_timestamp(timestamp),
        "Version": VERSION,
        "EventId": event_id,
        "a": [i + 1 for i in order],
        "c": context,
        "p": pmf,
        "experiment": event.get("experiment"),
        "policy_version": event.get("policy_version"),
        "variants": variants,
        "targeted": bool(event.get("targeted", False)),
        "default_reward": default_reward,
    }
    if dropped:
        line["dropped_features"] = dropped
    # Compact separators matter: VW's fast skip of unknown keys wants '"key":' with no space.
    return json.dumps(line, separators=(",", ":"), allow_nan=False)


def from_dsjson(line: str | bytes) -> ReplayEvent:
    """The decision and its reward back from one of our DSJSON lines; ``ValueError`` if bad."""
    try:
        return _replay_event(json.loads(line))
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"not one of our DSJSON lines: {type(exc).__name__}: {exc}") from None


def _replay_event(record: dict[str, Any]) -> ReplayEvent:
    context = record.get("c") or {}
    arms = [_arm(item) for item in context.get("_multi", [])]
    ids = [int(a) for a in record["a"]]
    pmf = [float(p) for p in record["p"]]
    if sorted(ids) != list(range(1, len(arms) + 1)) or len(pmf) != len(ids):
        raise ValueError(f"event {record.get('EventId')!r}: 'a' must be a permutation of the "
                         f"{len(arms)} actions in c._multi, with one 'p' each")
    action = int(record["_label_Action"])
    if not 1 <= action <= len(arms):
        raise ValueError(f"event {record.get('EventId')!r}: _label_Action {action} is not "
                         f"one of the {len(arms)} actions")
    chosen = arms[action - 1]
    variants = [str(v) for v in record.get("variants") or arms]
    return ReplayEvent(
        event_id=str(record["EventId"]),
        timestamp=parse_timestamp(record["Timestamp"]),
        experiment=record.get("experiment"),
        policy_version=record.get("policy_version"),
        variants=variants,
        eligible=None if arms == variants else arms,
        context=_context(context.get(SHARED_NAMESPACE)),
        variant=chosen,
        probability=float(record["_label_probability"]),
        probabilities={arms[i - 1]: p for i, p in zip(ids, pmf, strict=True)},
        reward=0.0 - float(record["_label_cost"]),
        targeted=bool(record.get("targeted", False)),
        default_reward=bool(record.get("default_reward", False)),
    )


def iso_timestamp(seconds: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds: ``2024-05-01T12:00:00.250Z``."""
    whole, millis = divmod(round(seconds * 1000), 1000)
    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def parse_timestamp(text: str) -> float:
    """``iso_timestamp`` back to Unix seconds (any fraction length, ``Z`` or an offset)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _offered(event_id: str, variants: Sequence[str], eligible: object) -> list[str]:
    if eligible is None:
        return list(variants)
    if not isinstance(eligible, list | tuple):
        raise ValueError(f"joined event {event_id!r}: eligible must be a list or null, "
                         f"got {eligible!r}")
    wanted = {str(v) for v in eligible}
    return [v for v in variants if v in wanted]


def _shared_features(context: object) -> tuple[dict[str, int | float], list[str]]:
    """The policy's shared-namespace tokens as a JSON object, and the keys left out."""
    if not context:
        return {}, []
    if not isinstance(context, Mapping):
        return {}, ["<context>"]
    try:
        return _tokens(_ENCODER.shared_line(context)), []
    except ContextError:
        pass
    # Slow path: keep what encodes, key by key.
    features: dict[str, int | float] = {}
    dropped: list[str] = []
    for key, value in context.items():
        try:
            features.update(_tokens(_ENCODER.shared_line({key: value})))
        except ContextError:
            dropped.append(str(key))
    return features, dropped


def _tokens(shared_line: str) -> dict[str, int | float]:
    features: dict[str, int | float] = {}
    # Split on the ASCII space only: names may hold other (Unicode) white space.
    for token in shared_line[_SHARED_PREFIX_LEN:].split(" ")[1:]:
        name, _, value = token.partition(":")
        if name.startswith("_"):
            name = "%5F" + name[1:]
        # The encoder wrote value with 9 significant digits; VW gets those same digits.
        # "-0" stays a float: int("-0") would drop the sign the encoder wrote.
        features[name] = (1 if not value else
                          int(value) if _NUMBER.fullmatch(value) and value != "-0"
                          else float(value))
    return features


def _unescape(text: str) -> str:
    return _PERCENT.sub(lambda m: chr(int(m.group(1).removeprefix("u"), 16)), text)


def _context(shared: object) -> dict[str, Any] | None:
    if not isinstance(shared, Mapping) or not shared:
        return None
    context: dict[str, Any] = {}
    for feature, value in shared.items():
        name, is_string, text = feature.partition("=")
        *outer, last = [_unescape(segment) for segment in name.split(".")]
        node = context
        for segment in outer:
            node = node.setdefault(segment, {})
        node[last] = _unescape(text) if is_string else value
    return context


def _arm(item: Mapping[str, Any]) -> str:
    for feature in item.get(ACTION_NAMESPACE, {}):
        if feature.startswith(ARM_FEATURE):
            return _unescape(feature[len(ARM_FEATURE):])
    raise ValueError(f"action {item!r} has no {ACTION_NAMESPACE}.{ARM_FEATURE}<name> feature")
