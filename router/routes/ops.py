"""Operations: ``/healthz`` (process up), ``/readyz`` (can serve), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..state import RouterState


async def healthz(request: Request) -> Response:
    """The process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready when every experiment has a policy and decisions can be logged (or spooled)."""
    state: RouterState = request.app.state.router
    store = state.store.status()
    state.metrics.spooling.set(1.0 if store.spooling else 0.0)
    state.metrics.spooled.set(store.spooled)
    ready = bool(state.routes) and (store.reachable or store.spooling)
    body = {
        "status": "ready" if ready else "not ready",
        "store": {"reachable": store.reachable, "spooling": store.spooling,
                  "spooled": store.spooled, "detail": store.detail},
        "experiments": {name: {"policy_version": route.experiment.policy.version,
                               "snapshot_version": route.snapshot_version,
                               "variants": list(route.experiment.variants)}
                        for name, route in state.routes.items()},
    }
    sync = getattr(request.app.state, "sync", None)
    if sync is not None:
        # Informational: an unreachable registry leaves the router serving what it has.
        body["registry"] = sync.status()
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus exposition of this router's registry."""
    state: RouterState = request.app.state.router
    now = state.clock()
    for name, route in state.routes.items():
        guardrails = route.experiment.guardrails
        if guardrails is not None:
            for variant, health in guardrails.states(now).items():
                value = {"healthy": 0.0, "probing": 0.5, "suspended": 1.0}[health.value]
                state.metrics.suspended.labels(name, variant).set(value)
    store = state.store.status()
    state.metrics.spooling.set(1.0 if store.spooling else 0.0)
    state.metrics.spooled.set(store.spooled)
    body, content_type = state.metrics.render()
    return Response(content=body, media_type=content_type)
