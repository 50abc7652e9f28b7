"""The router's exceptions, in one place.

    Exception
    ├── RouterError                    answered to invocation clients as SageMaker Runtime's
    │   │                              own errors, so boto3 raises the same classes
    │   ├── ValidationError        400  unknown endpoint, bad context, body too large
    │   ├── ModelError             424  the variant failed (OriginalStatusCode, OriginalMessage)
    │   ├── ModelNotReady          429  ModelNotReadyException
    │   ├── InternalFailure        500
    │   ├── CallerRefused          403  the caller's SigV4 signature or key (``router.auth``):
    │   │                               MissingAuthenticationToken, UnrecognizedClient,
    │   │                               IncompleteSignature, InvalidSignature, AccessDenied
    │   └── ServiceUnavailable     503  throttled after retries, backend unreachable, log full
    └── RegistryError                  a registry operation that could not be done
        ├── RegistryUnavailableError   the store did not answer: keep what you have, retry
        └── RegistryConflictError      the registry moved past the revision the caller read

``error_response`` renders a ``RouterError`` in the rest-json shape botocore parses:
the ``x-amzn-ErrorType`` header names the code, the JSON body carries ``message``
and the shape's other members. The admin API and the reward webhook answer
``common.api_errors.ApiError`` instead, as ``{"error", "message", "problems"}``.
"""

from __future__ import annotations

import json
import uuid

from starlette.responses import Response


class RouterError(Exception):
    """An error the router answers with; ``code`` is SageMaker Runtime's error name."""

    code = "InternalFailure"
    status = 500

    def __init__(self, message: str, **extra: str | int) -> None:
        super().__init__(message)
        self.message = message
        self.extra: dict[str, str | int] = dict(extra)


class ValidationError(RouterError):
    """The request is invalid (400)."""

    code = "ValidationError"
    status = 400


class ModelError(RouterError):
    """The variant answered with an error (424), passed through as SageMaker does."""

    code = "ModelError"
    status = 424

    def __init__(self, message: str, *, original_status_code: int,
                 original_message: str, log_stream_arn: str | None = None) -> None:
        extra: dict[str, str | int] = {"OriginalStatusCode": original_status_code,
                                       "OriginalMessage": original_message}
        if log_stream_arn is not None:
            extra["LogStreamArn"] = log_stream_arn
        super().__init__(message, **extra)
        self.original_status_code = original_status_code
        self.original_message = original_message


class ModelNotReady(RouterError):
    """The variant is not ready to serve (429)."""

    code = "ModelNotReadyException"
    status = 429


class InternalFailure(RouterError):
    """Something failed inside the router (500)."""

    code = "InternalFailure"
    status = 500


class CallerRefused(RouterError):
    """The caller is not authenticated or not allowed (403); the subclasses are the codes
    AWS answers for the same faults, so boto3 raises what its users already handle."""

    code = "AccessDeniedException"
    status = 403


class MissingAuthenticationToken(CallerRefused):
    """No ``Authorization`` header (an unsigned call)."""

    code = "MissingAuthenticationTokenException"


class UnrecognizedClient(CallerRefused):
    """The access key id is not one the router is configured with."""

    code = "UnrecognizedClientException"


class IncompleteSignature(CallerRefused):
    """The ``Authorization`` header is not a well-formed SigV4 one."""

    code = "IncompleteSignatureException"


class InvalidSignature(CallerRefused):
    """The signature does not match, is for another region or service, or has expired."""

    code = "InvalidSignatureException"


class AccessDenied(CallerRefused):
    """The key is valid but not allowed for this experiment."""

    code = "AccessDeniedException"


class ServiceUnavailable(RouterError):
    """The router or its backend cannot serve now; retry later (503)."""

    code = "ServiceUnavailable"
    status = 503


class RegistryError(Exception):
    """A registry operation that could not be done."""


class RegistryUnavailableError(RegistryError):
    """The backing store did not answer; the caller keeps what it has and retries."""


class RegistryConflictError(RegistryError):
    """The registry changed since the revision the caller read (optimistic concurrency)."""


def error_response(error: RouterError, request_id: str | None = None) -> Response:
    """``error`` as a rest-json error response that boto3 maps to its exception class."""
    request_id = request_id or str(uuid.uuid4())
    body = json.dumps({"message": error.message, **error.extra}, separators=(",", ":"))
    return Response(
        content=body,
        status_code=error.status,
        media_type="application/json",
        headers={"x-amzn-ErrorType": error.code, "x-amzn-RequestId": request_id},
    )
