"""The admin API: experiments and their variants, changed at run time through the registry.

Every request needs ``Authorization: Bearer <BANDIT_ROUTER_ADMIN_TOKEN>`` (403 when
no token is configured, 401 with ``WWW-Authenticate: Bearer`` when it is missing or
wrong). Changes are written to the shared registry with optimistic concurrency
(retried when another replica wrote in between), then applied here before the
answer; other replicas apply them within about a second. Errors are
``{"error": code, "message": ..., "problems"?: [...]}``.

``/stats`` and ``/timeline`` are read-only but need the token too: they show how the
business metric moves. The dashboard (``routes.dashboard``) is a static page that calls
them with the token the user gives it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.config import ExperimentConfig, VariantConfig
from common.config_problems import problem_lines
from common.json_input import FINITE, InvalidJSONError, parse_json

from ..registry import RegistryConflictError, RegistryUnavailableError, RegistryView, config_json
from ..state import Route, RouterState
from ..stats import ExperimentStats, experiment_stats, read_reward_figures
from ..stats_source import StatsSource
from ..sync import RegistrySync
from ..timeline import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW,
    MAX_LIMIT,
    MAX_WINDOW,
    Timeline,
    build_timeline,
)

MAX_ADMIN_BODY_BYTES = 1 << 20
WRITE_ATTEMPTS = 5
REVISION_HEADER = "X-Bandit-Registry-Revision"


class AdminError(Exception):
    """An admin request refused: HTTP status, a short code, a message for people."""

    def __init__(self, status: int, code: str, message: str, *,
                 problems: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems = problems
        self.headers = headers


async def admin_error_response(request: Request, exc: Exception) -> Response:
    """The JSON error body (registered as the app's handler for ``AdminError``)."""
    assert isinstance(exc, AdminError)  # noqa: S101  (registered for AdminError only)
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if exc.problems is not None:
        body["problems"] = exc.problems
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


async def require_admin(request: Request) -> None:
    """The bearer-token check every admin route depends on."""
    token = _state(request).secrets.admin_token
    if token is None:
        raise AdminError(403, "admin_disabled",
                         "admin API disabled: set BANDIT_ROUTER_ADMIN_TOKEN")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # compare_digest takes as long whatever the prefix matched: no timing oracle.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        raise AdminError(401, "unauthorized", "missing or wrong bearer token",
                         headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/v1/experiments", tags=["admin"],
                   dependencies=[Depends(require_admin)])


@router.get("", summary="List every experiment in the registry")
async def list_experiments(request: Request) -> Response:
    """``{"revision": int, "experiments": [config, ...]}``, sorted by name."""
    view = await _read(request)
    configs = [_dump(view.experiments[name]) for name in sorted(view.experiments)]
    return _answer({"revision": view.revision, "experiments": configs}, view.revision)


@router.get("/{name}", summary="One experiment's configuration")
async def get_experiment(name: str, request: Request) -> Response:
    """The config as the YAML would write it (defaults filled in)."""
    view = await _read(request)
    return _answer(_dump(_existing(view, name)), view.revision)


@router.put("/{name}", summary="Create or replace an experiment")
async def put_experiment(name: str, request: Request) -> Response:
    """Body: an experiment as in the YAML (``name`` optional). 201 created, 200 replaced."""
    data = await _body(request)
    problems = []
    if data.setdefault("name", name) != name:
        problems.append(f"name: must be {name!r} (the experiment in the URL), "
                        f"got {data['name']!r}")
    config = _validate(data, problems)
    created = False

    async def edit(view: RegistryView) -> ExperimentConfig | None:
        nonlocal created
        created = name not in view.experiments
        for other, existing in view.experiments.items():
            if other != name and existing.endpoint == config.endpoint:
                raise AdminError(409, "conflict", f"endpoint {config.endpoint} is already "
                                                  f"routed by experiment {other!r}")
        return config

    revision = await _write(request, name, edit)
    return _answer(_dump(config), revision, 201 if created else 200)


