"""The leaf sections of the configuration: variants, context, reward, guardrails and so on.

Shared by ``common.config``: the base model (unknown keys refused, frozen,
finite numbers only), the name rules, and ``invalid``/``error_line``, which make
errors whose message is ours and whose path is exact. Defaults live in the fields.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

MIB = 1 << 20


def invalid(message: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``message``."""
    # The message goes in through ctx, so braces in it (a quoted dict) are left alone.
    return PydanticCustomError("invalid", "{message}", {"message": message})


def error_line(loc: tuple[int | str, ...], message: str, value: object) -> InitErrorDetails:
    """One error at ``loc`` (relative to the model raising it), for ``from_exception_data``."""
    return {"type": invalid(message), "loc": loc, "input": value}


def _checked(pattern: str, rule: str, max_len: int) -> AfterValidator:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if len(value) > max_len or regex.fullmatch(value) is None:
            raise invalid(f"must be {rule}, got {value!r}")
        return value

    return AfterValidator(check)


_SAGEMAKER_RULE = "1-63 letters, digits and hyphens, starting and ending with a letter or digit"
Slug = Annotated[StrictStr, _checked(
    r"[A-Za-z0-9][A-Za-z0-9_.-]*", "1-63 letters, digits, '_', '.' or '-', "
    "starting with a letter or digit", 63)]
_SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
SageMakerName = Annotated[StrictStr, _checked(_SAGEMAKER_NAME.pattern, _SAGEMAKER_RULE, 63)]


def is_sagemaker_name(name: object) -> bool:
    """Whether ``name`` is a valid SageMaker endpoint or variant name."""
    return isinstance(name, str) and len(name) <= 63 and bool(_SAGEMAKER_NAME.fullmatch(name))
FeatureName = Annotated[StrictStr, Field(min_length=1, max_length=256)]
PositiveFloat = Annotated[StrictFloat, Field(gt=0)]


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(f"must be an http:// or https:// URL with a host, got {url!r}")
    return url


def _check_store(url: str) -> str:
    if url == "memory://":
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise invalid(f"must be memory:// or redis://host:port/db, got {url!r}")
    try:
        parts.port  # noqa: B018  (parsing the port is the check)
    except ValueError:
        raise invalid(f"has a bad port (want redis://host:port/db), got {url!r}") from None
    database = parts.path.removeprefix("/")
    if not parts.hostname or (database and not database.isdigit()):
        raise invalid(f"must be redis://host:port/db with a numeric db, got {url!r}")
    return url


StoreUrl = Annotated[StrictStr, AfterValidator(_check_store)]


def _check_archive_path(path: str) -> str:
    if not path:
        raise invalid("must be a directory or s3://bucket/prefix")
    if path.startswith("s3:") and not urlsplit(path).netloc:
        raise invalid(f"must name a bucket (s3://bucket/prefix), got {path!r}")
    return path


_JSON_POINTER = re.compile(r"(/([^~/]|~[01])*)+")


def _check_pointer(pointer: str) -> str:
    if _JSON_POINTER.fullmatch(pointer) is None:
        raise invalid("must be a JSON pointer (RFC 6901) such as /features/age "
                      f"('~' only as ~0 or ~1), got {pointer!r}")
    return pointer


class ConfigModel(BaseModel):
    """Base of every section: unknown keys refused, frozen, finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class VariantConfig(ConfigModel):
    """One production variant; ``url`` only for the http backend."""

    name: Annotated[SageMakerName, Field(description="SageMaker production variant name")]
    url: Annotated[StrictStr, AfterValidator(_check_http_url)] | None = None
    initial_weight: Annotated[StrictFloat, Field(ge=0)] | None = None


def pointer_segments(pointer: str) -> tuple[str, ...]:
    """``/a~1b/0`` as ``("a/b", "0")`` (RFC 6901 unescaping)."""
    return tuple(s.replace("~1", "/").replace("~0", "~") for s in pointer.split("/")[1:])


class PointerFeature(ConfigModel):
    """A feature read from a JSON body; written as ``/path`` or ``{pointer, name}``."""

    pointer: Annotated[StrictStr, AfterValidator(_check_pointer)]
    name: FeatureName | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"pointer": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _named(self) -> PointerFeature:
        if not self.feature:
            raise invalid(f"pointer {self.pointer!r} ends in an empty segment: give it a name")
        return self

    @property
    def feature(self) -> str:
        """The feature's name: ``name``, else the pointer's last segment."""
        return self.name if self.name is not None else pointer_segments(self.pointer)[-1]


class ColumnFeature(ConfigModel):
    """A feature read from a CSV column; written as ``3`` or ``{column, name}``."""

    column: Annotated[StrictInt, Field(ge=0, le=65_535)]
    name: FeatureName | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_int(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, int) and not isinstance(data, bool) else data

    @property
    def feature(self) -> str:
        """The feature's name: ``name``, else ``c<column>``."""
        return self.name if self.name is not None else f"c{self.column}"


