"""Pushes the policy's traffic shares to a SageMaker endpoint as variant weights.

One ``WeightPusher`` per experiment. ``push(shares, reason)``:

1. does nothing while ``weights_push.enabled`` is false (returns None);
2. skips (not kept in the history, counted) until ``interval_s`` has passed since the
   last push or the last "unchanged" check;
3. ``DescribeEndpoint``: skips unless ``EndpointStatus`` is ``InService``;
4. reconciles the experiment's variants (the keys of ``shares``) with the endpoint's
   production variants: any difference is a ``VariantMismatchError`` naming both sets;
5. plans weights (``weights.plan_weights``: floor ``min_weight``, at most ``max_step``
   per push) and, with ``capacities``, instance counts proportional to the weights
   that keep the endpoint's current total (``weights.plan_instance_counts``);
6. skips when nothing moves by more than ``EPSILON``, else calls
   ``UpdateEndpointWeightsAndCapacities``.

Every outcome after step 2 is a ``PushRecord`` kept in a bounded history for stats
(and handed to ``on_record``, which the service points at ``bandit:pushes:{E}``);
errors (unknown endpoint, mismatch, a failed AWS call) are recorded, then raised as
``PushError``. boto3 is blocking, so its calls run in ``asyncio.to_thread``. The client
comes from boto3's own configuration chain, so ``AWS_ENDPOINT_URL_SAGEMAKER`` (botocore's
service-specific endpoint variable), credentials and retries behave as boto3 users expect.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from common.config_sections import WeightsPushConfig
from reward_ingest.errors import EndpointNotFoundError, PushError, VariantMismatchError
from reward_ingest.weights import largest_change, normalise, plan_instance_counts, plan_weights

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import (
        DesiredWeightAndCapacityTypeDef,
        ProductionVariantSummaryTypeDef,
    )

# Weight changes smaller than this (in share units) are not worth an endpoint update.
EPSILON = 1e-6
IN_SERVICE = "InService"


@dataclass(frozen=True, slots=True)
class PushRecord:
    """One push or skip: ``before`` is the endpoint's split read by DescribeEndpoint
    (normalised), ``after`` what was pushed (equal to ``before`` when skipped).
    ``skipped`` says why nothing was pushed (None when pushed)."""

    at: float
    endpoint: str
    before: dict[str, float]
    after: dict[str, float]
    reason: str
    skipped: str | None = None
    instances_before: dict[str, int] | None = None
    instances_after: dict[str, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy for stats."""
        return asdict(self)


def default_client_factory(region: str | None = None) -> Callable[[], SageMakerClient]:
    """A factory for boto3's ``sagemaker`` client with standard retries.

    The region is ``region``, else ``AWS_REGION``, else boto3's chain
    (``AWS_DEFAULT_REGION``, the config file). The endpoint URL is boto3's own:
    ``AWS_ENDPOINT_URL_SAGEMAKER``, ``AWS_ENDPOINT_URL``, the config file, or AWS's.
    """
    def make() -> SageMakerClient:
        session = boto3.session.Session()
        return session.client(
            "sagemaker", region_name=region or os.environ.get("AWS_REGION") or None,
            config=Config(retries={"mode": "standard", "max_attempts": 3}))
    return make


