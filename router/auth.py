"""Caller authentication: the router verifies AWS Signature Version 4, as SageMaker does.

With ``auth: {mode: sigv4}`` every call to the invocations and decisions routes must be
signed for service ``sagemaker`` and the configured region with one of the caller keys
(``router.auth_keys``), so a plain boto3 ``sagemaker-runtime`` client works unchanged.
Refusals are AWS's own codes (``router.errors.CallerRefused``), all 403:

    no Authorization header           MissingAuthenticationTokenException
    not a well-formed SigV4 header    IncompleteSignatureException
    an access key id not configured   UnrecognizedClientException
    X-Amz-Date outside the window,
    another region or service,
    or a signature that differs       InvalidSignatureException
    a key not allowed the experiment  AccessDeniedException

The canonical request is built with the same code the router signs its own calls
with (``router.backends._sigv4``), which is byte-for-byte botocore's. Signatures are
compared in constant time; neither secrets nor signatures are ever logged.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from starlette.types import Scope

from common.config import AuthConfig, Secrets

from .auth_keys import CallerKey, KeyRing
from .backends._sigv4 import (
    ALGORITHM,
    canonical_request_hash,
    canonical_uri,
    derive_signing_key,
    signature,
    trimall,
)
from .errors import (
    AccessDenied,
    IncompleteSignature,
    InvalidSignature,
    MissingAuthenticationToken,
    UnrecognizedClient,
)

logger = logging.getLogger(__name__)

SERVICE = "sagemaker"
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_MISMATCH = ("The request signature we calculated does not match the signature you "
             "provided. Check your AWS Secret Access Key and signing method. Consult the "
             "service documentation for details.")
OPEN_WARNING = ("auth.mode is none: anyone who can reach the router can invoke every "
                "configured endpoint, and ask for decisions, as the router's own AWS "
                "identity; set auth.mode: sigv4 with caller keys to require signed calls")


def _stamp(epoch_s: float) -> str:
    return time.strftime(_TIMESTAMP, time.gmtime(epoch_s))


def scope_headers(scope: Scope) -> dict[str, list[str]]:
    """Every header of an ASGI request by lower-case name, repeated ones in order."""
    headers: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return headers


def canonical_query(query: str) -> str:
    """The canonical query string of a raw (encoded) query, as botocore builds it from a
    URL: pairs sorted by key, then value, left encoded as sent."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)


