"""WeightPusher against moto's server (a subprocess), through boto3's sagemaker client."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from common.config_sections import WeightsPushConfig
from reward_ingest.errors import EndpointNotFoundError, PushError, VariantMismatchError
from reward_ingest.pusher import PushRecord, WeightPusher, default_client_factory
from reward_ingest.weights import TOLERANCE, largest_change
from tests._servers import free_port
from tests.reward_ingest._moto import (
    REGION,
    aws_env,
    create_endpoint,
    endpoint_instances,
    endpoint_weights,
    force_endpoint_status,
    moto_server,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

_names = itertools.count()


class Clock:
    """A hand-moved clock (unix seconds), so interval_s needs no sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def sm(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> SageMakerClient:
    """boto3's sagemaker client, sent to moto by AWS_ENDPOINT_URL_SAGEMAKER alone."""
    for key, value in aws_env(moto_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return default_client_factory()()


def _endpoint(sm: SageMakerClient, weights: dict[str, float], **kw: Any) -> str:
    name = f"ep-{next(_names)}"
    create_endpoint(sm, name, weights, **kw)
    return name


def _config(**kw: Any) -> WeightsPushConfig:
    return WeightsPushConfig(**{"enabled": True, "interval_s": 300.0, "min_weight": 0.05,
                                "max_step": 0.25, **kw})


def _pusher(sm: SageMakerClient, endpoint: str, clock: Callable[[], float] | None = None,
            **kw: Any) -> WeightPusher:
    return WeightPusher(lambda: sm, endpoint, _config(**kw), clock or Clock())


def _push(pusher: WeightPusher, shares: dict[str, float], reason: str = "test"
          ) -> PushRecord | None:
    return asyncio.run(pusher.push(shares, reason))


def _normalised(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def test_client_follows_aws_endpoint_url_sagemaker(sm: SageMakerClient, moto_url: str) -> None:
    assert sm.meta.endpoint_url == moto_url
    assert sm.meta.region_name == REGION


def test_weights_converge_to_the_learned_split_max_step_per_push(sm: SageMakerClient) -> None:
    endpoint = _endpoint(sm, {"A": 1.0, "B": 1.0, "C": 1.0})
    clock = Clock()
    pusher = _pusher(sm, endpoint, clock, max_step=0.2, min_weight=0.05)
    learned = {"A": 0.9, "B": 0.1, "C": 0.0}  # floored: C lifted to 0.05, A and B scaled
    seen = [_normalised(endpoint_weights(sm, endpoint))]
    records = []
    for _ in range(5):
        record = _push(pusher, learned, "policy v7")
        assert record is not None
        records.append(record)
        seen.append(_normalised(endpoint_weights(sm, endpoint)))
        clock.now += 300.0
    pushed = [r for r in records if r.skipped is None]
    # 1/3 → 0.855 for A is 0.52 away: three pushes of ≤ 0.2, then nothing left to do.
    assert len(pushed) == 3
    assert records[3].skipped is not None and records[3].skipped.startswith("no weight moves")
    for before, after in itertools.pairwise(seen):
        assert largest_change(before, after) <= 0.2 + TOLERANCE
        assert min(after.values()) >= 0.05 - TOLERANCE
    assert seen[-1] == pytest.approx({"A": 0.855, "B": 0.095, "C": 0.05})
    # A moved monotonically up, each record's after is what the endpoint then had.
    assert [s["A"] for s in seen[:4]] == sorted(s["A"] for s in seen[:4])
    for record, state in zip(pushed, seen[1:4], strict=True):
        assert record.after == pytest.approx(state)
        assert record.reason == "policy v7" and record.endpoint == endpoint
    assert records[0].before == pytest.approx({"A": 1 / 3, "B": 1 / 3, "C": 1 / 3})


def test_floor_holds_when_the_policy_starves_a_variant(sm: SageMakerClient) -> None:
    endpoint = _endpoint(sm, {"A": 0.5, "B": 0.25, "C": 0.25})
    pusher = _pusher(sm, endpoint, min_weight=0.1, max_step=1.0)
    record = _push(pusher, {"A": 1.0, "B": 0.0, "C": 0.0})
    assert record is not None and record.skipped is None
    assert endpoint_weights(sm, endpoint) == pytest.approx({"A": 0.8, "B": 0.1, "C": 0.1})


def test_no_push_unless_in_service(sm: SageMakerClient) -> None:
    # moto's endpoints are always InService; the client is made to read "Updating".
    endpoint = _endpoint(sm, {"A": 1.0, "B": 1.0})
    force_endpoint_status(sm, "Updating")
    pusher = _pusher(sm, endpoint)
    record = _push(pusher, {"A": 0.9, "B": 0.1})
    assert record is not None
    assert record.skipped == "endpoint status is Updating, not InService"
    assert record.before == record.after == pytest.approx({"A": 0.5, "B": 0.5})
    assert endpoint_weights(sm, endpoint) == {"A": 1.0, "B": 1.0}
    # Not in service is transient: the next call tries again, no interval wait.
    again = _push(pusher, {"A": 0.9, "B": 0.1})
    assert again is not None and again.skipped is not None
    assert again.skipped.startswith("endpoint status")
    assert pusher.stats()["skips"] == {"status": 2}


def test_unknown_endpoint_is_a_clear_error(sm: SageMakerClient) -> None:
    pusher = _pusher(sm, "no-such-endpoint")
    with pytest.raises(EndpointNotFoundError, match="'no-such-endpoint' does not exist") as err:
        _push(pusher, {"A": 1.0})
    assert err.value.record is not None
    assert pusher.history == [err.value.record]
    assert pusher.stats()["errors"] == 1


def test_min_interval_between_pushes(sm: SageMakerClient) -> None:
    endpoint = _endpoint(sm, {"A": 1.0, "B": 1.0})
    clock = Clock()
    pusher = _pusher(sm, endpoint, clock, interval_s=300.0, max_step=0.1)
    first = _push(pusher, {"A": 1.0, "B": 0.0})
    assert first is not None and first.skipped is None
    clock.now += 299.0
    early = _push(pusher, {"A": 1.0, "B": 0.0})
    assert early is not None and early.skipped == "interval: next push in 1.0 s (interval_s=300)"
    assert endpoint_weights(sm, endpoint) == pytest.approx({"A": 0.6, "B": 0.4})
    assert pusher.history == [first]  # interval skips are counted, not kept
    clock.now += 1.0
    second = _push(pusher, {"A": 1.0, "B": 0.0})
    assert second is not None and second.skipped is None
    assert endpoint_weights(sm, endpoint) == pytest.approx({"A": 0.7, "B": 0.3})
    stats = pusher.stats()
    assert stats["pushes"] == 2 and stats["skips"] == {"interval": 1}
    assert stats["last_push_at"] == clock.now
    assert stats["next_push_at"] == clock.now + 300.0
    assert stats["weights"] == pytest.approx({"A": 0.7, "B": 0.3})
    assert [r["skipped"] for r in stats["history"]] == [None, None]


def test_variant_mismatch_names_both_sets_and_pushes_nothing(sm: SageMakerClient) -> None:
    endpoint = _endpoint(sm, {"A": 1.0, "B": 1.0})
    pusher = _pusher(sm, endpoint)
    with pytest.raises(VariantMismatchError) as err:
        _push(pusher, {"A": 0.5, "C": 0.5})
    message = str(err.value)
    assert "['A', 'C']" in message and "['A', 'B']" in message
    assert "only in the experiment: ['C']" in message and "only on the endpoint: ['B']" in message
    assert err.value.experiment == {"A", "C"} and err.value.on_endpoint == {"A", "B"}
    assert endpoint_weights(sm, endpoint) == {"A": 1.0, "B": 1.0}
    assert err.value.record is not None and err.value.record.skipped is not None
    assert pusher.history == [err.value.record]
    # A variant added to the experiment only: also refused.
    with pytest.raises(VariantMismatchError, match=r"only in the experiment: \['C'\]"):
        _push(pusher, {"A": 0.4, "B": 0.4, "C": 0.2})


def test_capacities_follow_the_weights_within_bounds(sm: SageMakerClient) -> None:
    endpoint = _endpoint(sm, {"A": 1.0, "B": 1.0}, instances={"A": 2, "B": 2})
    clock = Clock()
    pusher = WeightPusher(lambda: sm, endpoint, _config(capacities=True, max_step=0.25),
                          clock, max_instances_per_variant=3)
    record = _push(pusher, {"A": 1.0, "B": 0.0})
    assert record is not None and record.skipped is None
    assert record.instances_before == {"A": 2, "B": 2}
    assert record.instances_after == {"A": 3, "B": 1}
    assert endpoint_instances(sm, endpoint) == {"A": 3, "B": 1}
    assert endpoint_weights(sm, endpoint) == pytest.approx({"A": 0.75, "B": 0.25})
    clock.now += 300.0
    # 0.95 / 0.05 would want 4 / 0, but every variant keeps one and A is capped at 3.
    record = _push(pusher, {"A": 1.0, "B": 0.0})
    assert record is not None and record.skipped is None
    assert endpoint_instances(sm, endpoint) == {"A": 3, "B": 1}
    assert endpoint_weights(sm, endpoint) == pytest.approx({"A": 0.95, "B": 0.05})


def test_disabled_does_nothing(sm: SageMakerClient) -> None:
    calls: list[int] = []

    def factory() -> SageMakerClient:
        calls.append(1)
        return sm

    pusher = WeightPusher(factory, "whatever", WeightsPushConfig(enabled=False))
    assert _push(pusher, {"A": 1.0}) is None
    assert calls == [] and pusher.history == []


def test_unreachable_aws_is_a_push_error(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in aws_env(f"http://127.0.0.1:{free_port()}").items():
        monkeypatch.setenv(key, value)

    def factory() -> SageMakerClient:
        return boto3.client("sagemaker", region_name=REGION,
                            config=Config(retries={"mode": "standard", "max_attempts": 1},
                                          connect_timeout=1, read_timeout=1))

    pusher = WeightPusher(factory, "ep", _config())
    with pytest.raises(PushError, match="DescribeEndpoint on 'ep' failed"):
        _push(pusher, {"A": 1.0})
    assert pusher.stats()["errors"] == 1


def test_capacities_that_cannot_be_met_are_a_push_error(sm: SageMakerClient) -> None:
    endpoint = _endpoint(sm, {"A": 1.0, "B": 1.0}, instances={"A": 2, "B": 2})
    pusher = WeightPusher(lambda: sm, endpoint, _config(capacities=True),
                          max_instances_per_variant=1)
    with pytest.raises(PushError, match="4 instances cannot be split over 2 variants"):
        _push(pusher, {"A": 1.0, "B": 0.0})
    assert endpoint_instances(sm, endpoint) == {"A": 2, "B": 2}
