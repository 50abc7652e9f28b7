"""The router's ASGI app, built by a factory from validated settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from common.api_errors import ApiError, api_error_response
from common.config import Secrets, Settings

from .auth import CallerAuth
from .errors import InternalFailure, error_response
from .fast_path import RouterApp
from .markers import open_marker_log
from .openapi import document_routes
from .registry import Registry, open_registry
from .routes import admin, dashboard, decisions, invocations, ops
from .state import BackendFactory, RouterState, build_state
from .stats_source import RedisStatsSource, StatsSource, open_stats_source
from .store import DecisionStore, open_store
from .sync import POLL_S, RegistrySync

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    store: DecisionStore | None = None,
    secrets: Secrets | None = None,
    backend_factory: BackendFactory | None = None,
    environ: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    registry_poll_s: float = POLL_S,
    stats_source: StatsSource | None = None,
) -> FastAPI:
    """A router for ``settings``; ``store``, ``backend_factory`` and ``registry`` override
    the defaults (the registry defaults to the one at ``settings.store``). ``stats_source``
    is where the reward learner's figures are read (default: the Redis at
    ``settings.store``; none on ``memory://`` unless the embedded ingester passes its own).

    The config file's experiments are served from the start; once the registry answers,
    it is seeded with those it lacks and becomes the source of truth (``router.sync``).
    The invocations route is served as raw ASGI ahead of FastAPI (``router.fast_path``).
    Callers of the invocations and decisions routes are verified by ``settings.auth``
    (``router.auth``); a ``ValueError`` when its keys cannot be used.
    """
    if store is None:
        log_settings = settings.decision_log
        store = open_store(settings.store, spool_path=log_settings.spool_path,
                           spool_max_bytes=log_settings.spool_max_bytes,
                           stream_maxlen=log_settings.stream_maxlen)
    state = build_state(settings, store, secrets=secrets, backend_factory=backend_factory,
                        environ=environ)
    # Built before anything is started: keys that cannot be used stop the start-up here.
    caller_auth = CallerAuth.from_settings(settings.auth, state.secrets,
                                           wall_clock=lambda: state.wall_clock())
    sync = RegistrySync(state, registry if registry is not None else open_registry(settings.store),
                        poll_s=registry_poll_s)
    if stats_source is None:
        stats_source = open_stats_source(settings.store)
    state.markers = markers = open_marker_log(settings.store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.store.start()
        for backend in state.backends:
            await backend.start()
        await sync.start()
        try:
            yield
        finally:
            await sync.close()
            for backend in state.backends:
                await backend.close()
            await state.store.close()
            if isinstance(stats_source, RedisStatsSource):
                await stats_source.close()
            await markers.close()

    app = RouterApp(title="bandit-router", version="0.1.0", lifespan=lifespan)
    app.router_state = state
    app.caller_auth = caller_auth
    app.state.router = state
    app.state.caller_auth = caller_auth
    app.state.sync = sync
    app.state.stats_source = stats_source
    app.add_route("/endpoints/{endpoint_name}/invocations", invocations.invoke_endpoint,
                  methods=["POST"], include_in_schema=True)
    app.add_route("/v1/experiments/{experiment}/decisions", decisions.decide,
                  methods=["POST"])
    app.add_route("/healthz", ops.healthz, methods=["GET"])
    app.add_route("/readyz", ops.readyz, methods=["GET"])
    app.add_route("/metrics", ops.metrics, methods=["GET"])
    app.add_route("/dashboard", dashboard.dashboard, methods=["GET"])
    app.include_router(admin.router)
    app.add_exception_handler(ApiError, api_error_response)
    app.add_exception_handler(Exception, _internal_failure)
    document_routes(app)
    return app


async def _internal_failure(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: logged with its traceback, answered in SageMaker's shape.
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(InternalFailure("internal failure; see the router's log"))


def router_state(app: FastAPI) -> RouterState:
    """The state behind an app built by ``create_app`` (for tests and the CLI)."""
    state: RouterState = app.state.router
    return state
