"""The cached SigV4 signer gives botocore's SigV4Auth headers, byte for byte.

botocore's signer reads the clock itself; to compare at a chosen instant (a change
of UTC day) its clock function is pinned with monkeypatch. Everything else is
botocore's real code.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from router.backends._sigv4 import SigningCredentials, SigV4Signer, canonical_path

URL = "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/my-endpoint/invocations"
HOST = "runtime.sagemaker.eu-west-1.amazonaws.com"
KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

header_values = st.text(alphabet=string.ascii_letters + string.digits + " \t,;=/-_.", min_size=1,
                        max_size=40).filter(lambda value: value.strip() != "")


def botocore_headers(credentials: SigningCredentials, url: str, headers: Mapping[str, str],
                     body: bytes, region: str = "eu-west-1") -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(ReadOnlyCredentials(*credentials), "sagemaker", region).add_auth(request)
    return dict(request.headers.items())


def pin_botocore_clock(monkeypatch: pytest.MonkeyPatch, at: dt.datetime) -> None:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: at)


@settings(max_examples=200, deadline=None)
@given(
    content_type=st.sampled_from(["application/json", "text/csv", "application/x-npy"]),
    accept=st.one_of(st.none(), header_values),
    attributes=st.one_of(st.none(), header_values),
    inference_id=st.one_of(st.none(), st.text(string.ascii_letters + "-", min_size=1,
                                                max_size=64)),
    variant=st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=63),
    body=st.binary(max_size=2048),
    token=st.one_of(st.none(), st.text(string.ascii_letters + string.digits + "/+=",
                                       min_size=1, max_size=80)),
)
def test_same_headers_as_botocore(content_type: str, accept: str | None,
                                  attributes: str | None, inference_id: str | None,
                                  variant: str, body: bytes, token: str | None) -> None:
    headers = {"Content-Type": content_type, "Host": HOST,
               "X-Amzn-SageMaker-Target-Variant": variant}
    for name, value in (("Accept", accept), ("X-Amzn-SageMaker-Custom-Attributes", attributes),
                        ("X-Amzn-SageMaker-Inference-Id", inference_id)):
        if value is not None:
            headers[name] = value
    credentials = SigningCredentials(KEY, SECRET, token)
    expected = botocore_headers(credentials, URL, headers, body)
    # Sign at the second botocore signed at: same X-Amz-Date, so same signature.
    at = dt.datetime.strptime(expected["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    ours = SigV4Signer("sagemaker", "eu-west-1").sign(credentials, canonical_path(URL), headers,
                                                      body, epoch_s=at.timestamp())
    assert ours == expected


def test_key_and_timestamp_follow_the_clock_across_midnight(
        monkeypatch: pytest.MonkeyPatch) -> None:
    signer = SigV4Signer("sagemaker", "us-east-1")
    url = "http://127.0.0.1:8080/endpoints/e/invocations"
    headers = {"Content-Type": "application/json", "Host": "127.0.0.1:8080"}
    credentials = SigningCredentials(KEY, SECRET, None)
    seen = set()
    for at in (dt.datetime(2026, 11, 25, 23, 59, 59, tzinfo=dt.UTC),
               dt.datetime(2026, 11, 26, 0, 0, 0, tzinfo=dt.UTC),
               dt.datetime(2026, 11, 26, 0, 0, 0, 600_000, tzinfo=dt.UTC),
               dt.datetime(2026, 11, 26, 0, 0, 1, tzinfo=dt.UTC)):
        pin_botocore_clock(monkeypatch, at)
        expected = botocore_headers(credentials, url, headers, b"{}", region="us-east-1")
        ours = signer.sign(credentials, canonical_path(url), headers, b"{}",
                           epoch_s=at.timestamp())
        assert ours == expected
        seen.add(ours["Authorization"].split("/")[1])
    assert seen == {"20261125", "20261126"}


def test_rotated_secret_and_token_change_the_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    pin_botocore_clock(monkeypatch, dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC))
    signer = SigV4Signer("sagemaker", "eu-west-1")
    headers = {"Content-Type": "application/json", "Host": HOST}
    at = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC).timestamp()
    signatures = set()
    for credentials in (SigningCredentials(KEY, SECRET, None),
                        SigningCredentials(KEY, "rotated-secret", "token-1"),
                        SigningCredentials(KEY, "rotated-secret", "token-2"),
                        SigningCredentials(KEY, SECRET, None)):
        ours = signer.sign(credentials, canonical_path(URL), headers, b"x", epoch_s=at)
        assert ours == botocore_headers(credentials, URL, headers, b"x")
        signatures.add(ours["Authorization"])
    assert len(signatures) == 3  # the first secret again signs as it did at first


def test_retry_headers_are_replaced_not_doubled() -> None:
    signer = SigV4Signer("sagemaker", "eu-west-1")
    credentials = SigningCredentials(KEY, SECRET, "token")
    headers = {"Content-Type": "application/json", "Host": HOST}
    first = signer.sign(credentials, canonical_path(URL), headers, b"{}", epoch_s=1e9)
    again = signer.sign(credentials, canonical_path(URL), first, b"{}", epoch_s=1e9 + 5)
    assert set(again) == set(first)
    assert again["Authorization"] != first["Authorization"]


def test_canonical_path_normalises_as_botocore() -> None:
    assert canonical_path("https://h/endpoints/a%2Fb/invocations") == \
        "/endpoints/a%252Fb/invocations"
    assert canonical_path("https://h//endpoints/./e/invocations") == "/endpoints/e/invocations"
    assert canonical_path("https://h") == "/"


def test_a_date_header_is_refused() -> None:
    with pytest.raises(ValueError, match="Date"):
        SigV4Signer("sagemaker", "eu-west-1").sign(
            SigningCredentials(KEY, SECRET, None), "/", {"Host": HOST, "Date": "x"}, b"")
