"""The admin API: experiments and their variants, changed at run time through the registry.

Every request needs ``Authorization: Bearer <BANDIT_ROUTER_ADMIN_TOKEN>`` (403 when
no token is configured, 401 with ``WWW-Authenticate: Bearer`` when it is missing or
wrong; ``routes.deps.require_admin``). Changes go through ``RegistrySync.edit``:
written to the shared registry with optimistic concurrency (retried when another
replica wrote in between), then applied here before the answer; other replicas
apply them within about a second. Errors are ``common.api_errors.ApiError``:
``{"error": code, "message": ..., "problems"?: [...]}``.

``/stats`` and ``/timeline`` are read-only but need the token too: they show how the
business metric moves. The dashboard (``routes.dashboard``) is a static page that calls
them with the token the user gives it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import ValidationError as PydanticValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common import redis_errors
from common.api_errors import ApiError
from common.config import ExperimentConfig, VariantConfig
from common.config_problems import problem_lines

from .. import markers
from ..errors import RegistryConflictError, RegistryUnavailableError
from ..markers import push_markers
from ..registry import RegistryView, config_json
from ..state import Route, RouterState
from ..stats import ExperimentStats, experiment_stats, read_reward_figures
from ..sync import Change, RegistrySync
from ..timeline import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW,
    MAX_LIMIT,
    MAX_WINDOW,
    Timeline,
    build_timeline,
)
from .deps import JsonObjectDep, StateDep, StatsSourceDep, SyncDep, require_admin

REVISION_HEADER = "X-Bandit-Registry-Revision"


router = APIRouter(prefix="/v1/experiments", tags=["admin"],
                   dependencies=[Depends(require_admin)])


@router.get("", summary="List every experiment in the registry")
async def list_experiments(sync: SyncDep) -> Response:
    """``{"revision": int, "experiments": [config, ...]}``, sorted by name."""
    view = await _read(sync)
    configs = [_dump(view.experiments[name]) for name in sorted(view.experiments)]
    return _answer({"revision": view.revision, "experiments": configs}, view.revision)


@router.get("/{name}", summary="One experiment's configuration")
async def get_experiment(name: str, sync: SyncDep) -> Response:
    """The config as the YAML would write it (defaults filled in)."""
    view = await _read(sync)
    return _answer(_dump(_existing(view, name)), view.revision)


@router.put("/{name}", summary="Create or replace an experiment")
async def put_experiment(name: str, data: JsonObjectDep, sync: SyncDep,
                         state: StateDep) -> Response:
    """Body: an experiment as in the YAML (``name`` optional). 201 created, 200 replaced."""
    problems = []
    if data.setdefault("name", name) != name:
        problems.append(f"name: must be {name!r} (the experiment in the URL), "
                        f"got {data['name']!r}")
    config = _validate(data, problems)
    created = False

    async def change(view: RegistryView) -> ExperimentConfig | None:
        nonlocal created
        created = name not in view.experiments
        for other, existing in view.experiments.items():
            if other != name and existing.endpoint == config.endpoint:
                raise ApiError(409, "conflict", f"endpoint {config.endpoint} is already "
                                                f"routed by experiment {other!r}")
        return config

    revision = await _edit(sync, name, change)
    policy = dict(config.policy).get("type", "?")
    await _mark(state, name, f"config {'created' if created else 'replaced'} "
                             f"(policy {policy}, variants {', '.join(config.arms)})")
    return _answer(_dump(config), revision, 201 if created else 200)


@router.delete("/{name}", summary="Delete an experiment")
async def delete_experiment(name: str, sync: SyncDep) -> Response:
    """``{"deleted": name, "revision": int}``; its backends close once requests drain."""

    async def change(view: RegistryView) -> ExperimentConfig | None:
        _existing(view, name)
        return None

    revision = await _edit(sync, name, change)
    return _answer({"deleted": name, "revision": revision}, revision)


@router.post("/{name}/variants", status_code=201, summary="Add a variant while it runs")
async def add_variant(name: str, data: JsonObjectDep, sync: SyncDep,
                      state: StateDep) -> Response:
    """Body ``{"name": ..., "url"?: ...}``; the other variants keep their statistics.
    Answers the experiment's new config."""
    try:
        variant = VariantConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise _invalid(problem_lines(exc)) from None
    updated: ExperimentConfig | None = None

    async def change(view: RegistryView) -> ExperimentConfig | None:
        nonlocal updated
        current = _existing(view, name)
        if variant.name in current.arms:
            raise ApiError(409, "conflict", f"experiment {name!r} already has variant "
                                            f"{variant.name!r}")
        config = _dump(current)
        config["variants"].append(variant.model_dump(mode="json", by_alias=True))
        updated = _validate(config, [])
        return updated

    revision = await _edit(sync, name, change)
    assert updated is not None  # noqa: S101  (set by change, which edit ran)
    await _mark(state, name, f"variant {variant.name} added", variant.name)
    return _answer(_dump(updated), revision, 201)


