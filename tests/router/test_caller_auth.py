"""Callers signed with SigV4: plain boto3 clients with right, wrong and rotated keys.

A real router (uvicorn) in front of the simulator, ``auth: {mode: sigv4}``, keys from
``BANDIT_ROUTER_CALLER_KEYS`` and from a keys file that is rewritten while it runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from common.config import Secrets, parse_settings
from router.app import create_app
from router.auth import OPEN_WARNING
from router.auth_keys import STAT_INTERVAL_S, KeyRing, KeysError
from router.store import MemoryStore
from simulator import create_app as create_simulator
from simulator import parse_variants
from tests._servers import run_asgi
from tests.router._stack import SIM_ENDPOINT, SIM_VARIANTS, backend_factory, experiment

REGION = "eu-west-1"
BODY = json.dumps({"instances": [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6]]}).encode()
Key = dict[str, Any]
ENV_KEY: Key = {"access_key_id": "AKIDENVCALLER0001", "secret_access_key": "env-secret-1",
                "experiments": "*"}
FILE_KEY: Key = {"access_key_id": "AKIDFILECALLER001", "secret_access_key": "file-secret-1",
                 "experiments": ["exp", "other"]}
NARROW_KEY: Key = {"access_key_id": "AKIDNARROW0000001", "secret_access_key": "narrow-secret",
                   "experiments": ["other"]}


def write_keys(path: Path, keys: dict[str, Any]) -> None:
    """Replace the keys file as a deployment would (a new file renamed over the old)."""
    staged = path.with_name(path.name + ".new")
    staged.write_text(json.dumps(keys))
    os.replace(staged, path)


class Router:
    """The running router: its URL, state and store, and the keys file."""

    def __init__(self, url: str, app: Any, store: MemoryStore, keys_file: Path) -> None:
        self.url, self.app, self.store, self.keys_file = url, app, store, keys_file

    def client(self, key: dict[str, Any] | None, *, region: str = REGION) -> Any:
        """A plain boto3 ``sagemaker-runtime`` client aimed at the router (None: unsigned)."""
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
        if key is None:
            config = config.merge(Config(signature_version=UNSIGNED))
            return boto3.client("sagemaker-runtime", endpoint_url=self.url, region_name=region,
                                config=config)
        return boto3.client("sagemaker-runtime", endpoint_url=self.url, region_name=region,
                            aws_access_key_id=key["access_key_id"],
                            aws_secret_access_key=key["secret_access_key"], config=config)

    def logged(self) -> int:
        return len(asyncio.run(self.store.read_decisions(1_000_000)))


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    keys_file = tmp_path_factory.mktemp("auth") / "caller-keys.json"
    write_keys(keys_file, {"billing": FILE_KEY, "narrow": NARROW_KEY})
    config = parse_settings({
        "experiments": [experiment()],
        "auth": {"mode": "sigv4", "region": REGION, "keys_file": str(keys_file)},
    })
    simulator = create_simulator(parse_variants(SIM_VARIANTS, endpoint=SIM_ENDPOINT, seed=1))
    with ExitStack() as stack:
        sim_url = stack.enter_context(run_asgi(simulator))
        store = MemoryStore()
        app = create_app(config, store=store, backend_factory=backend_factory(sim_url),
                         environ={"BANDIT_ROUTER_CALLER_KEYS": json.dumps({"ops": ENV_KEY})})
        yield Router(stack.enter_context(run_asgi(app)), app, store, keys_file)


def invoke(client: Any, endpoint: str = SIM_ENDPOINT) -> dict[str, Any]:
    response: dict[str, Any] = client.invoke_endpoint(
        EndpointName=endpoint, Body=BODY, ContentType="application/json")
    return response


def refused(client: Any, endpoint: str = SIM_ENDPOINT) -> tuple[str, int, str]:
    """(error code, HTTP status, message) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        invoke(client, endpoint)
    error = caught.value.response
    return (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"],
            error["Error"]["Message"])


def test_right_keys_from_the_environment_and_the_file_are_served(router: Router) -> None:
    for key in (ENV_KEY, FILE_KEY):
        response = invoke(router.client(key))
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert response["InvokedProductionVariant"] in ("Variant1", "Variant2", "Variant3")
        assert json.loads(response["Body"].read())


