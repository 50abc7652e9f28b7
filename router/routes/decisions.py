"""``POST /v1/experiments/{experiment}/decisions``: a decision without an invocation.

For apps that call SageMaker themselves: they send the context (and optionally
an event id, a sticky unit id, an eligible subset), get the variant and every
probability back, and the decision is logged exactly like a routed one.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.json_input import FINITE, InvalidJSONError, parse_json

from ..auth import CallerAuth
from ..errors import RouterError, ValidationError, error_response
from ..events import decision_event
from ..state import RouterState
from ..validation import MAX_BODY_BYTES

MAX_DECISION_BODY_BYTES = 256 * 1024


class DecisionRequest(BaseModel):
    """The request body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context: dict[str, Any] | None = None
    event_id: str | None = Field(default=None, min_length=1, max_length=64)
    unit_id: str | None = Field(default=None, min_length=1, max_length=256)
    eligible: list[str] | None = Field(default=None, min_length=1, max_length=1000)


def _problems(error: PydanticValidationError) -> str:
    parts = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "body"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"{path}: {message}")
    return "; ".join(parts)


def parse_decision_request(raw: bytes) -> DecisionRequest:
    """The body as a ``DecisionRequest``; ``ValidationError`` naming every bad field."""
    if len(raw) > min(MAX_DECISION_BODY_BYTES, MAX_BODY_BYTES):
        raise ValidationError(f"body: {len(raw)} bytes exceeds {MAX_DECISION_BODY_BYTES}")
    try:
        data = parse_json(raw or b"{}", FINITE)
    except InvalidJSONError as exc:
        raise ValidationError(f"body: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValidationError("body: must be a JSON object")
    try:
        return DecisionRequest.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(_problems(exc)) from None


async def decide(request: Request) -> Response:
    """The route handler."""
    state: RouterState = request.app.state.router
    started = time.perf_counter()
    auth: CallerAuth | None = request.app.state.caller_auth
    try:
        raw = b""
        if auth is not None:  # the same SigV4 keys as the invocations
            call = auth.check_headers(request.scope)
            raw = await request.body()
            key = auth.check_body(call, request.scope, raw)
        route = state.by_experiment(request.path_params["experiment"])
        if auth is not None:
            auth.authorize(key, route.config.name)
        body = parse_decision_request(raw if auth is not None else await request.body())
        context = route.context.check(body.context) if body.context is not None else None
        decision = route.experiment.decide(context, now=state.clock(), eligible=body.eligible,
                                           unit_id=body.unit_id, event_id=body.event_id)
        event = decision_event(
            decision, endpoint=route.config.endpoint, variants=route.experiment.variants,
            context=context, eligible=body.eligible, timestamp=state.wall_clock(),
            source="decisions", outcome="decided", latency_ms=None)
        await state.store.append(event)
    except RouterError as error:
        state.metrics.rejected.labels("decisions", error.code).inc()
        return error_response(error)
    state.metrics.decided(route.config.name, decision.variant, False)
    state.metrics.decisions_route_seconds.observe(time.perf_counter() - started)
    return JSONResponse({
        "event_id": decision.event_id,
        "variant": decision.variant,
        "probability": decision.probability,
        "probabilities": decision.probabilities,
        "policy_version": decision.policy_version,
    })
