"""``POST /v1/rewards``: the signed reward webhook.

Request: ``{"event_id": str, "reward": number}`` or ``{"rewards": [{...}, ...]}``; an
item may also carry ``"experiment"`` and ``"reward_id"`` (``null`` counts as absent)
and nothing else. Limits: a body of at most ``max_body_bytes`` (1 MiB) and at most
``max_batch`` (1000) rewards, else 413.

- ``event_id``: a non-empty string of at most 64 printable characters;
- ``reward``: a finite JSON number (``true``, ``NaN``, ``Infinity``, ``1e400`` refused);
- ``experiment``: a configured experiment; the reward must then lie in its reward
  ``[min, max]``. Without it the reward must lie in the range of some configured
  experiment, and the joiner checks it again against the range of the decision's
  experiment when it pairs them (a reward out of that range is dropped there and
  counted: ``reward_ingest.drops``);
- ``reward_id``: the sender's idempotency key, at most 128 printable characters.
  Without it a reward is identified by its event id and value, so a retry (re-signed
  or not) is recognised, and equal rewards for one event must carry distinct ids to
  count apart (``reward_ingest.rewards``).

Answers (JSON bodies):

    202 {"accepted": n, "duplicates": m}
    400 {"error": "invalid_json", "message": ...}                body is not JSON
    401 {"error": "unauthorized", "message": ...}                missing, bad or stale signature
    413 {"error": "payload_too_large", "message": ...}           over a limit: split the batch
    422 {"error": "invalid_reward", "message": "a; b", "problems": ["a", "b"]}
    503 {"error": "unavailable", "message": ...}                 store down: retry (Retry-After)

A 503 means "not known to be recorded": the store did not confirm the write in time,
and a write whose reply timed out may still land. Retrying is always safe: the
retry is recognised as the same rewards (answered as duplicates if they landed).

A 422 names every bad field by path (``rewards[3].reward: must be a finite number``)
and rejects the whole batch: nothing is recorded, so fixing the batch and sending it
again never doubles the good items. With webhook secrets configured every request
must be signed (``reward_ingest.signing``); with none, requests are accepted
unsigned and a warning is logged once. The route is plain Starlette: it parses the
raw body itself (the signature covers the raw bytes, and the 422 shape is ours).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from common.api_errors import ApiError
from common.build_info import register_build_info
from common.config import RewardConfig, Secrets, Settings
from common.json_input import InvalidJSONError, parse_json
from common.redis_errors import RedisErrors
from reward_ingest.drops import DroppedRewards
from reward_ingest.errors import DeliveryError, RewardStoreUnavailableError, SignatureError
from reward_ingest.loop_metrics import LoopMetrics
from reward_ingest.rewards import Reward, RewardStore, default_reward_id
from reward_ingest.signing import DEFAULT_TOLERANCE_S, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

__all__ = ["IngestMetrics", "RewardWebhook", "create_webhook_app", "mount_rewards"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_BATCH = 1000
MAX_EVENT_ID = 64
MAX_REWARD_ID = 128
_ITEM_KEYS = ("event_id", "reward", "experiment", "reward_id")
_OUTCOMES = ("accepted", "duplicate", "rejected")
_STATUSES = ("202", "400", "401", "413", "422", "503")

Clock = Callable[[], float]
RewardConfigs = Mapping[str, RewardConfig]
"""Experiment name -> its ``reward`` section (a live mapping works too)."""
_RANGES_NAMED = 5


class IngestMetrics:
    """The ingester's Prometheus metrics, in ``registry`` (one per app unless shared): the
    webhook's counters, ``dropped`` (the joiner's counts, ``reward_ingest.drops``) and
    ``loop`` (lags, pushes, archive: ``reward_ingest.loop_metrics``). A registry of its
    own also gets ``bandit_build_info`` and ``bandit_redis_errors_total``; a shared one
    (the router's, on ``memory://``) has them already."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            register_build_info(registry)
            registry.register(RedisErrors())
        self.registry = registry
        rewards = Counter("bandit_ingest_rewards_total", "Rewards delivered to the webhook, by "
                          "outcome (a delivery refused before its items were counted counts "
                          "as one rejected)", ("outcome",), registry=self.registry)
        requests = Counter("bandit_ingest_webhook_requests_total", "Webhook requests by "
                           "HTTP status", ("status",), registry=self.registry)
        self.rewards = {outcome: rewards.labels(outcome) for outcome in _OUTCOMES}
        self.requests = {status: requests.labels(status) for status in _STATUSES}
        self.dropped = DroppedRewards()
        self.registry.register(self.dropped)
        self.loop = LoopMetrics(self.registry)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RewardWebhook:
    """The ``POST /v1/rewards`` endpoint over ``store``; mount it with ``mount_rewards``.

    ``reward_configs`` gives every experiment's reward range by name (read per
    request, so a live mapping works). Whoever mounts it starts and closes ``store``.
    ``clock`` is wall time in Unix seconds: signatures' freshness and ``received_at``.
    """

    def __init__(self, store: RewardStore, *, secrets: Secrets, reward_configs: RewardConfigs,
                 clock: Clock = time.time, metrics: IngestMetrics | None = None,
                 tolerance_s: float = DEFAULT_TOLERANCE_S, max_body_bytes: int = MAX_BODY_BYTES,
                 max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else IngestMetrics()
        self._secrets = secrets.webhook_secrets
        self._reward_configs = reward_configs
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._max_body_bytes = max_body_bytes
        self._max_batch = max_batch
        if not self._secrets:
            logger.warning("event=webhook_unsigned BANDIT_ROUTER_WEBHOOK_SECRET is not set: "
                        "POST /v1/rewards accepts unsigned rewards from anyone who can reach it")

    async def endpoint(self, request: Request) -> Response:
        """Handle one delivery (the Starlette endpoint)."""
        try:
            accepted, duplicates = await self._handle(request)
        except DeliveryError as refused:
            self.metrics.rewards["rejected"].inc(refused.rejected)
            self.metrics.requests[str(refused.status)].inc()
            level = logging.WARNING if refused.status in (401, 503) else logging.INFO
            logger.log(level, "event=reward_refused status=%d error=%s client=%s reason=%r",
                    refused.status, refused.code, _client(request), refused.message[:300])
            return refused.response()
        self.metrics.rewards["accepted"].inc(accepted)
        self.metrics.rewards["duplicate"].inc(duplicates)
        self.metrics.requests["202"].inc()
        return JSONResponse({"accepted": accepted, "duplicates": duplicates}, status_code=202)

    async def _handle(self, request: Request) -> tuple[int, int]:
        raw = await _read_body(request, self._max_body_bytes)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if self._secrets:
            try:
                verify(self._secrets, timestamp, request.headers.get(SIGNATURE_HEADER), raw,
                       now=self._clock(), tolerance_s=self._tolerance_s)
            except SignatureError as exc:
                raise DeliveryError(401, "unauthorized", exc.message) from None
        items = _items(_parse_json(raw), self._max_batch)
        rewards: list[Reward] = []
        problems: list[str] = []
        received_at = self._clock()
        ranges = _merged_ranges(self._reward_configs.values())
        for path, item in items:
            reward = _reward(path, item, self._reward_configs, ranges, received_at, problems)
            if reward is not None:
                rewards.append(reward)
        if problems:
            raise DeliveryError(422, "invalid_reward", "; ".join(problems),
                                rejected=len(items), problems=problems)
        try:
            return await self.store.add(rewards)
        except RewardStoreUnavailableError as exc:
            raise DeliveryError(503, "unavailable", exc.message, rejected=len(items)) from None


def mount_rewards(app: Starlette, webhook: RewardWebhook, path: str = "/v1/rewards") -> None:
    """Serve ``webhook`` at ``POST path`` in ``app`` (the router's, or the standalone one)."""
    app.add_route(path, webhook.endpoint, methods=["POST"])


def create_webhook_app(settings: Settings, store: RewardStore, secrets: Secrets,
                       clock: Clock = time.time, *, metrics: IngestMetrics | None = None,
                       tolerance_s: float = DEFAULT_TOLERANCE_S) -> Starlette:
    """A standalone app: ``POST /v1/rewards``, ``GET /healthz``, ``GET /metrics``.

    Its lifespan starts and closes ``store``; experiments' reward ranges come from
    ``settings`` as loaded.
    """
    configs = {experiment.name: experiment.reward for experiment in settings.experiments}
    webhook = RewardWebhook(store, secrets=secrets, reward_configs=configs, clock=clock,
                            metrics=metrics, tolerance_s=tolerance_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.start()
        try:
            yield
        finally:
            await store.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = webhook.metrics.render()
        return Response(body, media_type=content_type)

    async def internal(request: Request, exc: Exception) -> Response:
        logger.exception("event=webhook_error path=%s", request.url.path, exc_info=exc)
        return ApiError(500, "internal", "internal error; see the log").response()

    app = Starlette(lifespan=lifespan, exception_handlers={Exception: internal})
    mount_rewards(app, webhook)
    app.add_route("/healthz", healthz, methods=["GET"])
    app.add_route("/metrics", metrics_endpoint, methods=["GET"])
    app.state.webhook = webhook
    return app




async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes."""
    too_large = DeliveryError(413, "payload_too_large", f"body exceeds {limit} bytes; "
                                                        "split the rewards into smaller batches")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


class _NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to, so the field can be named."""

    def __init__(self, token: str) -> None:
        self.token = token


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A signed body must mean one thing to every parser: a repeated key does not.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:40]!r}")
        obj[key] = value
    return obj


# parse_int=float: a 5000-digit integer becomes inf (refused as not finite) instead of
# tripping Python's int-conversion limit.
_DECODER = json.JSONDecoder(parse_constant=_NonFinite, parse_int=float,
                            object_pairs_hook=_unique_keys)


def _parse_json(raw: bytes) -> Any:
    try:
        return parse_json(raw, _DECODER)
    except InvalidJSONError as exc:
        raise DeliveryError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


def _items(data: Any, max_batch: int) -> list[tuple[str, Any]]:
    """The items to validate, each with its path prefix (``""`` or ``"rewards[3]."``)."""
    shape = 'must be a JSON object: {"event_id", "reward"} or {"rewards": [...]}'
    if not isinstance(data, dict):
        raise DeliveryError(422, "invalid_reward", f"body: {shape}", problems=[f"body: {shape}"])
    if "rewards" not in data:
        return [("", data)]
    problems = [f"body: unknown key {key[:40]!r} beside 'rewards'" for key in data
                if key != "rewards"]
    batch = data["rewards"]
    if not isinstance(batch, list):
        problems.append(f"rewards: must be a list, got {_kind(batch)}")
    elif not batch:
        problems.append("rewards: must not be empty")
    if problems:
        raise DeliveryError(422, "invalid_reward", "; ".join(problems), problems=problems)
    if len(batch) > max_batch:
        raise DeliveryError(413, "payload_too_large", f"rewards: {len(batch)} in one batch, "
                            f"at most {max_batch}; split the batch", rejected=len(batch))
    return [(f"rewards[{i}].", item) for i, item in enumerate(batch)]


def _reward(path: str, item: Any, configs: RewardConfigs, ranges: Sequence[tuple[float, float]],
            received_at: float, problems: list[str]) -> Reward | None:
    """``item`` as a ``Reward``, or None after appending its problems (each with its path)."""
    if not isinstance(item, dict):
        problems.append(f"{path.rstrip('.') or 'body'}: must be an object, got {_kind(item)}")
        return None
    before = len(problems)
    unknown = [key for key in item if key not in _ITEM_KEYS]
    if unknown:
        names = ", ".join(repr(key[:40]) for key in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        problems.append(f"{path.rstrip('.') or 'body'}: unknown key {names}{more} "
                        f"(allowed: {', '.join(_ITEM_KEYS)})")
    event_id = _identifier(path, item, "event_id", MAX_EVENT_ID, problems)
    value = _number(path, item, problems)
    reward_id = _identifier(path, item, "reward_id", MAX_REWARD_ID, problems)
    name = item.get("experiment")
    if name is None:
        if value is not None and ranges and not any(lo <= value <= hi for lo, hi in ranges):
            problems.append(f"{path}reward: must be within the reward range of a configured "
                            f"experiment ({_describe(ranges)}), got {value:g}")
    else:
        config = configs.get(name) if isinstance(name, str) else None
        if not isinstance(name, str):
            problems.append(f"{path}experiment: must be a string, got {_kind(name)}")
        elif config is None:
            problems.append(f"{path}experiment: unknown experiment {name[:64]!r}")
        elif value is not None and not config.min <= value <= config.max:
            problems.append(f"{path}reward: must be within [{config.min:g}, {config.max:g}] "
                            f"for experiment {name!r}, got {value:g}")
    if len(problems) > before or event_id is None or value is None:
        return None
    return Reward(event_id, value, received_at,
                  reward_id or default_reward_id(event_id, value))


def _merged_ranges(configs: Iterable[RewardConfig]) -> list[tuple[float, float]]:
    """The rewards some experiment admits: the ``[min, max]`` ranges merged, in order."""
    merged: list[tuple[float, float]] = []
    for low, high in sorted((config.min, config.max) for config in configs):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _describe(ranges: Sequence[tuple[float, float]]) -> str:
    """``[0, 1], [5, 10] or [20, 30]``, the first few of them."""
    named = [f"[{low:g}, {high:g}]" for low, high in ranges[:_RANGES_NAMED]]
    if len(ranges) > _RANGES_NAMED:
        named.append(f"{len(ranges) - _RANGES_NAMED} more")
    return named[0] if len(named) == 1 else f"{', '.join(named[:-1])} or {named[-1]}"


def _identifier(path: str, item: Mapping[str, Any], key: str, limit: int,
                problems: list[str]) -> str | None:
    """``item[key]`` if it is a valid id; ``event_id`` is required, ``reward_id`` optional."""
    value = item.get(key)
    if value is None and (key != "event_id" or key in item):
        if key == "event_id":
            problems.append(f"{path}{key}: must be a string, got null")
        return None
    if value is None:
        problems.append(f"{path}{key}: is required")
    elif not isinstance(value, str):
        problems.append(f"{path}{key}: must be a string, got {_kind(value)}")
    elif not value:
        problems.append(f"{path}{key}: must not be empty")
    elif len(value) > limit:
        problems.append(f"{path}{key}: must be at most {limit} characters, got {len(value)}")
    elif not value.isprintable():
        problems.append(f"{path}{key}: must contain only printable characters")
    else:
        return value
    return None


def _number(path: str, item: Mapping[str, Any], problems: list[str]) -> float | None:
    if "reward" not in item:
        problems.append(f"{path}reward: is required")
        return None
    value = item["reward"]
    if isinstance(value, _NonFinite):
        problems.append(f"{path}reward: must be a finite number, got {value.token}")
    elif not isinstance(value, float):  # every JSON number parses to a float (parse_int)
        problems.append(f"{path}reward: must be a finite number, got {_kind(value)}")
    elif not math.isfinite(value):
        problems.append(f"{path}reward: must be a finite number, got a value beyond a "
                        "double's range")
    else:
        return value
    return None


def _kind(value: Any) -> str:
    """A JSON type name for messages: the value itself is never echoed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float | _NonFinite):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "-"
