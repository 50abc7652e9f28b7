"""The decision event: what the router writes to the decision log for every decision.

One flat JSON object per decision; the ingester joins it to rewards by
``event_id`` and turns joined events into DSJSON. Fields:

| field | meaning |
| --- | --- |
| ``event_id`` | the caller's ``InferenceId`` / ``event_id``, or a fresh UUID4 hex |
| ``timestamp`` | Unix seconds (float) when the decision was made |
| ``experiment``, ``endpoint`` | where it was made |
| ``policy_version`` | the snapshot version that made it |
| ``variants`` | the experiment's variants in policy order (DSJSON's ``_multi`` order) |
| ``eligible`` | the caller's subset, or null for all |
| ``context`` | the features the policy saw (null when none) |
| ``variant``, ``probability`` | the variant served and the probability it was sampled with |
| ``probabilities`` | every offered variant's probability, as served (after guardrails) |
| ``targeted`` | true when the caller chose the variant (``TargetVariant``): probability 1 |
| ``unit_id`` | the sticky unit, or null |
| ``source`` | ``invocations`` or ``decisions`` (decision-only API) |
| ``outcome`` | ``ok``, ``model_error``, ``unavailable``, ``not_ready``, ``invalid``, |
| | ``internal``, or ``decided`` (decision-only) |
| ``latency_ms`` | the variant's answer time, null for decision-only |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bandit import Context

from .experiments import Decision

EVENT_FORMAT = 1


def decision_event(
    decision: Decision,
    *,
    endpoint: str,
    variants: Sequence[str],
    context: Context | None,
    eligible: Sequence[str] | None,
    timestamp: float,
    source: str,
    outcome: str,
    latency_ms: float | None,
) -> dict[str, Any]:
    """The log record of ``decision`` (JSON-ready)."""
    return {
        "format": EVENT_FORMAT,
        "event_id": decision.event_id,
        "timestamp": timestamp,
        "experiment": decision.experiment,
        "endpoint": endpoint,
        "policy_version": decision.policy_version,
        "variants": list(variants),
        "eligible": None if eligible is None else list(eligible),
        "context": context,
        "variant": decision.variant,
        "probability": decision.probability,
        "probabilities": decision.probabilities,
        "targeted": decision.targeted,
        "unit_id": decision.unit_id,
        "source": source,
        "outcome": outcome,
        "latency_ms": None if latency_ms is None else round(latency_ms, 3),
    }