def test_signed_headers_with_odd_spacing_verify(router: Router) -> None:
    # SigV4 trims and folds spaces in signed header values; the router must do the same.
    client = router.client(ENV_KEY)

    def add_context(request: Any, **_: Any) -> None:
        request.headers["X-Bandit-Context"] = '{"country":  "fr",   "age": 31}  '

    client.meta.events.register("before-sign.sagemaker-runtime.InvokeEndpoint", add_context)
    response = client.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=BODY,
                                      ContentType="application/json",
                                      CustomAttributes="  a   b  c ", InferenceId="odd-spacing")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    events = [e for _, e in asyncio.run(router.store.read_decisions(1_000_000))
              if e["event_id"] == "odd-spacing"]
    assert [e["context"] for e in events] == [{"country": "fr", "age": 31}]


def test_unsigned_calls_are_missing_authentication_token(router: Router) -> None:
    before = router.logged()
    assert refused(router.client(None)) == ("MissingAuthenticationTokenException", 403,
                                            "Missing Authentication Token")
    # curl as a new user would: no signature, no decision, nothing invoked.
    answer = httpx.post(f"{router.url}/endpoints/{SIM_ENDPOINT}/invocations", content=BODY,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert router.logged() == before
    metrics = httpx.get(f"{router.url}/metrics").text
    assert re.search(r'bandit_router_rejected_requests_total\{code="MissingAuthentication'
                     r'TokenException",route="invocations"\} [2-9]', metrics), metrics


def test_the_route_behind_fastapi_checks_callers_too(router: Router) -> None:
    # Under a root path the raw ASGI fast path steps aside and FastAPI routes the call.
    url = f"{router.url}/endpoints/{SIM_ENDPOINT}/invocations"

    async def call(headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=router.app, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
            return await client.post(f"/api/endpoints/{SIM_ENDPOINT}/invocations",
                                     content=BODY, headers=headers)

    unsigned = asyncio.run(call({"Content-Type": "application/json"}))
    assert unsigned.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    # Signed for the URL sent. A verified key reaching its allow list shows the signature
    # matched (a call that passes would invoke the backend, whose session lives on the
    # server's event loop, not this one).
    sent = url.replace(router.url, "http://router/api")
    narrow = asyncio.run(call(signed(NARROW_KEY, sent, BODY)))
    assert narrow.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    wrong = asyncio.run(call(signed({**NARROW_KEY, "secret_access_key": "x"}, sent, BODY)))
    assert wrong.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_unsigned_and_unknown_callers_are_refused_before_the_body_is_read(
        router: Router) -> None:
    url = f"{router.url}/endpoints/{SIM_ENDPOINT}/invocations"
    big = b"x" * (7 << 20)  # over SageMaker's 6 MB: a ValidationError once read
    unknown = {"access_key_id": "AKIDNOBODY0000001", "secret_access_key": "x"}
    for headers, code in (({}, "MissingAuthenticationTokenException"),
                          (signed(unknown, url, b""), "UnrecognizedClientException")):
        answer = httpx.post(url, content=big, headers=headers)
        assert (answer.status_code, answer.headers["x-amzn-ErrorType"]) == (403, code)
    # A known key's body is read and checked before the signature over it.
    answer = httpx.post(url, content=big, headers=signed(ENV_KEY, url, b""))
    assert answer.headers["x-amzn-ErrorType"] == "ValidationError"


def test_a_malformed_signature_is_incomplete(router: Router) -> None:
    url = f"{router.url}/endpoints/{SIM_ENDPOINT}/invocations"
    good = signed(ENV_KEY, url, BODY)
    no_date = {k: v for k, v in good.items() if k.lower() != "x-amz-date"}
    for headers, says in (({"Authorization": "Bearer abc"}, "AWS4-HMAC-SHA256"),
                          ({"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/x"}, "requires"),
                          (no_date, "X-Amz-Date")):
        answer = httpx.post(url, content=BODY, headers=headers)
        assert (answer.status_code, answer.headers["x-amzn-ErrorType"]) == (
            403, "IncompleteSignatureException")
        assert says in answer.json()["message"]


def test_a_wrong_secret_is_an_invalid_signature(router: Router,
                                                caplog: pytest.LogCaptureFixture) -> None:
    wrong = {**FILE_KEY, "secret_access_key": "not-the-secret"}
    with caplog.at_level(logging.DEBUG, logger="router"):  # botocore logs its own side
        code, status, message = refused(router.client(wrong))
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith("The request signature we calculated does not match")
    # Neither secret nor signature in the router's log.
    text = caplog.text
    assert "not-the-secret" not in text and FILE_KEY["secret_access_key"] not in text
    assert "Signature=" not in text


def test_an_unknown_key_is_an_unrecognized_client(router: Router) -> None:
    unknown = {"access_key_id": "AKIDNOBODY0000001", "secret_access_key": "x"}
    assert refused(router.client(unknown)) == (
        "UnrecognizedClientException", 403,
        "The security token included in the request is invalid.")


def test_another_region_is_an_invalid_signature(router: Router) -> None:
    code, status, message = refused(router.client(FILE_KEY, region="us-east-1"))
    assert (code, status) == ("InvalidSignatureException", 403)
    assert "'us-east-1'" in message


@pytest.mark.parametrize(("offset_s", "start"), [
    (600.0, "Signature expired: "),           # the caller's clock 10 minutes behind
    (-600.0, "Signature not yet current: "),  # 10 minutes ahead
])
def test_a_skewed_clock_is_refused_as_aws_does(router: Router, offset_s: float,
                                               start: str) -> None:
    state = router.app.state.router
    state.wall_clock = lambda: time.time() + offset_s
    try:
        code, status, message = refused(router.client(ENV_KEY))
    finally:
        state.wall_clock = time.time
    assert (code, status) == ("InvalidSignatureException", 403)
    assert message.startswith(start)
    assert message.endswith(" 5 min.)")


def test_within_the_skew_window_is_served(router: Router) -> None:
    state = router.app.state.router
    state.wall_clock = lambda: time.time() + 240  # 4 minutes: inside AWS's 5
    try:
        assert invoke(router.client(ENV_KEY))["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        state.wall_clock = time.time


def test_a_key_not_allowed_the_experiment_is_access_denied(router: Router) -> None:
    before = router.logged()
    code, status, message = refused(router.client(NARROW_KEY))
    assert (code, status) == ("AccessDeniedException", 403)
    assert "'narrow'" in message and "'exp'" in message
    assert router.logged() == before


def test_the_path_is_canonicalised_as_botocore_encodes_it(router: Router) -> None:
    # botocore percent-encodes the name in the URL and again in the canonical URI: a
    # verified call reaches the route, which then refuses the name itself.
    code, status, message = refused(router.client(ENV_KEY), "no such:endpoint~x y")
    assert (code, status) == ("ValidationError", 400)
    assert "no such:endpoint~x y" in message


def signed(key: dict[str, Any], url: str, body: bytes) -> dict[str, str]:
    """Headers of a POST signed by botocore itself (what any SigV4 SDK sends)."""
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key["access_key_id"], key["secret_access_key"]), "sagemaker",
              REGION).add_auth(request)
    return dict(request.headers.items())


def test_a_body_changed_after_signing_is_an_invalid_signature(router: Router) -> None:
    url = f"{router.url}/endpoints/{SIM_ENDPOINT}/invocations"
    headers = signed(ENV_KEY, url, BODY)
    assert httpx.post(url, content=BODY, headers=headers).status_code == 200
    tampered = httpx.post(url, content=BODY.replace(b"0.1", b"0.9"), headers=headers)
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_the_decisions_api_takes_the_same_keys(router: Router) -> None:
    url = f"{router.url}/v1/experiments/exp/decisions"
    body = json.dumps({"context": {"country": "fr"}}).encode()
    answer = httpx.post(url, content=body, headers=signed(FILE_KEY, url, body))
    assert answer.status_code == 200 and answer.json()["variant"].startswith("Variant")
    unsigned = httpx.post(url, content=body)
    assert (unsigned.status_code, unsigned.headers["x-amzn-ErrorType"]) == (
        403, "MissingAuthenticationTokenException")
    wrong = {**FILE_KEY, "secret_access_key": "nope"}
    assert httpx.post(url, content=body, headers=signed(wrong, url, body)).headers[
        "x-amzn-ErrorType"] == "InvalidSignatureException"
    narrow = httpx.post(url, content=body, headers=signed(NARROW_KEY, url, body))
    assert (narrow.status_code, narrow.headers["x-amzn-ErrorType"]) == (
        403, "AccessDeniedException")


def test_rotation_in_the_keys_file_needs_no_restart(router: Router) -> None:
    rotated = {**FILE_KEY, "access_key_id": "AKIDFILECALLER002",
               "secret_access_key": "file-secret-2"}
    assert invoke(router.client(FILE_KEY))["ResponseMetadata"]["HTTPStatusCode"] == 200
    try:
        write_keys(router.keys_file, {"billing": rotated, "narrow": NARROW_KEY})
        time.sleep(STAT_INTERVAL_S + 0.2)  # the file is looked at once a second
        assert refused(router.client(FILE_KEY))[0] == "UnrecognizedClientException"
        assert invoke(router.client(rotated))["ResponseMetadata"]["HTTPStatusCode"] == 200
        # A half-written file keeps the keys read before.
        router.keys_file.write_text('{"billing": {"access_key_id": ')
        time.sleep(STAT_INTERVAL_S + 0.2)
        assert invoke(router.client(rotated))["ResponseMetadata"]["HTTPStatusCode"] == 200
        # The same secret under the same id, rewritten in place: still served.
        write_keys(router.keys_file, {"billing": {**rotated, "experiments": "*"}})
        time.sleep(STAT_INTERVAL_S + 0.2)
        assert invoke(router.client(rotated))["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert refused(router.client(NARROW_KEY))[0] == "UnrecognizedClientException"
    finally:
        write_keys(router.keys_file, {"billing": FILE_KEY, "narrow": NARROW_KEY})
        time.sleep(STAT_INTERVAL_S + 0.2)
    assert invoke(router.client(FILE_KEY))["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_mode_none_serves_unsigned_calls_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    config = parse_settings({"experiments": [experiment()]})
    assert config.auth.mode == "none"
    simulator = create_simulator(parse_variants(SIM_VARIANTS, endpoint=SIM_ENDPOINT, seed=1))
    with ExitStack() as stack, caplog.at_level(logging.WARNING, logger="router.auth"):
        sim_url = stack.enter_context(run_asgi(simulator))
        app = create_app(config, store=MemoryStore(), backend_factory=backend_factory(sim_url))
        url = stack.enter_context(run_asgi(app))
        answer = httpx.post(f"{url}/endpoints/{SIM_ENDPOINT}/invocations", content=BODY,
                            headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        OPEN_WARNING]


def sigv4_settings(keys_file: Path | None = None) -> Any:
    auth: dict[str, Any] = {"mode": "sigv4", "region": REGION}
    if keys_file is not None:
        auth["keys_file"] = str(keys_file)
    return parse_settings({"experiments": [experiment()], "auth": auth})


def test_sigv4_without_usable_keys_stops_the_start(tmp_path: Path) -> None:
    unused = backend_factory("http://127.0.0.1:9")  # never called: the start stops first

    def start(keys_file: Path | None) -> Any:
        return create_app(sigv4_settings(keys_file), store=MemoryStore(), secrets=Secrets(),
                          backend_factory=unused)

    with pytest.raises(ValueError, match="no caller keys"):
        start(None)
    with pytest.raises(ValueError, match=r"absent\.json"):
        start(tmp_path / "absent.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text("billing: {access_key_id: 'has/slash', secret_access_key: '',"
                   " experiments: ['exp']}\n")
    with pytest.raises(ValueError) as caught:
        start(bad)
    assert "billing.access_key_id" in str(caught.value)
    assert "billing.secret_access_key" in str(caught.value)


def test_the_same_key_id_twice_is_refused(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(json.dumps({"billing": FILE_KEY}))
    with pytest.raises(KeysError, match="also the key of 'ops'"):
        KeyRing(json.dumps({"ops": FILE_KEY}), str(keys_file))
    with pytest.raises(KeysError, match="also the key of 'a'"):
        KeyRing(json.dumps({"a": FILE_KEY, "b": FILE_KEY}), None)


def test_keys_are_never_in_a_repr() -> None:
    ring = KeyRing(json.dumps({"ops": ENV_KEY}), None)
    key = ring.get(ENV_KEY["access_key_id"])
    assert key is not None and key.allows("anything")
    assert ENV_KEY["secret_access_key"] not in repr(key)
    assert "env-secret" not in repr(Secrets.from_env(
        {"BANDIT_ROUTER_CALLER_KEYS": json.dumps({"ops": ENV_KEY})}))