class WeightPusher:
    """Turns traffic shares into ``UpdateEndpointWeightsAndCapacities`` calls, within limits."""

    def __init__(self, client_factory: Callable[[], SageMakerClient], endpoint_name: str,
                 config: WeightsPushConfig, clock: Callable[[], float] = time.time, *,
                 history: int = 100, min_instances_per_variant: int = 1,
                 max_instances_per_variant: int | None = None,
                 on_record: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self._factory = client_factory
        self._on_record = on_record
        self._client: SageMakerClient | None = None
        self.endpoint = endpoint_name
        self.config = config
        self._clock = clock
        self._min_instances = min_instances_per_variant
        self._max_instances = max_instances_per_variant
        self._history: deque[PushRecord] = deque(maxlen=history)
        self._skips: Counter[str] = Counter()
        self._pushes = 0
        self._errors = 0
        self._last_check: float | None = None  # last push or "unchanged" decision
        self._lock = asyncio.Lock()

    @property
    def history(self) -> list[PushRecord]:
        """The last records, oldest first."""
        return list(self._history)

    async def push(self, shares: Mapping[str, float], reason: str) -> PushRecord | None:
        """Push ``shares`` (every experiment variant → its traffic share) if due and safe.

        Returns None when pushing is disabled, else the record of what happened.
        Raises ``PushError`` (after recording it) when the endpoint is unknown, the
        variants disagree, or an AWS call fails.
        """
        if not self.config.enabled:
            return None
        async with self._lock:
            try:
                record = await self._push(dict(shares), reason, self._clock())
            except PushError as exc:
                if exc.record is not None:
                    await self._record(exc.record)
                raise
            if self._history and self._history[-1] is record:  # not an interval skip
                await self._record(record)
            return record

    async def _record(self, record: PushRecord) -> None:
        if self._on_record is not None:
            await self._on_record(record.as_dict())

    async def _push(self, shares: dict[str, float], reason: str, now: float) -> PushRecord:
        if self._last_check is not None and now - self._last_check < self.config.interval_s:
            wait = self.config.interval_s - (now - self._last_check)
            self._skips["interval"] += 1
            return PushRecord(now, self.endpoint, {}, {}, reason,
                              f"interval: next push in {wait:.1f} s "
                              f"(interval_s={self.config.interval_s:g})")
        status, variants = await self._describe(now, reason)
        before = _weights(variants)
        if status != IN_SERVICE:
            return self._skip(now, before, reason, "status",
                              f"endpoint status is {status}, not {IN_SERVICE}")
        if set(shares) != set(before):
            error = VariantMismatchError(self.endpoint, set(shares), set(before))
            self._fail(now, before, reason, error)
        after = plan_weights(shares, before, min_weight=self.config.min_weight,
                             max_step=self.config.max_step)
        counts_before = counts_after = None
        if self.config.capacities:
            counts_before = self._instance_counts(variants, now, before, reason)
            try:
                counts_after = plan_instance_counts(
                    after, sum(counts_before.values()), min_per_variant=self._min_instances,
                    max_per_variant=self._max_instances)
            except ValueError as exc:
                self._fail(now, before, reason, PushError(
                    f"capacities on {self.endpoint!r}: {exc}"), counts_before, exc)
        if largest_change(before, after) < EPSILON and counts_before == counts_after:
            self._last_check = now
            return self._skip(now, before, reason, "unchanged",
                              f"no weight moves by {EPSILON:g} or more", counts_before)
        desired: list[DesiredWeightAndCapacityTypeDef] = []
        for name, weight in after.items():
            item: DesiredWeightAndCapacityTypeDef = {"VariantName": name, "DesiredWeight": weight}
            if counts_after is not None:
                item["DesiredInstanceCount"] = counts_after[name]
            desired.append(item)
        client = await self._get_client()
        try:
            await asyncio.to_thread(client.update_endpoint_weights_and_capacities,
                                    EndpointName=self.endpoint,
                                    DesiredWeightsAndCapacities=desired)
        except (ClientError, BotoCoreError) as exc:
            self._fail(now, before, reason,
                       PushError(f"UpdateEndpointWeightsAndCapacities on {self.endpoint!r} "
                                 f"failed: {exc}"), counts_before, exc)
        self._last_check = now
        self._pushes += 1
        record = PushRecord(now, self.endpoint, before, after, reason, None,
                            counts_before, counts_after)
        self._history.append(record)
        return record

    async def _describe(self, now: float, reason: str
                        ) -> tuple[str, list[ProductionVariantSummaryTypeDef]]:
        """DescribeEndpoint's status and production variants."""
        client = await self._get_client()
        try:
            described = await asyncio.to_thread(client.describe_endpoint,
                                                EndpointName=self.endpoint)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            message = str(error.get("Message", exc))
            if (error.get("Code") == "ValidationException"
                    and "could not find endpoint" in message.lower()):
                self._fail(now, {}, reason, EndpointNotFoundError(
                    f"endpoint {self.endpoint!r} does not exist (DescribeEndpoint: "
                    f"{message})"), None, exc)
            self._fail(now, {}, reason, PushError(
                f"DescribeEndpoint on {self.endpoint!r} failed: {exc}"), None, exc)
        except BotoCoreError as exc:
            self._fail(now, {}, reason, PushError(
                f"DescribeEndpoint on {self.endpoint!r} failed: {exc}"), None, exc)
        return described["EndpointStatus"], list(described.get("ProductionVariants", []))

    def _instance_counts(self, variants: list[ProductionVariantSummaryTypeDef], now: float,
                         before: dict[str, float], reason: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for variant in variants:
            count = variant.get("CurrentInstanceCount")
            if count is None:
                self._fail(now, before, reason, PushError(
                    f"capacities is on but variant {variant['VariantName']!r} of endpoint "
                    f"{self.endpoint!r} reports no instance count (serverless variants "
                    "cannot be sized)"))
            counts[variant["VariantName"]] = count
        return counts

    async def _get_client(self) -> SageMakerClient:
        if self._client is None:
            # Creating a boto3 client reads files and loads the service model: off the loop.
            self._client = await asyncio.to_thread(self._factory)
        return self._client

    def _skip(self, now: float, before: dict[str, float], reason: str, kind: str,
              why: str, counts: dict[str, int] | None = None) -> PushRecord:
        self._skips[kind] += 1
        record = PushRecord(now, self.endpoint, before, dict(before), reason, why,
                            counts, counts)
        self._history.append(record)
        return record

    def _fail(self, now: float, before: dict[str, float], reason: str, error: PushError,
              counts: dict[str, int] | None = None,
              cause: BaseException | None = None) -> NoReturn:
        self._errors += 1
        error.record = PushRecord(now, self.endpoint, before, dict(before), reason,
                                  f"error: {error}", counts, counts)
        self._history.append(error.record)
        raise error from cause

    def stats(self) -> dict[str, Any]:
        """Counters, the last pushed weights and the recent history, JSON-ready."""
        last = next((r for r in reversed(self._history) if r.skipped is None), None)
        interval = self.config.interval_s
        return {
            "endpoint": self.endpoint,
            "enabled": self.config.enabled,
            "pushes": self._pushes,
            "skips": dict(self._skips),
            "errors": self._errors,
            "last_push_at": last.at if last else None,
            "next_push_at": (self._last_check + interval
                             if self._last_check is not None else None),
            "weights": dict(last.after) if last else None,
            "history": [r.as_dict() for r in self._history],
        }


def _weights(variants: list[ProductionVariantSummaryTypeDef]) -> dict[str, float]:
    """Each production variant's share of traffic as DescribeEndpoint reports it.

    ``CurrentWeight`` is what serves now (else ``DesiredWeight``); a variant reporting
    neither is taken as 0 (moto leaves both out for a variant created with weight 0).
    The weights are relative, so they are normalised; all 0 reads as uniform.
    """
    raw = {v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0)))
           for v in variants}
    if not raw:
        return {}
    return dict(zip(raw, normalise(list(raw.values())), strict=True))
