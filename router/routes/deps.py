"""FastAPI dependencies of the routes FastAPI builds (the admin API), named as types.

    async def route(name: str, state: StateDep, sync: SyncDep) -> Response: ...

``require_admin`` is the bearer-token check the admin router depends on; the
JSON body of a write comes from ``JsonObjectDep``. Refusals are ``ApiError``
(``common.api_errors``), which the app answers as ``{error, message, problems?}``.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import Request

from common.api_errors import ApiError
from common.json_input import FINITE, InvalidJSONError, parse_json

from ..state import RouterState
from ..stats_source import StatsSource
from ..sync import RegistrySync

MAX_ADMIN_BODY_BYTES = 1 << 20


def router_state(request: Request) -> RouterState:
    """The app's router state."""
    state: RouterState = request.app.state.router
    return state


def registry_sync(request: Request) -> RegistrySync:
    """The app's registry sync (its registry, its revision, ``edit``)."""
    sync: RegistrySync = request.app.state.sync
    return sync


def stats_source(request: Request) -> StatsSource | None:
    """Where the learner's figures are read; None when there is nowhere."""
    source: StatsSource | None = getattr(request.app.state, "stats_source", None)
    return source


StateDep = Annotated[RouterState, Depends(router_state)]
SyncDep = Annotated[RegistrySync, Depends(registry_sync)]
StatsSourceDep = Annotated[StatsSource | None, Depends(stats_source)]


async def require_admin(request: Request, state: StateDep) -> None:
    """``Authorization: Bearer <BANDIT_ROUTER_ADMIN_TOKEN>``: 403 when no token is
    configured, 401 with ``WWW-Authenticate: Bearer`` when it is missing or wrong."""
    token = state.secrets.admin_token
    if token is None:
        raise ApiError(403, "admin_disabled", "admin API disabled: set BANDIT_ROUTER_ADMIN_TOKEN")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest takes as long whatever the prefix matched: no timing oracle.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong bearer token",
                       headers={"WWW-Authenticate": "Bearer"})


async def json_object_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 413 past ``MAX_ADMIN_BODY_BYTES``, 400 when it is not
    JSON (NaN and Infinity included) or not an object."""
    raw = await request.body()
    if len(raw) > MAX_ADMIN_BODY_BYTES:
        raise ApiError(413, "too_large", f"body: {len(raw)} bytes exceeds {MAX_ADMIN_BODY_BYTES}")
    try:
        data = parse_json(raw, FINITE)
    except InvalidJSONError as exc:
        raise ApiError(400, "invalid_json", f"body: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "body: must be a JSON object")
    return data


JsonObjectDep = Annotated[dict[str, Any], Depends(json_object_body)]
