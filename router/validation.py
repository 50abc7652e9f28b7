"""Checks on SageMaker Runtime's request headers, with its own limits and patterns.

The limits and patterns are botocore's ``sagemaker-runtime`` service model
(``InvokeEndpoint`` members), so a request boto3 would refuse is refused here
with a ``ValidationError`` naming the header.
"""

from __future__ import annotations

import re

from .errors import ValidationError

MAX_BODY_BYTES = 6 * 1024 * 1024  # Body: max 6291456
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")  # EndpointName, TargetVariant
_PRINTABLE_ID = re.compile(r"\S[\x20-\x7e]*")  # InferenceId: \A\S[\p{Print}]*\z


def check_name(header: str, value: str, max_length: int = 63) -> str:
    """An endpoint or variant name: letters, digits and inner hyphens, at most 63."""
    if len(value) > max_length or not _NAME.fullmatch(value):
        raise ValidationError(f"{header}: {value[:80]!r} is not a valid name (letters, digits "
                              f"and inner hyphens, at most {max_length} characters)")
    return value


def check_inference_id(value: str) -> str:
    """``X-Amzn-SageMaker-Inference-Id``: 1–64 printable characters, not starting with a space."""
    if not 1 <= len(value) <= 64 or not _PRINTABLE_ID.fullmatch(value):
        raise ValidationError("X-Amzn-SageMaker-Inference-Id: must be 1-64 printable "
                              "characters not starting with whitespace")
    return value


def check_ascii_header(header: str, value: str, max_length: int = 1024) -> str:
    """Content-Type, Accept, custom attributes: ASCII, at most 1024 characters."""
    if len(value) > max_length or not value.isascii():
        raise ValidationError(f"{header}: must be ASCII, at most {max_length} characters")
    return value


def check_body_size(size: int) -> None:
    """SageMaker's 6 MB payload limit."""
    if size > MAX_BODY_BYTES:
        raise ValidationError(f"Body: {size} bytes exceeds the {MAX_BODY_BYTES}-byte "
                              "(6 MB) limit")
