"""Operations: ``/healthz`` (process up), ``/readyz`` (can serve), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..state import RouterState
from ..store import StoreStatus


async def healthz(request: Request) -> Response:
    """The process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when experiments are served and decisions can be recorded (in the store or
    the spool); otherwise 503 with ``reason`` saying why."""
    state: RouterState = request.app.state.router
    store = state.store.status()
    state.metrics.spooling.set(1.0 if store.spooling else 0.0)
    state.metrics.spooled.set(store.spooled)
    reason = _not_ready_because(state, store)
    body: dict[str, Any] = {"status": "ready" if reason is None else "not ready"}
    if reason is not None:
        body["reason"] = reason
    body |= {
        "store": {"reachable": store.reachable, "spooling": store.spooling,
                  "spooled": store.spooled, "accepting": store.accepting,
                  "detail": store.detail},
        "experiments": {name: {"policy_version": route.experiment.policy.version,
                               "snapshot_version": route.snapshot_version,
                               "variants": list(route.experiment.variants)}
                        for name, route in state.routes.items()},
    }
    sync = getattr(request.app.state, "sync", None)
    if sync is not None:
        # Informational: an unreachable registry leaves the router serving what it has.
        body["registry"] = sync.status()
    return JSONResponse(body, status_code=200 if reason is None else 503)


def _not_ready_because(state: RouterState, store: StoreStatus) -> str | None:
    if not state.routes:
        return "no experiment is served"
    if not store.accepting:
        return store.detail
    if not (store.reachable or store.spooling):
        return f"decision log unavailable: {store.detail}"
    return None


async def metrics(request: Request) -> Response:
    """Prometheus exposition of this router's registry."""
    state: RouterState = request.app.state.router
    now = state.clock()
    for name, route in state.routes.items():
        guardrails = route.experiment.guardrails
        if guardrails is not None:
            for variant, health in guardrails.states(now).items():
                state.metrics.guardrail_state(name, variant, health.value)
    store = state.store.status()
    state.metrics.spooling.set(1.0 if store.spooling else 0.0)
    state.metrics.spooled.set(store.spooled)
    body, content_type = state.metrics.render()
    return Response(content=body, media_type=content_type)