@router.delete("/{name}/variants/{variant}", summary="Remove a variant while it runs")
async def remove_variant(name: str, variant: str, sync: SyncDep,
                         state: StateDep) -> Response:
    """The last variant cannot go (409). Answers the experiment's new config."""
    updated: ExperimentConfig | None = None

    async def change(view: RegistryView) -> ExperimentConfig | None:
        nonlocal updated
        current = _existing(view, name)
        if variant not in current.arms:
            raise ApiError(404, "not_found", f"experiment {name!r} has no variant "
                                             f"{variant!r} (variants: "
                                             f"{', '.join(current.arms)})")
        if len(current.arms) == 1:
            raise ApiError(409, "conflict", f"cannot remove {variant!r}: it is the last "
                                            f"variant of {name!r} (delete the experiment)")
        config = _dump(current)
        config["variants"] = [v for v in config["variants"] if v["name"] != variant]
        weights = config["policy"].get("weights")
        if isinstance(weights, dict):  # static weights name variants: the gone one goes
            weights.pop(variant, None)
        updated = _validate(config, [])
        return updated

    revision = await _edit(sync, name, change)
    assert updated is not None  # noqa: S101  (set by change, which edit ran)
    await _mark(state, name, f"variant {variant} removed", variant)
    return _answer(_dump(updated), revision)


@router.get("/{name}/stats", response_model=ExperimentStats,
            summary="Per-variant statistics, as this replica sees them")
async def stats(name: str, request: Request, state: StateDep, sync: SyncDep,
                source: StatsSourceDep) -> Response:
    """Decisions (this replica's), traffic share, guardrail state and window figures and
    P(best) per variant; realised share against the mean logged probability, rewards
    joined, default and failed ones, mean reward with its 95% interval, uplift against
    the ``control`` query parameter (a variant; default: the first) with its interval
    and expected loss (from the reward learner's totals, all replicas); late rewards
    (the joiner's), the sample-ratio check, the warnings, and the last weights pushed."""
    route = _served(state, name)
    control = request.query_params.get("control")
    arms = route.experiment.policy.arms
    if control is not None and control not in arms:
        raise ApiError(422, "invalid_query", f"control: must be a variant of {name!r} "
                                             f"({', '.join(arms)}), got {control!r}",
                       problems=[f"control: must be one of {', '.join(arms)}"])
    figures = await read_reward_figures(source, name)
    revision = sync.revision
    body = experiment_stats(state, route, revision, figures, control).model_dump(mode="json")
    return _answer(body, revision)


@router.get("/{name}/timeline", response_model=Timeline,
            summary="The learner's series over time (what the dashboard draws)")