@router.delete("/{name}", summary="Delete an experiment")
async def delete_experiment(name: str, request: Request) -> Response:
    """``{"deleted": name, "revision": int}``; its backends close once requests drain."""

    async def edit(view: RegistryView) -> ExperimentConfig | None:
        _existing(view, name)
        return None

    revision = await _write(request, name, edit)
    return _answer({"deleted": name, "revision": revision}, revision)


@router.post("/{name}/variants", status_code=201, summary="Add a variant while it runs")
async def add_variant(name: str, request: Request) -> Response:
    """Body ``{"name": ..., "url"?: ...}``; the other variants keep their statistics.
    Answers the experiment's new config."""
    try:
        variant = VariantConfig.model_validate(await _body(request))
    except ValidationError as exc:
        raise _invalid(problem_lines(exc)) from None
    updated: ExperimentConfig | None = None

    async def edit(view: RegistryView) -> ExperimentConfig | None:
        nonlocal updated
        current = _existing(view, name)
        if variant.name in current.arms:
            raise AdminError(409, "conflict", f"experiment {name!r} already has variant "
                                              f"{variant.name!r}")
        data = _dump(current)
        data["variants"].append(variant.model_dump(mode="json", by_alias=True))
        updated = _validate(data, [])
        return updated

    revision = await _write(request, name, edit)
    assert updated is not None  # noqa: S101  (set by edit, which _write ran)
    return _answer(_dump(updated), revision, 201)


@router.delete("/{name}/variants/{variant}", summary="Remove a variant while it runs")
async def remove_variant(name: str, variant: str, request: Request) -> Response:
    """The last variant cannot go (409). Answers the experiment's new config."""
    updated: ExperimentConfig | None = None

    async def edit(view: RegistryView) -> ExperimentConfig | None:
        nonlocal updated
        current = _existing(view, name)
        if variant not in current.arms:
            raise AdminError(404, "not_found", f"experiment {name!r} has no variant "
                                               f"{variant!r} (variants: "
                                               f"{', '.join(current.arms)})")
        if len(current.arms) == 1:
            raise AdminError(409, "conflict", f"cannot remove {variant!r}: it is the last "
                                              f"variant of {name!r} (delete the experiment)")
        data = _dump(current)
        data["variants"] = [v for v in data["variants"] if v["name"] != variant]
        weights = data["policy"].get("weights")
        if isinstance(weights, dict):  # static weights name variants: the gone one goes
            weights.pop(variant, None)
        updated = _validate(data, [])
        return updated

    revision = await _write(request, name, edit)
    assert updated is not None  # noqa: S101  (set by edit, which _write ran)
    return _answer(_dump(updated), revision)


@router.get("/{name}/stats", response_model=ExperimentStats,
            summary="Per-variant statistics, as this replica sees them")
async def stats(name: str, request: Request) -> Response:
    """Decisions (this replica's), traffic share, guardrail state and P(best) per variant;
    rewards joined, default rewards, mean reward with its 95% interval (from the reward
    learner's totals) and the last weights pushed (from the weight pusher's records)."""
    state = _state(request)
    route = _served(request, name)
    figures = await read_reward_figures(_stats_source(request), name)
    revision = _sync(request).revision
    body = experiment_stats(state, route, revision, figures).model_dump(mode="json")
    return _answer(body, revision)


@router.get("/{name}/timeline", response_model=Timeline,
            summary="The learner's series over time (what the dashboard draws)")
