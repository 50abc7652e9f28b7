"""SageMakerBackend against the real simulator under uvicorn, signed as botocore signs."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials

from router.backends import InvokeRequest, InvokeResult, SageMakerBackend
from router.backends._retry import classify
from router.backends.sagemaker import _host
from router.errors import (
    InternalFailure,
    ModelError,
    ModelNotReady,
    ServiceUnavailable,
    ValidationError,
)
from simulator import RecordedRequest, Simulator, create_app, make_client, parse_variants
from tests._servers import free_port, run_asgi

T = TypeVar("T")
ENDPOINT = "sim-endpoint"
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NEW_SECRET = "new-secret"  # noqa: S105 (a test credential)
BODY = json.dumps({"instances": [[0.5, -1.2, 0.3, 0.9, -0.4, 0.1]]}).encode()
AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)"
                  r"/(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
                  r"Signature=(?P<signature>[0-9a-f]{64})")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Simulator]]:
    app = create_app(parse_variants("Variant1=logistic,Variant2=tree", endpoint=ENDPOINT))
    with run_asgi(app) as url:
        yield url, app.state.simulator


@pytest.fixture
def sim(served: tuple[str, Simulator], monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    simulator = served[1]
    saved = dict(simulator.variants)
    yield simulator
    simulator.variants = saved


@pytest.fixture
def url(served: tuple[str, Simulator], sim: Simulator) -> str:
    return served[0]


def _run(make: Callable[[SageMakerBackend], Awaitable[T]], endpoint_url: str,
         **options: Any) -> T:
    async def main() -> T:
        backend = SageMakerBackend(endpoint_url=endpoint_url, backoff_base_s=0.001, **options)
        await backend.start()
        try:
            return await make(backend)
        finally:
            await backend.close()

    return asyncio.run(main())


def _request(variant: str = "Variant1", endpoint: str = ENDPOINT, **fields: Any) -> InvokeRequest:
    fields.setdefault("content_type", "application/json")
    return InvokeRequest(endpoint=endpoint, variant=variant, body=BODY, **fields)


def _verify(recorded: RecordedRequest, base_url: str, secret: str = SECRET) -> dict[str, str]:
    """Recompute the SigV4 signature over the signed headers with botocore's own signer."""
    match = AUTH.fullmatch(recorded.header("authorization") or "")
    assert match is not None, recorded.header("authorization")
    signed = match["signed"].split(";")
    headers = {name: recorded.header(name) or "" for name in signed}
    request = AWSRequest(method=recorded.method, url=f"{base_url}{recorded.path}",
                         data=recorded.body, headers=headers)
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials(match["key"], secret, recorded.header("x-amz-security-token")),
                     match["service"], match["region"])
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)),
                              request)
    assert expected == match["signature"]
    return match.groupdict()


def test_success_honours_target_variant(url: str, sim: Simulator) -> None:
    async def calls(backend: SageMakerBackend) -> list[InvokeResult]:
        return [await backend.invoke(_request(v, custom_attributes="c=1", accept="text/csv",
                                              inference_id="ev-1"))
                for v in ("Variant1", "Variant2", "Variant2")]

    results = _run(calls, url)
    assert [r.invoked_variant for r in results] == ["Variant1", "Variant2", "Variant2"]
    assert all(r.custom_attributes == "c=1" and r.content_type == "text/csv" for r in results)
    assert results[0].body.decode().split(",")[0] in ("0", "1")
    recorded = sim.last_request
    assert recorded is not None
    assert recorded.path == f"/endpoints/{ENDPOINT}/invocations"
    assert recorded.header("x-amzn-sagemaker-inference-id") == "ev-1"
    assert recorded.header("x-amzn-sagemaker-target-variant") == "Variant2"


def test_signature_verifies_like_boto3s(url: str, sim: Simulator) -> None:
    _run(lambda b: b.invoke(_request("Variant2", custom_attributes="x")), url)
    assert sim.last_request is not None
    ours = _verify(sim.last_request, url)
    assert (ours["key"], ours["region"], ours["service"]) == (KEY, "us-east-1", "sagemaker")
    signed = set(ours["signed"].split(";"))
    assert {"host", "x-amz-date", "content-type", "x-amzn-sagemaker-target-variant",
            "x-amzn-sagemaker-custom-attributes"} <= signed
    # The verifier itself is right: boto3's own request passes it too.
    make_client(url, credentials=(KEY, SECRET)).invoke_endpoint(
        EndpointName=ENDPOINT, Body=BODY, ContentType="application/json",
        TargetVariant="Variant2", CustomAttributes="x")
    theirs = _verify(sim.last_request, url)
    assert (theirs["service"], theirs["region"]) == ("sagemaker", "us-east-1")
    assert signed <= set(theirs["signed"].split(";"))


