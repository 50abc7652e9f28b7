"""Signature Version 4 for one fixed request shape, with the signing key cached.

botocore's ``SigV4Auth.add_auth`` costs ~100 µs per request here: it builds an
``AWSRequest``, re-parses the URL, copies headers into ``HTTPHeaders`` twice and
derives the signing key with four HMACs every time. The router signs the same
shape over and over (``POST``, one path per endpoint, no query string), so this
signer takes the canonical path once per endpoint, derives the key once per
(secret, UTC day), formats the timestamp once per second, and per request only
hashes the body and the canonical request and computes one HMAC.

The output is byte-for-byte botocore's (``tests/router/test_sigv4.py`` compares
the two over generated headers, bodies, session tokens and a change of day):
the same ``X-Amz-Date``, ``X-Amz-Security-Token`` and ``Authorization`` headers.
The pieces (``canonical_uri``, ``derive_signing_key``, ``canonical_request_hash``,
``signature``) also verify callers' signatures (``router.auth``), so the router
checks exactly what it would send.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import NamedTuple, Protocol
from urllib.parse import quote, urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST
from botocore.utils import normalize_url_path

ALGORITHM = "AWS4-HMAC-SHA256"
_EXCLUDED = frozenset(SIGNED_HEADERS_BLACKLIST)
_REPLACED = frozenset({"authorization", "x-amz-date"})
_REPLACED_WITH_TOKEN = _REPLACED | {"x-amz-security-token"}


class Credentials(Protocol):
    """What signing reads: botocore's ``ReadOnlyCredentials`` has these."""

    @property
    def access_key(self) -> str | None: ...
    @property
    def secret_key(self) -> str | None: ...
    @property
    def token(self) -> str | None: ...


class SigningCredentials(NamedTuple):
    """Plain credentials for :meth:`SigV4Signer.sign`."""

    access_key: str
    secret_key: str
    token: str | None


def canonical_path(url: str) -> str:
    """The canonical URI of ``url``, as botocore's ``SigV4Auth`` computes it."""
    return canonical_uri(urlsplit(url).path)


def canonical_uri(path: str) -> str:
    """The canonical URI of a request path as sent on the wire (still percent-encoded):
    botocore normalises it and encodes it once more, so ``%20`` is signed as ``%2520``."""
    return quote(normalize_url_path(path), safe="/~")


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def trimall(value: str) -> str:
    """SigV4's Trimall: no leading or trailing space, runs of spaces as one."""
    return " ".join(value.split())


def derive_signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    """The SigV4 signing key of ``secret_key`` for one UTC day (``yyyymmdd``)."""
    key = _hmac(f"AWS4{secret_key}".encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_request_hash(method: str, path: str, query: str, header_lines: str,
                           signed_headers: str, payload_hash: str) -> str:
    """The hex SHA-256 of the canonical request; ``header_lines`` ends in a newline."""
    return hashlib.sha256(
        f"{method}\n{path}\n{query}\n{header_lines}\n{signed_headers}\n"
        f"{payload_hash}".encode()).hexdigest()


def signature(key: bytes, timestamp: str, scope: str, request_hash: str) -> str:
    """The hex signature of a canonical request's hash with a derived ``key``."""
    return hmac.new(key, f"{ALGORITHM}\n{timestamp}\n{scope}\n{request_hash}".encode(),
                    hashlib.sha256).hexdigest()


class SigV4Signer:
    """Signs ``POST`` requests without a query string for one service and region."""

    def __init__(self, service: str, region: str) -> None:
        self.service = service
        self.region = region
        self._second = -1
        self._timestamp = ""
        self._key_for: tuple[str, str] | None = None  # (secret key, day)
        self._key = b""

    def _now(self, epoch_s: float | None) -> str:
        second = int(time.time() if epoch_s is None else epoch_s)
        if second != self._second:
            self._timestamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._second = second
        return self._timestamp

    def _signing_key(self, secret_key: str, day: str) -> bytes:
        if self._key_for != (secret_key, day):
            self._key = derive_signing_key(secret_key, day, self.region, self.service)
            self._key_for = (secret_key, day)
        return self._key

    def sign(self, credentials: Credentials, path: str, headers: Mapping[str, str],
             body: bytes, *, epoch_s: float | None = None) -> dict[str, str]:
        """``headers`` (which must include ``Host``) plus ``X-Amz-Date``, the session
        token if any, and ``Authorization``; ``path`` from :func:`canonical_path`.
        ``epoch_s`` is the signing time (default: now). A ``Date`` header is refused:
        botocore would sign with it instead of ``X-Amz-Date``, and the router never
        sends one."""
        access_key, secret_key = credentials.access_key, credentials.secret_key
        if not access_key or secret_key is None:
            raise ValueError("credentials without an access key or a secret key")
        timestamp = self._now(epoch_s)
        # What botocore replaces: a retry's old signature and date, and the token
        # when the credentials carry one.
        if any(name.lower() == "date" for name in headers):
            raise ValueError("SigV4Signer signs with X-Amz-Date; drop the Date header")
        replaced = _REPLACED_WITH_TOKEN if credentials.token else _REPLACED
        signed = {name: value for name, value in headers.items()
                  if name.lower() not in replaced}
        signed["X-Amz-Date"] = timestamp
        if credentials.token:
            signed["X-Amz-Security-Token"] = credentials.token
        canonical: dict[str, list[str]] = {}
        for name, value in signed.items():
            lowered = name.lower()
            if lowered not in _EXCLUDED:
                canonical.setdefault(lowered, []).append(trimall(value))
        names = sorted(canonical)
        signed_headers = ";".join(names)
        header_lines = "".join(f"{name}:{','.join(canonical[name])}\n" for name in names)
        request_hash = canonical_request_hash("POST", path, "", header_lines, signed_headers,
                                              hashlib.sha256(body).hexdigest())
        day = timestamp[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        signed_with = signature(self._signing_key(secret_key, day), timestamp, scope,
                                request_hash)
        signed["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, "
                                   f"SignedHeaders={signed_headers}, Signature={signed_with}")
        return signed
