"""``POST /endpoints/{EndpointName}/invocations``: SageMaker's InvokeEndpoint, routed by the bandit.

Per request: verify the caller's signature when ``auth.mode`` is ``sigv4``
(``router.auth``), validate the headers as SageMaker does, extract the context,
decide (or honour ``TargetVariant``), invoke the variant, append the decision
event to the log, and only then answer: the model's body, or the variant's error
as SageMaker's error shape. The outcome goes to the guardrails and metrics right
after the answer is sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from .. import markers
from ..auth import CallerAuth
from ..backends import InvokeRequest, InvokeResult
from ..errors import (
    InternalFailure,
    ModelError,
    ModelNotReady,
    RouterError,
    ServiceUnavailable,
    ValidationError,
    error_response,
)
from ..events import decision_event
from ..experiments import Decision
from ..state import Route, RouterState
from ..validation import check_ascii_header, check_body_size, check_inference_id, check_name

logger = logging.getLogger(__name__)

MAX_UNIT_ID_LENGTH = 256


def outcome_of(error: RouterError | None) -> str:
    """The ``outcome`` label of an invocation that ended with ``error``."""
    if error is None:
        return "ok"
    if isinstance(error, ModelError):
        return "model_error"
    if isinstance(error, ServiceUnavailable):
        return "unavailable"
    if isinstance(error, ModelNotReady):
        return "not_ready"
    if isinstance(error, ValidationError):
        return "invalid"
    return "internal"


async def invoke_endpoint(request: Request) -> Response:
    """The Starlette route: what ``/docs`` shows, and what serves requests the raw ASGI
    fast path (``router.fast_path``) leaves to FastAPI."""
    return await serve_invocation(request.app.state.router, request.app.state.caller_auth,
                                  request.path_params["endpoint_name"], request.scope,
                                  request.headers, request.body)


async def serve_invocation(state: RouterState, auth: CallerAuth | None, endpoint_name: str,
                           scope: Scope, headers: Mapping[str, str],
                           read_body: Callable[[], Awaitable[bytes]]) -> Response:
    """One InvokeEndpoint call: ``auth`` verifies the caller (None: anyone may call),
    ``headers`` keyed in lower case, ``read_body`` reads the request body (and may raise
    ValidationError when it is too large)."""
    started = time.perf_counter()
    try:
        if auth is not None:
            read_body = await _authenticate(state, auth, endpoint_name, scope, headers,
                                            read_body)
        route, decision, invoke, context = await _decide(state, endpoint_name, headers,
                                                         read_body)
    except RouterError as error:
        state.metrics.rejected.labels("invocations", error.code).inc()
        return error_response(error)
    response = await _invoke_and_log(state, route, decision, invoke, context)
    state.metrics.invocations_route_seconds.observe(time.perf_counter() - started)
    return response


async def _authenticate(
    state: RouterState, auth: CallerAuth, endpoint_name: str, scope: Scope,
    headers: Mapping[str, str], read_body: Callable[[], Awaitable[bytes]],
) -> Callable[[], Awaitable[bytes]]:
    """Verify the caller's signature over the body and its key's allow list; the body,
    already read, for the rest of the call."""
    call = auth.check_headers(scope)  # an unsigned call is refused before its body is read
    body = await _read_checked(headers, read_body)
    key = auth.check_body(call, scope, body)
    auth.authorize(key, state.by_endpoint(endpoint_name).config.name)

    async def read_again() -> bytes:
        return body

    return read_again


async def _read_checked(headers: Mapping[str, str],
                        read_body: Callable[[], Awaitable[bytes]]) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit():
        check_body_size(int(declared))  # refuse before reading 6 MB+
    body = await read_body()
    check_body_size(len(body))
    return body


async def _decide(
    state: RouterState, endpoint_name: str, headers: Mapping[str, str],
    read_body: Callable[[], Awaitable[bytes]],
) -> tuple[Route, Decision, InvokeRequest, dict[str, object] | None]:
    route = state.by_endpoint(endpoint_name)
    body = await _read_checked(headers, read_body)
    content_type = headers.get("content-type")
    accept = headers.get("accept")
    attributes = headers.get("x-amzn-sagemaker-custom-attributes")
    for name, value in (("Content-Type", content_type), ("Accept", accept),
                        ("X-Amzn-SageMaker-Custom-Attributes", attributes)):
        if value is not None:
            check_ascii_header(name, value)
    inference_id = headers.get("x-amzn-sagemaker-inference-id")
    if inference_id is not None:
        check_inference_id(inference_id)
    unit_id = headers.get("x-bandit-unit-id")
    if unit_id is not None and not 1 <= len(unit_id) <= MAX_UNIT_ID_LENGTH:
        raise ValidationError(f"X-Bandit-Unit-Id: must be 1-{MAX_UNIT_ID_LENGTH} characters")
    target = headers.get("x-amzn-sagemaker-target-variant")
    context = route.context.extract(headers.get("x-bandit-context"), body, content_type)
    experiment = route.experiment
    if target is not None:
        decision = experiment.target(check_name("X-Amzn-SageMaker-Target-Variant", target),
                                     event_id=inference_id)
    else:
        decision = experiment.decide(context, now=state.clock(), unit_id=unit_id,
                                     event_id=inference_id)
    invoke = InvokeRequest(endpoint=route.config.endpoint, variant=decision.variant, body=body,
                           content_type=content_type, accept=accept,
                           custom_attributes=attributes, inference_id=inference_id)
    return route, decision, invoke, context


async def _invoke_and_log(
    state: RouterState, route: Route, decision: Decision, invoke: InvokeRequest,
    context: dict[str, object] | None,
) -> Response:
    started = time.perf_counter()
    result: InvokeResult | None = None
    failure: RouterError | None = None
    try:
        result = await route.backend.invoke(invoke)
    except RouterError as error:
        failure = error
    except Exception:
        logger.exception("backend failed for %s/%s", route.config.name, decision.variant)
        failure = InternalFailure("the router failed to invoke the variant")
    latency = time.perf_counter() - started
    outcome = outcome_of(failure)
    event = decision_event(
        decision, endpoint=route.config.endpoint, variants=route.experiment.variants,
        context=context, eligible=None, timestamp=state.wall_clock(), source="invocations",
        outcome=outcome, latency_ms=latency * 1000.0)
    headers = {"X-Bandit-Event-Id": decision.event_id,
               "X-Bandit-Probability": repr(decision.probability),
               "X-Bandit-Policy-Version": str(decision.policy_version)}
    try:
        await state.store.append(event)
    except RouterError as error:
        # Not logged, so not acknowledged: the caller retries and nothing is lost.
        response = error_response(error)
    else:
        if failure is not None or result is None:
            response = error_response(failure or InternalFailure("no result"))
            response.headers.update(headers)
        else:
            headers["X-Amzn-Invoked-Production-Variant"] = result.invoked_variant
            if result.custom_attributes is not None:
                headers["X-Amzn-SageMaker-Custom-Attributes"] = result.custom_attributes
            response = Response(content=result.body, media_type=result.content_type,
                                headers=headers)
    # Guardrails and metrics are not the caller's business: counted in the same task
    # right after the answer's last write (Starlette runs a response's background then).
    response.background = BackgroundTask(_account, state, route, decision, outcome, latency)
    return response


async def _account(state: RouterState, route: Route, decision: Decision, outcome: str,
                   latency: float) -> None:
    """Feed one invocation's outcome to the guardrails and the metrics."""
    name = route.config.name
    if outcome in ("ok", "model_error", "unavailable", "not_ready"):
        # Only the variant's own failures count against it, not the caller's.
        trip = route.experiment.record_outcome(decision.variant, outcome == "ok", latency,
                                               state.clock())
        if trip is not None:
            state.metrics.trips.labels(name, trip.variant).inc()
            logger.warning("guardrail tripped for %s/%s: %s", name, trip.variant, trip.reason)
            await markers.record(state.markers, name, markers.Marker(
                t=state.wall_clock(), kind="guardrail_trip", variant=trip.variant,
                label=f"{trip.variant} suspended: {trip.reason}"))
    state.metrics.decided(name, decision.variant, decision.targeted)
    state.metrics.invoked(name, decision.variant, outcome, latency)