def test_session_token_and_refreshed_credentials(url: str, sim: Simulator) -> None:
    now = datetime.now(UTC)

    def refresh() -> dict[str, str]:
        return {"access_key": "AKIDNEW", "secret_key": NEW_SECRET, "token": "tok-2",
                "expiry_time": (now + timedelta(hours=1)).isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(
        {"access_key": "AKIDOLD", "secret_key": "old", "token": "tok-1",
         "expiry_time": (now + timedelta(minutes=5)).isoformat()},  # inside the 10-min window
        refresh_using=refresh, method="test")
    session = botocore.session.Session()
    session.get_credentials = lambda: credentials  # type: ignore[method-assign]
    _run(lambda b: b.invoke(_request()), url, session=session)
    assert sim.last_request is not None
    assert sim.last_request.header("x-amz-security-token") == "tok-2"
    assert _verify(sim.last_request, url, secret=NEW_SECRET)["key"] == "AKIDNEW"


def test_model_error_is_passed_through_without_retry(url: str, sim: Simulator) -> None:
    sim.update("Variant1", {"error_rate": 1.0})
    before = sim.served["Variant1"]
    with pytest.raises(ModelError) as caught:
        _run(lambda b: b.invoke(_request()), url)
    assert caught.value.original_status_code == 500
    assert "Variant1" in caught.value.original_message
    assert sim.served["Variant1"] - before == 1


def test_validation_errors(url: str) -> None:
    with pytest.raises(ValidationError, match="Variant7"):
        _run(lambda b: b.invoke(_request("Variant7")), url)
    with pytest.raises(ValidationError, match="other"):
        _run(lambda b: b.invoke(_request(endpoint="other")), url)


@pytest.mark.parametrize(("kind", "error"), [("throttle", ServiceUnavailable),
                                              ("unavailable", ServiceUnavailable),
                                              ("internal", InternalFailure)])
def test_retries_then_gives_up(url: str, sim: Simulator, kind: str, error: type) -> None:
    sim.update("Variant2", {"error_rate": 1.0, "error_kind": kind})
    before = sim.served["Variant2"]
    with pytest.raises(error):
        _run(lambda b: b.invoke(_request("Variant2")), url, max_attempts=4)
    assert sim.served["Variant2"] - before == 4


def test_retries_recover_from_intermittent_throttling(url: str, sim: Simulator) -> None:
    sim.update("Variant2", {"error_rate": 0.5, "error_kind": "throttle"})
    before = sim.served["Variant2"]

    async def calls(backend: SageMakerBackend) -> list[InvokeResult]:
        return [await backend.invoke(_request("Variant2")) for _ in range(20)]

    results = _run(calls, url, max_attempts=20)  # 20 throttles in a row: p = 1e-6
    assert len(results) == 20
    assert sim.served["Variant2"] - before > 25  # about 40 expected


def test_unreachable_is_service_unavailable(sim: Simulator) -> None:
    start = time.perf_counter()
    with pytest.raises(ServiceUnavailable, match="unreachable"):
        _run(lambda b: b.invoke(_request()), f"http://127.0.0.1:{free_port()}")
    assert time.perf_counter() - start < 2.0


def test_endpoint_and_region_resolution(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SageMakerBackend(region="eu-west-1").endpoint_url == (
        "https://runtime.sagemaker.eu-west-1.amazonaws.com")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1/")
    assert SageMakerBackend().endpoint_url == "http://127.0.0.1:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:2")
    assert SageMakerBackend().endpoint_url == "http://127.0.0.1:2"
    assert SageMakerBackend(endpoint_url="http://h:3").endpoint_url == "http://h:3"
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ValueError, match="no AWS region"):
        SageMakerBackend()
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert SageMakerBackend().region == "ap-south-1"


def test_host_header_leaves_default_ports_out() -> None:
    assert _host("https://runtime.sagemaker.us-east-1.amazonaws.com") == (
        "runtime.sagemaker.us-east-1.amazonaws.com")
    assert _host("http://127.0.0.1:8080/prefix") == "127.0.0.1:8080"
    assert _host("https://h:443") == "h"
    assert _host("http://[::1]:81") == "[::1]:81"


def test_not_started_and_no_credentials(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = SageMakerBackend(endpoint_url="http://127.0.0.1:1")
    with pytest.raises(InternalFailure, match="before start"):
        asyncio.run(backend.invoke(_request()))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RuntimeError, match="no AWS credentials"):
        asyncio.run(SageMakerBackend(endpoint_url="http://127.0.0.1:1").start())


@pytest.mark.parametrize(("status", "headers", "body", "error", "retryable"), [
    (424, {"x-amzn-ErrorType": "ModelError:http://internal.amazon.com/"},
     b'{"message":"m","OriginalStatusCode":503,"OriginalMessage":"o","LogStreamArn":"a"}',
     ModelError, False),
    (400, {}, b'{"__type":"com.amazon#ValidationError","Message":"bad"}', ValidationError, False),
    (429, {"x-amzn-ErrorType": "ModelNotReadyException"}, b"{}", ModelNotReady, True),
    (429, {}, b"slow down", ServiceUnavailable, True),
    (400, {"x-amzn-ErrorType": "ThrottlingException"}, b"{}", ServiceUnavailable, True),
    (502, {}, b"<html>bad gateway</html>", ServiceUnavailable, True),
    (530, {"x-amzn-ErrorType": "InternalDependencyException"}, b"{}", ServiceUnavailable, True),
    (500, {"x-amzn-ErrorType": "InternalFailure"}, b"{}", InternalFailure, True),
    (403, {"x-amzn-ErrorType": "InvalidSignatureException"}, b'{"message":"sig"}',
     InternalFailure, False),
])
def test_error_classification(status: int, headers: dict[str, str], body: bytes, error: type,
                              retryable: bool) -> None:
    failure = classify(status, headers, body)
    assert isinstance(failure.error, error)
    assert failure.retryable is retryable
    if isinstance(failure.error, ModelError):
        assert failure.error.extra == {"OriginalStatusCode": 503, "OriginalMessage": "o",
                                       "LogStreamArn": "a"}