class ContextConfig(ConfigModel):
    """Where a decision's features come from, and the bounds on the header's JSON."""

    source: Literal["header", "json", "csv"] = Field("header", alias="from")
    pointers: tuple[PointerFeature, ...] = ()
    columns: tuple[ColumnFeature, ...] = ()
    max_bytes: Annotated[StrictInt, Field(ge=2, le=MIB)] = 8192
    max_depth: Annotated[StrictInt, Field(ge=1, le=64)] = 4
    max_keys: Annotated[StrictInt, Field(ge=1, le=100_000)] = 256

    @model_validator(mode="after")
    def _consistent(self) -> ContextConfig:
        errors: list[InitErrorDetails] = []
        sections: tuple[tuple[str, str, Sequence[PointerFeature | ColumnFeature]], ...] = (
            ("pointers", "json", self.pointers), ("columns", "csv", self.columns))
        for key, wanted, features in sections:
            if self.source == wanted and not features:
                errors.append(error_line((key,), f"must list at least one when from is {wanted}",
                                         ()))
            elif self.source != wanted and features:
                errors.append(error_line((key,), f"only applies when from is {wanted}",
                                         features))
            first: dict[str, int] = {}
            for i, feature in enumerate(features):
                name = feature.feature
                j = first.setdefault(name, i)
                if j != i:
                    errors.append(error_line((key, i), f"duplicate feature name {name!r} "
                                                       f"(also {key}[{j}])", name))
        if errors:
            raise PydanticValidationError.from_exception_data(type(self).__name__, errors)
        return self


class RewardConfig(ConfigModel):
    """The reward range, the default when none arrives in time, and how repeats combine."""

    min: StrictFloat = 0.0
    max: StrictFloat = 1.0
    default: StrictFloat | None = 0.0
    wait_seconds: PositiveFloat = 600.0
    aggregate: Literal["first", "sum", "max", "mean"] = "first"

    @model_validator(mode="after")
    def _in_range(self) -> RewardConfig:
        if self.min >= self.max:
            raise PydanticValidationError.from_exception_data("RewardConfig", [error_line(
                ("max",), f"must be above min ({self.min:g}), got {self.max:g}", self.max)])
        if self.default is not None and not self.min <= self.default <= self.max:
            raise PydanticValidationError.from_exception_data("RewardConfig", [error_line(
                ("default",), f"must be in [{self.min:g}, {self.max:g}] or null, "
                              f"got {self.default:g}", self.default)])
        return self


class GuardrailConfig(ConfigModel):
    """When to suspend a variant (see ``router.guardrails``); ``guardrails: null`` disables."""

    error_rate: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.5
    p99_ms: PositiveFloat = 5000.0
    window_s: PositiveFloat = 60.0
    cooldown_s: PositiveFloat = 120.0
    min_requests: Annotated[StrictInt, Field(ge=1)] = 20
    probe_share: Annotated[StrictFloat, Field(gt=0, le=0.5)] = 0.05


class WeightsPushConfig(ConfigModel):
    """Pushing the policy's traffic shares to the endpoint (UpdateEndpointWeightsAndCapacities)."""

    enabled: StrictBool = False
    interval_s: PositiveFloat = 300.0
    min_weight: Annotated[StrictFloat, Field(ge=0, lt=1)] = 0.05
    max_step: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.25
    capacities: StrictBool = False


class ArchiveConfig(ConfigModel):
    """Where joined events are archived as DSJSON, and when a file is closed."""

    path: Annotated[StrictStr, AfterValidator(_check_archive_path)]
    max_bytes: Annotated[StrictInt, Field(gt=0)] = 64 * MIB
    max_seconds: PositiveFloat = 300.0


class DecisionLogConfig(ConfigModel):
    """The decision stream's bounds and the local spool used while Redis is unreachable.

    ``stream_maxlen``: about how many decisions the log keeps (Redis: ``XADD MAXLEN ~``;
    ``memory://``: the newest ones, trimmed a tenth at a time).
    """

    spool_path: Annotated[StrictStr, Field(min_length=1)] = "./bandit-spool.jsonl"
    spool_max_bytes: Annotated[StrictInt, Field(gt=0)] = 64 * MIB
    # Redis takes MAXLEN as a signed 64-bit integer and refuses every XADD beyond it.
    stream_maxlen: Annotated[StrictInt, Field(gt=0, le=(1 << 63) - 1)] = 1_000_000