def _parse_authorization(header: str) -> tuple[list[str], list[str], str]:
    """(credential parts, signed header names, signature) of a SigV4 header."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != ALGORITHM:
        raise IncompleteSignature(f"Authorization header must use {ALGORITHM} (Signature "
                                  "Version 4).")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key] = value
    missing = [key for key in ("Credential", "SignedHeaders", "Signature") if not fields.get(key)]
    if missing:
        raise IncompleteSignature("Authorization header requires "
                                  + ", ".join(f"'{key}'" for key in missing)
                                  + " parameter(s).")
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or credential[4] != "aws4_request":
        raise IncompleteSignature("Credential must have the form "
                                  "<key id>/<yyyymmdd>/<region>/<service>/aws4_request.")
    return credential, fields["SignedHeaders"].split(";"), fields["Signature"]


@dataclass(frozen=True, slots=True)
class SignedCall:
    """A call whose signature header checked out, before its body is read."""

    key: CallerKey
    headers: Mapping[str, list[str]] = field(repr=False)
    signed_names: list[str]
    signature: str = field(repr=False)
    timestamp: str


class CallerAuth:
    """Verifies SigV4 signed calls against a :class:`KeyRing` and checks allow lists."""

    def __init__(self, config: AuthConfig, keys: KeyRing, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        if config.region is None:
            raise ValueError("auth.region: is required when mode is sigv4")
        self.region = config.region
        self.skew_s = config.clock_skew_seconds
        self.keys = keys
        self._wall_clock = wall_clock
        self._derived: dict[tuple[str, str, str], bytes] = {}  # (key id, secret, day)

    @classmethod
    def from_settings(cls, config: AuthConfig, secrets: Secrets, *,
                      wall_clock: Callable[[], float] = time.time) -> CallerAuth | None:
        """The verifier of ``config``, or None with a warning logged for ``mode: none``;
        ``auth_keys.KeysError`` (a ``ValueError``) when the keys cannot be used."""
        if config.mode == "none":
            logger.warning(OPEN_WARNING)
            return None
        auth = cls(config, KeyRing(secrets.caller_keys, config.keys_file),
                   wall_clock=wall_clock)
        logger.info("caller authentication: SigV4 for %s, keys: %s", config.region,
                    ", ".join(auth.keys.names()))
        return auth

    def verify(self, scope: Scope, body: bytes) -> CallerKey:
        """The key that signed this request; a ``CallerRefused`` error otherwise."""
        return self.check_body(self.check_headers(scope), scope, body)

    def check_headers(self, scope: Scope) -> SignedCall:
        """Everything that can be checked before the body is read (so an unsigned or
        unknown caller never makes the router read 6 MB): the header's form, the key,
        the date and the credential's scope."""
        headers = scope_headers(scope)
        authorization = headers.get("authorization", [""])[0]
        if not authorization:
            raise MissingAuthenticationToken("Missing Authentication Token")
        credential, signed_names, given = _parse_authorization(authorization)
        key_id, day, region, service, _ = credential
        timestamp = headers.get("x-amz-date", [""])[0]
        try:
            signed_at = calendar.timegm(time.strptime(timestamp, _TIMESTAMP))
        except ValueError:
            raise IncompleteSignature("Authorization header requires existence of a valid "
                                      "'X-Amz-Date' header.") from None
        if "host" not in signed_names or "x-amz-date" not in signed_names:
            raise IncompleteSignature("SignedHeaders must include host and x-amz-date.")
        key = self.keys.get(key_id)
        if key is None:
            raise UnrecognizedClient("The security token included in the request is invalid.")
        now = self._wall_clock()
        window = f"{self.skew_s // 60} min." if self.skew_s % 60 == 0 else f"{self.skew_s} s"
        if signed_at < now - self.skew_s:
            raise InvalidSignature(
                f"Signature expired: {timestamp} is now earlier than "
                f"{_stamp(now - self.skew_s)} ({_stamp(now)} - {window})")
        if signed_at > now + self.skew_s:
            raise InvalidSignature(
                f"Signature not yet current: {timestamp} is still later than "
                f"{_stamp(now + self.skew_s)} ({_stamp(now)} + {window})")
        if region != self.region:
            raise InvalidSignature(f"Credential should be scoped to a valid region, not "
                                   f"'{region}'.")
        if service != SERVICE:
            raise InvalidSignature(f"Credential should be scoped to correct service: "
                                   f"'{SERVICE}'.")
        if day != timestamp[:8]:
            raise InvalidSignature(f"Date in Credential scope does not match YYYYMMDD from "
                                   f"ISO-8601 version of date from HTTP: '{day}' != "
                                   f"'{timestamp[:8]}'.")
        return SignedCall(key, headers, signed_names, given, timestamp)

    def check_body(self, call: SignedCall, scope: Scope, body: bytes) -> CallerKey:
        """The key of ``call`` once its signature over ``scope`` and ``body`` matches."""
        expected = self._signature(call, scope, body)
        if not hmac.compare_digest(expected.encode(), call.signature.encode()):
            raise InvalidSignature(_MISMATCH)
        return call.key

    def _signature(self, call: SignedCall, scope: Scope, body: bytes) -> str:
        key, headers, signed_names, timestamp = (call.key, call.headers, call.signed_names,
                                                 call.timestamp)
        body_hash = hashlib.sha256(body).hexdigest()
        claimed = headers.get("x-amz-content-sha256")
        if claimed is not None and claimed[0] != body_hash:
            # A signed claim about another body: the body was changed on the way.
            raise InvalidSignature(_MISMATCH)
        header_lines = "".join(
            f"{name}:{','.join(trimall(value) for value in headers.get(name, []))}\n"
            for name in signed_names)
        raw_path = scope.get("raw_path")
        path = (raw_path.decode("latin-1") if raw_path
                else quote(scope["path"], safe="/~!$&'()*+,;=:@"))
        query = scope.get("query_string", b"").decode("latin-1")
        request_hash = canonical_request_hash(
            scope["method"], canonical_uri(path.partition("?")[0]), canonical_query(query),
            header_lines, ";".join(signed_names), body_hash)
        day = timestamp[:8]
        cache_key = (key.access_key_id, key.secret_access_key, day)
        signing_key = self._derived.get(cache_key)
        if signing_key is None:
            if len(self._derived) > 256:  # rotated keys and past days: start afresh
                self._derived.clear()
            signing_key = self._derived[cache_key] = derive_signing_key(
                key.secret_access_key, day, self.region, SERVICE)
        return signature(signing_key, timestamp, f"{day}/{self.region}/{SERVICE}/aws4_request",
                         request_hash)

    def authorize(self, key: CallerKey, experiment: str) -> None:
        """Refuse a key whose allow list lacks ``experiment``."""
        if not key.allows(experiment):
            raise AccessDenied(f"Caller key '{key.name}' is not authorized for experiment "
                               f"'{experiment}'")