async def timeline(name: str, request: Request) -> Response:
    """Query: ``since`` (Unix seconds, exclusive: only newer points), ``limit`` (newest
    points kept, default 500, at most 2000), ``window`` (rewards per variant in the
    rolling mean, default 100). Points are oldest first."""
    route = _served(request, name)
    query = request.query_params
    since = _number(query, "since", float, None, 0.0, float("inf"))
    limit = int(_number(query, "limit", int, DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT)
    window = int(_number(query, "window", int, DEFAULT_WINDOW, 1, MAX_WINDOW) or DEFAULT_WINDOW)
    source = _stats_source(request)
    status, raw = "none", []
    if source is not None:
        try:
            raw, status = await source.read_timeline(name), "learner"
        except (RedisError, OSError) as exc:
            raise AdminError(503, "store_unavailable", f"the timeline of {name!r} could not "
                                                       f"be read: {exc}") from None
    body = build_timeline(name, route.experiment.policy.arms, raw, since=since, limit=limit,
                          window=window, status=status)
    return _answer(body.model_dump(mode="json"), _sync(request).revision)


# -- helpers -------------------------------------------------------------------------


def _state(request: Request) -> RouterState:
    state: RouterState = request.app.state.router
    return state


def _served(request: Request, name: str) -> Route:
    state = _state(request)
    route = state.routes.get(name)
    if route is None:
        raise AdminError(404, "not_found", f"experiment {name!r} is not served here "
                                           f"(known: {', '.join(sorted(state.routes)) or 'none'})")
    return route


def _stats_source(request: Request) -> StatsSource | None:
    source: StatsSource | None = getattr(request.app.state, "stats_source", None)
    return source


def _number(query: Any, key: str, kind: type[float] | type[int], default: float | None,
            low: float, high: float) -> float | None:
    """A numeric query parameter in [low, high]; 422 naming it otherwise."""
    text = query.get(key)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise AdminError(422, "invalid_query", f"{key}: must be a {kind.__name__} in "
                                               f"[{low:g}, {high:g}], got {text!r}",
                         problems=[f"{key}: must be a {kind.__name__} in [{low:g}, {high:g}]"])
    return value


def _sync(request: Request) -> RegistrySync:
    sync: RegistrySync = request.app.state.sync
    return sync


def _dump(config: ExperimentConfig) -> dict[str, Any]:
    # The canonical stored form, so what GET shows is what PUT takes back.
    data: dict[str, Any] = json.loads(config_json(config))
    return data


def _answer(body: Any, revision: int, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers={REVISION_HEADER: str(revision)})


def _existing(view: RegistryView, name: str) -> ExperimentConfig:
    config = view.experiments.get(name)
    if config is None:
        raise AdminError(404, "not_found", f"experiment {name!r} not found (known: "
                                           f"{', '.join(sorted(view.experiments)) or 'none'})")
    return config


def _invalid(problems: list[str]) -> AdminError:
    return AdminError(422, "invalid_config", "; ".join(problems), problems=problems)


def _validate(data: dict[str, Any], problems: list[str]) -> ExperimentConfig:
    """``data`` as a config; 422 listing every bad key path (and ``problems`` found before)."""
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise _invalid([*problems, *problem_lines(exc)]) from None
    if problems:
        raise _invalid(problems)
    return config


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_ADMIN_BODY_BYTES:
        raise AdminError(413, "too_large", f"body: {len(raw)} bytes exceeds "
                                           f"{MAX_ADMIN_BODY_BYTES}")
    try:
        data = parse_json(raw, FINITE)
    except InvalidJSONError as exc:
        raise AdminError(400, "invalid_json", f"body: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise AdminError(400, "invalid_json", "body: must be a JSON object")
    return data


async def _read(request: Request) -> RegistryView:
    try:
        return await _sync(request).registry.read()
    except RegistryUnavailableError as exc:
        raise AdminError(503, "registry_unavailable", str(exc)) from None


Edit = Callable[[RegistryView], Awaitable[ExperimentConfig | None]]


async def _write(request: Request, name: str, edit: Edit) -> int:
    """Read, ``edit`` (a config to put, None to delete), write if nobody wrote meanwhile;
    then apply here. Returns the registry's new revision."""
    sync = _sync(request)
    registry = sync.registry
    try:
        for _ in range(WRITE_ATTEMPTS):
            view = await registry.read()
            config = await edit(view)
            try:
                if config is None:
                    revision = await registry.delete(name, expect_revision=view.revision)
                    if revision is None:
                        raise AdminError(404, "not_found", f"experiment {name!r} not found")
                else:
                    revision = await registry.put(config, expect_revision=view.revision)
            except RegistryConflictError:
                continue  # another replica wrote in between: edit its result instead
            await sync.refresh()
            return revision
    except RegistryUnavailableError as exc:
        raise AdminError(503, "registry_unavailable", str(exc)) from None
    raise AdminError(409, "conflict", f"the registry kept changing during {WRITE_ATTEMPTS} "
                                      "attempts; retry")