async def timeline(name: str, request: Request, state: StateDep, sync: SyncDep,
                   source: StatsSourceDep) -> Response:
    """Query: ``since`` (Unix seconds, exclusive: only newer points), ``limit`` (newest
    points kept, default 500, at most 2000), ``window`` (rewards per variant in the
    rolling mean, default 100). Points are oldest first; ``markers`` (weight pushes,
    guardrail trips, config changes) are all of them, whatever ``since``."""
    route = _served(state, name)
    query = request.query_params
    since = _number(query, "since", float, None, 0.0, float("inf"))
    limit = int(_number(query, "limit", int, DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT)
    window = int(_number(query, "window", int, DEFAULT_WINDOW, 1, MAX_WINDOW) or DEFAULT_WINDOW)
    status, raw, marks = "none", [], []
    try:
        if source is not None:
            raw, status = await source.read_timeline(name), "learner"
            marks = push_markers(await source.read_pushes(name))
        if state.markers is not None:
            marks += await state.markers.read(name)
    except (RedisError, OSError) as exc:
        redis_errors.count("admin")
        raise ApiError(503, "store_unavailable", f"the timeline of {name!r} could not "
                                                 f"be read: {exc}") from None
    body = build_timeline(name, route.experiment.policy.arms, raw, since=since, limit=limit,
                          window=window, status=status, markers=marks)
    return _answer(body.model_dump(mode="json"), sync.revision)


# -- helpers -------------------------------------------------------------------------


async def _mark(state: RouterState, name: str, label: str, variant: str | None = None) -> None:
    """A ``policy_change`` marker on the dashboard's time axis (never fails the change)."""
    await markers.record(state.markers, name, markers.Marker(
        t=state.wall_clock(), kind="policy_change", label=label, variant=variant))


def _served(state: RouterState, name: str) -> Route:
    route = state.routes.get(name)
    if route is None:
        raise ApiError(404, "not_found", f"experiment {name!r} is not served here "
                                         f"(known: {', '.join(sorted(state.routes)) or 'none'})")
    return route


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
        raise ApiError(422, "invalid_query", f"{key}: must be a {kind.__name__} in "
                                             f"[{low:g}, {high:g}], got {text!r}",
                       problems=[f"{key}: must be a {kind.__name__} in [{low:g}, {high:g}]"])
    return value


def _dump(config: ExperimentConfig) -> dict[str, Any]:
    # The canonical stored form, so what GET shows is what PUT takes back.
    data: dict[str, Any] = json.loads(config_json(config))
    return data


def _answer(body: Any, revision: int, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status, headers={REVISION_HEADER: str(revision)})


def _existing(view: RegistryView, name: str) -> ExperimentConfig:
    config = view.experiments.get(name)
    if config is None:
        raise ApiError(404, "not_found", f"experiment {name!r} not found (known: "
                                         f"{', '.join(sorted(view.experiments)) or 'none'})")
    return config


def _invalid(problems: list[str]) -> ApiError:
    return ApiError(422, "invalid_config", "; ".join(problems), problems=problems)


def _validate(data: dict[str, Any], problems: list[str]) -> ExperimentConfig:
    """``data`` as a config; 422 listing every bad key path (and ``problems`` found before)."""
    try:
        config = ExperimentConfig.model_validate(data)
    except PydanticValidationError as exc:
        raise _invalid([*problems, *problem_lines(exc)]) from None
    if problems:
        raise _invalid(problems)
    return config


async def _read(sync: RegistrySync) -> RegistryView:
    try:
        return await sync.registry.read()
    except RegistryUnavailableError as exc:
        raise ApiError(503, "registry_unavailable", str(exc)) from None


async def _edit(sync: RegistrySync, name: str, change: Change) -> int:
    """``sync.edit``, its failures as the admin API answers them."""
    try:
        revision = await sync.edit(name, change)
    except RegistryUnavailableError as exc:
        raise ApiError(503, "registry_unavailable", str(exc)) from None
    except RegistryConflictError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    if revision is None:
        raise ApiError(404, "not_found", f"experiment {name!r} not found")
    return revision
