"""The reward ingester's exceptions, in one place.

    Exception
    ├── RewardStoreUnavailableError   the reward log could not record now; nothing was
    │                                 recorded twice: answer 503, the sender retries
    ├── SignatureError                a webhook request is not authentic or not fresh (401)
    ├── LeaseLost                     a worker's lease is gone (expired, taken, fenced):
    │                                 stop writing, start over from the store
    ├── common.api_errors.ApiError
    │   └── DeliveryError             a webhook delivery refused (4xx/5xx): status, error
    │                                 code, message, the problems of a bad body, and how
    │                                 many rewards it carried
    └── RuntimeError
        └── PushError                 a weight push that could not happen; carries its
            │                         ``PushRecord`` when there is one
            ├── EndpointNotFoundError     DescribeEndpoint does not know the endpoint
            └── VariantMismatchError      the experiment's variants and the endpoint's
                                          production variants differ

Store and network failures of the running loop (``redis.exceptions.RedisError``,
``OSError``) are not wrapped: the joiner and the learners catch them, log them and
start over from their last durable state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.api_errors import ApiError

if TYPE_CHECKING:
    from reward_ingest.pusher import PushRecord

__all__ = [
    "DeliveryError",
    "EndpointNotFoundError",
    "LeaseLost",
    "PushError",
    "RewardStoreUnavailableError",
    "SignatureError",
    "VariantMismatchError",
]


class RewardStoreUnavailableError(Exception):
    """The store could not record the rewards now; nothing was recorded twice, retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignatureError(Exception):
    """The request is not authentic or not fresh; ``message`` says which, for the 401."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LeaseLost(Exception):  # noqa: N818  (a state, not a programming error)
    """The lease is gone (expired and maybe taken): stop and start over from the store."""


class DeliveryError(ApiError):
    """A delivery answered with a 4xx/5xx; ``rejected``: rewards it carried, as counted."""

    def __init__(self, status: int, error: str, message: str, *, rejected: int = 1,
                 problems: list[str] | None = None) -> None:
        super().__init__(status, error, message, problems=problems,
                         headers={"Retry-After": "1"} if status == 503 else None)
        self.rejected = rejected


class PushError(RuntimeError):
    """A push that could not happen for a reason an operator must see; carries its record."""

    def __init__(self, message: str, record: PushRecord | None = None) -> None:
        super().__init__(message)
        self.record = record


class EndpointNotFoundError(PushError):
    """DescribeEndpoint does not know the endpoint."""


class VariantMismatchError(PushError):
    """The experiment's variants and the endpoint's production variants differ."""

    def __init__(self, endpoint: str, experiment: set[str], on_endpoint: set[str]) -> None:
        self.experiment = frozenset(experiment)
        self.on_endpoint = frozenset(on_endpoint)
        super().__init__(
            f"variants disagree: the experiment has {sorted(experiment)}, endpoint "
            f"{endpoint!r} has production variants {sorted(on_endpoint)} (only in the "
            f"experiment: {sorted(experiment - on_endpoint)}; only on the endpoint: "
            f"{sorted(on_endpoint - experiment)}); no weights pushed")
