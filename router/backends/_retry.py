"""SageMaker Runtime's error answers as router errors, and botocore's "standard" retry rules.

Retryable, as botocore's standard mode: throttling codes (and HTTP 429), transient
codes and statuses 500/502/503/504, connection errors. Delays are "full jitter":
uniform in [0, min(max_backoff, base · 2^(attempt-1))]. A retry quota (500 tokens;
a retry costs 5, a retry after a connection error or timeout 10, a success refunds
what its retries took, else 1) stops retry storms when SageMaker is down.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from router.errors import (
    InternalFailure,
    ModelError,
    ModelNotReady,
    RouterError,
    ServiceUnavailable,
    ValidationError,
)

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException"})
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException",
                             "PriorRequestNotComplete", "InternalDependencyException"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt: the error to raise if it is the last, and whether to retry."""

    error: RouterError
    retryable: bool
    connection: bool = False  # no answer at all: a retry then costs more quota


def _document(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _status(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 500  # SageMaker always sends it; a garbled one is still a server error


def classify(status: int, headers: Mapping[str, str], body: bytes,
             max_chars: int = 1024) -> Failure:
    """The router error for a non-2xx answer, as botocore's rest-json parser reads it."""
    document = _document(body)
    code = headers.get("x-amzn-ErrorType", "").split(":", 1)[0]
    if not code:
        code = str(document.get("__type") or document.get("code") or document.get("Code") or "")
    code = code.rsplit("#", 1)[-1]
    message = str(document.get("message") or document.get("Message")
                  or body[:max_chars].decode("utf-8", errors="replace") or f"HTTP {status}")
    if code == "ModelError":
        arn = document.get("LogStreamArn")
        return Failure(ModelError(message,
                                  original_status_code=_status(document.get("OriginalStatusCode")),
                                  original_message=str(document.get("OriginalMessage", "")),
                                  log_stream_arn=None if arn is None else str(arn)), False)
    if code == "ValidationError":
        return Failure(ValidationError(message), False)
    if code == "ModelNotReadyException":
        return Failure(ModelNotReady(message), True)
    if code in THROTTLING_CODES or status == 429:
        return Failure(ServiceUnavailable(f"SageMaker throttled the call ({code or status}): "
                                          f"{message}"), True)
    if code == "ServiceUnavailable" or code in TRANSIENT_CODES or status in (502, 503, 504):
        return Failure(ServiceUnavailable(message), True)
    if code == "InternalFailure" or status >= 500:
        return Failure(InternalFailure(message), status in TRANSIENT_STATUSES
                       or code == "InternalFailure")
    # Any other 4xx (signature, credentials, permissions) is the router's fault, not the
    # caller's: an internal failure that names what SageMaker said.
    return Failure(InternalFailure(f"SageMaker refused the call ({status} {code}): {message}"),
                   False)


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Full-jitter delay before retry number ``attempt`` (1, 2, …)."""
    cap = min(max_s, base_s * 2.0 ** (attempt - 1))
    return random.random() * cap  # noqa: S311 (jitter, not cryptography)


class RetryQuota:
    """botocore's standard retry quota: retries spend tokens, successes refund them."""

    def __init__(self, capacity: int = 500) -> None:
        self.capacity = capacity
        self.available = capacity
        self._lock = threading.Lock()

    def acquire(self, timeout_error: bool) -> int:
        """Tokens taken for one retry, or 0 when the quota is spent (do not retry)."""
        cost = 10 if timeout_error else 5
        with self._lock:
            if cost > self.available:
                return 0
            self.available -= cost
            return cost

    def release(self, tokens: int) -> None:
        """Refund after a success: what its retries took, else 1."""
        with self._lock:
            self.available = min(self.capacity, self.available + (tokens or 1))
