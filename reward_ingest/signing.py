"""Webhook signatures: HMAC-SHA256 over the timestamp and the raw body.

A sender signs ``f"{timestamp}.".encode() + body`` with a shared secret and sends

    X-Bandit-Timestamp: 1718000000                  (Unix seconds, digits only)
    X-Bandit-Signature: sha256=<64 hex digits>

The receiver accepts the request when the signature matches *any* configured secret
(two are configured while a secret is rotated) and the timestamp is within
``tolerance_s`` of its own clock, either way: the timestamp is under the signature,
so an old delivery cannot be replayed with a fresh one, and a captured request is
only replayable within the tolerance (where reward dedupe catches it).

    headers = sign(secret, body, timestamp=int(time.time()))
    verify(secrets, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], body, now)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from reward_ingest.errors import SignatureError

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "sign",
    "signature",
    "verify",
]

TIMESTAMP_HEADER = "X-Bandit-Timestamp"
SIGNATURE_HEADER = "X-Bandit-Signature"
DEFAULT_TOLERANCE_S = 300.0

_SCHEME = "sha256="
# Digits only: the timestamp is signed as written, so "+17e8" or " 17" must not pass
# for the same instant under a different string. 12 digits reach the year 33658.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return mac.hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The two headers that make ``body`` verifiable at Unix second ``timestamp``."""
    if timestamp < 0:
        raise ValueError(f"timestamp must be Unix seconds >= 0, got {timestamp}")
    stamp = str(int(timestamp))
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: _SCHEME + signature(secret, stamp, body)}


def verify(secrets: Sequence[str], timestamp_header: str | None,
           signature_header: str | None, body: bytes, now: float,
           tolerance_s: float = DEFAULT_TOLERANCE_S) -> None:
    """Return if ``body`` is signed by one of ``secrets`` within ``tolerance_s`` of ``now``.

    Raises ``SignatureError`` for a missing or malformed header, a signature that
    matches no secret, or a timestamp more than ``tolerance_s`` seconds away from
    ``now`` (Unix seconds) in the past or the future. The signature is checked
    first, so "stale" is only ever said of an authentic request (a late retry or a
    replay), never of a forgery. Every secret is compared, in constant time, so the
    timing reveals neither which secret matched nor how much of a digest did.
    """
    if not secrets:
        raise ValueError("verify needs at least one secret (unsigned mode skips verify)")
    if not timestamp_header:
        raise SignatureError(f"missing {TIMESTAMP_HEADER} header")
    if not signature_header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    if not _TIMESTAMP.fullmatch(timestamp_header):
        raise SignatureError(f"malformed {TIMESTAMP_HEADER}: expected Unix seconds (digits)")
    digest = signature_header.removeprefix(_SCHEME)
    if digest == signature_header or not _HEX_DIGEST.fullmatch(digest):
        raise SignatureError(f"malformed {SIGNATURE_HEADER}: expected sha256=<64 hex digits>")
    given = digest.lower().encode()
    matched = False
    for secret in secrets:  # no early exit: see the docstring
        expected = signature(secret, timestamp_header, body).encode()
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureError("bad signature: matches none of the configured webhook secrets")
    age = now - int(timestamp_header)
    if age > tolerance_s:
        raise SignatureError(f"stale timestamp: {age:.0f} s old (tolerance {tolerance_s:g} s)")
    if -age > tolerance_s:
        raise SignatureError(f"timestamp {-age:.0f} s in the future (tolerance "
                             f"{tolerance_s:g} s); check the sender's clock")
