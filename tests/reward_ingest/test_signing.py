"""reward_ingest.signing: HMAC-SHA256 over "timestamp." + body, rotation, freshness."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reward_ingest.errors import SignatureError
from reward_ingest.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signature, verify

SECRET = "whsec_test"  # noqa: S105 - a test secret
BODY = b'{"event_id":"e1","reward":1}'
T = 1_700_000_000


def check(headers: dict[str, str], body: bytes = BODY, now: float = T,
          secrets: tuple[str, ...] = (SECRET,), tolerance_s: float = 300) -> None:
    verify(secrets, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), body,
           now=now, tolerance_s=tolerance_s)


def refused(headers: dict[str, str], **kwargs: Any) -> str:
    with pytest.raises(SignatureError) as info:
        check(headers, **kwargs)
    assert info.value.message == str(info.value)
    return info.value.message


def test_signature_matches_an_independent_hmac() -> None:
    # Computed with `printf '1700000000.{"event_id":"e1","reward":1}' | openssl dgst
    # -sha256 -hmac whsec_test`, so the scheme is the documented one, not just self-consistent.
    expected = "cf272ec1c8a78d22ee6146fe44158d530a0bd7be286a24de1380b95373b246bf"
    assert sign(SECRET, BODY, T) == {TIMESTAMP_HEADER: "1700000000",
                                     SIGNATURE_HEADER: f"sha256={expected}"}
    assert signature(SECRET, "1700000000", BODY) == expected
    assert hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest() \
        == expected


def test_a_good_signature_verifies_within_the_tolerance() -> None:
    headers = sign(SECRET, BODY, T)
    check(headers)
    check(headers, now=T + 300)  # the bounds are inclusive
    check(headers, now=T - 300)
    check(headers, now=T + 299.9)


def test_uppercase_hex_is_the_same_digest() -> None:
    headers = sign(SECRET, BODY, T)
    headers[SIGNATURE_HEADER] = "sha256=" + headers[SIGNATURE_HEADER][7:].upper()
    check(headers)


def test_either_secret_verifies_during_rotation() -> None:
    secrets = ("old-secret", "new-secret")
    check(sign("old-secret", BODY, T), secrets=secrets)
    check(sign("new-secret", BODY, T), secrets=secrets)
    message = refused(sign("third-secret", BODY, T), secrets=secrets)
    assert message == "bad signature: matches none of the configured webhook secrets"


def test_a_stale_timestamp_is_refused_as_stale() -> None:
    message = refused(sign(SECRET, BODY, T), now=T + 301)
    assert message == "stale timestamp: 301 s old (tolerance 300 s)"
    assert "stale" in refused(sign(SECRET, BODY, T), now=T + 60, tolerance_s=30)


def test_a_future_timestamp_is_refused_naming_the_clock() -> None:
    message = refused(sign(SECRET, BODY, T), now=T - 400)
    assert message == ("timestamp 400 s in the future (tolerance 300 s); "
                       "check the sender's clock")


def test_a_forgery_is_called_a_bad_signature_even_when_stale() -> None:
    # The signature is checked first: "stale" is only said of authentic requests.
    message = refused(sign("wrong", BODY, T), now=T + 10_000)
    assert message.startswith("bad signature")


@pytest.mark.parametrize("body", [BODY + b" ", b'{"event_id":"e1","reward":2}', b""])
def test_a_tampered_body_is_refused(body: bytes) -> None:
    assert refused(sign(SECRET, BODY, T), body=body).startswith("bad signature")


def test_a_changed_timestamp_is_refused() -> None:
    headers = sign(SECRET, BODY, T)
    headers[TIMESTAMP_HEADER] = str(T + 1)
    assert refused(headers, now=T).startswith("bad signature")


@pytest.mark.parametrize(("header", "value"), [
    (SIGNATURE_HEADER, "sha1=" + "0" * 40),
    (SIGNATURE_HEADER, "0" * 64),
    (SIGNATURE_HEADER, "sha256=" + "0" * 63),
    (SIGNATURE_HEADER, "sha256=" + "0" * 65),
    (SIGNATURE_HEADER, "sha256=" + "g" * 64),
    (SIGNATURE_HEADER, "SHA256=" + "0" * 64),
    (TIMESTAMP_HEADER, "1.7e9"),
    (TIMESTAMP_HEADER, "-1700000000"),
    (TIMESTAMP_HEADER, " 1700000000"),
    (TIMESTAMP_HEADER, "+1700000000"),
    (TIMESTAMP_HEADER, "soon"),
    (TIMESTAMP_HEADER, "1" * 13),
])
def test_a_malformed_header_is_named(header: str, value: str) -> None:
    headers = sign(SECRET, BODY, T)
    headers[header] = value
    assert refused(headers).startswith(f"malformed {header}: expected ")


@pytest.mark.parametrize("header", [TIMESTAMP_HEADER, SIGNATURE_HEADER])
@pytest.mark.parametrize("empty", [None, ""])
def test_a_missing_header_is_named(header: str, empty: str | None) -> None:
    headers = sign(SECRET, BODY, T)
    del headers[header]
    if empty is not None:
        headers[header] = empty
    assert refused(headers) == f"missing {header} header"


def test_verify_without_secrets_and_sign_before_1970_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        check(sign(SECRET, BODY, T), secrets=())
    with pytest.raises(ValueError, match="Unix seconds"):
        sign(SECRET, BODY, -1)


secrets_st = st.text(min_size=1, max_size=40).filter(lambda s: "," not in s)


@given(secret=secrets_st, body=st.binary(max_size=512), timestamp=st.integers(0, 10**11))
def test_any_signed_body_verifies(secret: str, body: bytes, timestamp: int) -> None:
    check(sign(secret, body, timestamp), body=body, now=timestamp, secrets=(secret,))


@given(secret=secrets_st, body=st.binary(min_size=1, max_size=512),
       timestamp=st.integers(0, 10**11), data=st.data())
def test_any_single_byte_change_fails(secret: str, body: bytes, timestamp: int,
                                      data: st.DataObject) -> None:
    headers = sign(secret, body, timestamp)
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="byte")
    changed = body[:index] + bytes([byte]) + body[index + 1:]
    with pytest.raises(SignatureError, match=r"^bad signature"):
        check(headers, body=changed, now=timestamp, secrets=(secret,))
