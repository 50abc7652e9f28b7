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

    check.__doc__ = rule  # the format, as the configuration reference states it
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
    """an http:// or https:// URL with a host"""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(f"must be an http:// or https:// URL with a host, got {url!r}")
    return url


def _check_store(url: str) -> str:
    """`memory://`, or `redis://host:port/db` / `rediss://host:port/db` (TLS) with a numeric db"""
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
    """a directory, or `s3://bucket/prefix`"""
    if not path:
        raise invalid("must be a directory or s3://bucket/prefix")
    if path.startswith("s3:") and not urlsplit(path).netloc:
        raise invalid(f"must name a bucket (s3://bucket/prefix), got {path!r}")
    return path


_JSON_POINTER = re.compile(r"(/([^~/]|~[01])*)+")


def _check_pointer(pointer: str) -> str:
    """an RFC 6901 JSON pointer"""
    if _JSON_POINTER.fullmatch(pointer) is None:
        raise invalid("must be a JSON pointer (RFC 6901) such as /features/age "
                      f"('~' only as ~0 or ~1), got {pointer!r}")
    return pointer


class ConfigModel(BaseModel):
    """Base of every section: unknown keys refused, frozen, finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class VariantConfig(ConfigModel):
    """One production variant; ``url`` only for the http backend."""

    name: Annotated[SageMakerName, Field(
        description="The production variant's name, as the SageMaker endpoint knows it; an "
                    "arm of the policy and the `InvokedProductionVariant` callers see.")]
    url: Annotated[StrictStr, AfterValidator(_check_http_url)] | None = Field(
        default=None,
        description="The model server's URL the router POSTs the request body to; "
                    "required with `backend: http`, refused with `sagemaker` "
                    "(SageMaker routes by variant name).")
    initial_weight: Annotated[StrictFloat, Field(ge=0)] | None = Field(
        default=None,
        description="Accepted and kept in the registry for compatibility; no "
                    "component reads it (the policy's own `weights` or prior set the "
                    "starting split).")


def pointer_segments(pointer: str) -> tuple[str, ...]:
    """``/a~1b/0`` as ``("a/b", "0")`` (RFC 6901 unescaping)."""
    return tuple(s.replace("~1", "/").replace("~0", "~") for s in pointer.split("/")[1:])


class PointerFeature(ConfigModel):
    """A feature read from a JSON body; written as ``/path`` or ``{pointer, name}``."""

    pointer: Annotated[StrictStr, AfterValidator(_check_pointer), Field(
        description="An RFC 6901 JSON pointer into the request body, e.g. `/features/age` "
                    "(`~` only as `~0`, `/` in a key as `~1`).")]
    name: FeatureName | None = Field(
        default=None,
        description="The feature's name; by default the pointer's last segment.")

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

    column: Annotated[StrictInt, Field(
        ge=0, le=65_535, description="The 0-based column of the body's first CSV line; a "
                                     "cell that reads as a finite number becomes one.")]
    name: FeatureName | None = Field(
        default=None,
        description="The feature's name; by default `c<column>`.")

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

    source: Literal["header", "json", "csv"] = Field(
        default="header", alias="from",
        description="`header`: the `X-Bandit-Context` header, a JSON object; `json`: values "
                    "picked from a JSON body by `pointers`; `csv`: cells of the body's first "
                    "CSV line by `columns`. With `json` or `csv` the header, when sent, adds "
                    "its features too (a name given by both is refused).")
    pointers: tuple[PointerFeature, ...] = Field(
        default=(),
        description="With `from: json` (and only then, at least one): the features, each "
                    "written as `/a/pointer` or `{pointer, name}`; names must be distinct.")
    columns: tuple[ColumnFeature, ...] = Field(
        default=(),
        description="With `from: csv` (and only then, at least one): the features, each "
                    "written as a column index or `{column, name}`; names must be distinct.")
    max_bytes: Annotated[StrictInt, Field(
        ge=2, le=MIB, description="The largest `X-Bandit-Context` header, in bytes; a larger "
                                  "one is a 400 ValidationError.")] = 8192
    max_depth: Annotated[StrictInt, Field(
        ge=1, le=64, description="The deepest nesting of objects and arrays in the header's "
                                 "JSON (a flat object is depth 1).")] = 4
    max_keys: Annotated[StrictInt, Field(
        ge=1, le=100_000, description="The most keys in the header's JSON, counted over "
                                      "every nesting level.")] = 256

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

    min: Annotated[StrictFloat, Field(
        description="The smallest valid reward; the webhook refuses (422) and the joiner "
                    "drops (`out_of_range`) anything below it.")] = 0.0
    max: Annotated[StrictFloat, Field(
        description="The largest valid reward; must be above `min`.")] = 1.0
    default: StrictFloat | None = Field(
        default=0.0,
        description="The reward a decision is learned with when none arrived within "
                    "`wait_seconds` (archived with `default_reward: true`); in "
                    "[`min`, `max`], or null: such a decision is not learned.")
    wait_seconds: Annotated[PositiveFloat, Field(
        description="The join window: how long after a decision its rewards are awaited; "
                    "a reward after it is counted `late` and not learned.")] = 600.0
    aggregate: Literal["first", "sum", "max", "mean"] = Field(
        default="first",
        description="How rewards for one event combine: `first` joins as soon as one "
                    "arrives (later ones are `late`); `sum`, `max` and `mean` wait "
                    "for the window to close. Distinct rewards for one event need "
                    "distinct `reward_id`s.")

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

    error_rate: Annotated[StrictFloat, Field(
        gt=0, le=1, description="A variant whose share of failed invocations in the window "
                                "reaches this is suspended (probability 0).")] = 0.5
    p99_ms: Annotated[PositiveFloat, Field(
        description="A variant whose p99 latency in the window reaches this many "
                    "milliseconds is suspended.")] = 5000.0
    window_s: Annotated[PositiveFloat, Field(
        description="The rolling window of outcomes and latencies, in seconds.")] = 60.0
    cooldown_s: Annotated[PositiveFloat, Field(
        description="Seconds a suspended variant waits before it is probed.")] = 120.0
    min_requests: Annotated[StrictInt, Field(
        ge=1, description="Calls the window must hold before it can trip a variant; also the "
                          "good calls a probing variant needs to be healthy again.")] = 20
    probe_share: Annotated[StrictFloat, Field(
        gt=0, le=0.5, description="The traffic share a probing variant gets, whatever the "
                                  "policy wants.")] = 0.05


class WeightsPushConfig(ConfigModel):
    """Pushing the policy's traffic shares to the endpoint (UpdateEndpointWeightsAndCapacities)."""

    enabled: Annotated[StrictBool, Field(
        description="Push the learned split to the endpoint's variant weights with "
                    "UpdateEndpointWeightsAndCapacities (the ingester does it), so callers "
                    "that bypass the router follow the bandit too.")] = False
    interval_s: Annotated[PositiveFloat, Field(
        description="The least time between two pushes, in seconds.")] = 300.0
    min_weight: Annotated[StrictFloat, Field(
        ge=0, lt=1, description="The floor: every variant keeps at least this share of "
                                "the weights; `min_weight` × variants must not exceed 1.")] = 0.05
    max_step: Annotated[StrictFloat, Field(
        gt=0, le=1, description="The most any variant's share moves in one push.")] = 0.25
    capacities: Annotated[StrictBool, Field(
        description="Also set instance counts proportional to the new weights, keeping the "
                    "endpoint's current total.")] = False


class ArchiveConfig(ConfigModel):
    """Where joined events are archived as DSJSON, and when a file is closed."""

    path: Annotated[StrictStr, AfterValidator(_check_archive_path), Field(
        description="A local directory or `s3://bucket/prefix`; files are named "
                    "`<experiment>-<UTC yyyymmddTHHMMSS>-<seq>.json`.")]
    max_bytes: Annotated[StrictInt, Field(
        gt=0, description="A file is closed before the next line would take it past this "
                          "size (a single larger line gets a file of its own).")] = 64 * MIB
    max_seconds: Annotated[PositiveFloat, Field(
        description="Once the oldest open file is this old, every open file is closed, "
                    "whether or not new events came.")] = 300.0


class DecisionLogConfig(ConfigModel):
    """The decision stream's bounds and the local spool used while Redis is unreachable.

    ``stream_maxlen``: about how many decisions the log keeps (Redis: ``XADD MAXLEN ~``;
    ``memory://``: the newest ones, trimmed a tenth at a time).
    """

    spool_path: Annotated[StrictStr, Field(
        min_length=1, description="The local file decisions go to while Redis is "
                                  "unreachable, replayed exactly once when it is back (its "
                                  "directory is created; `.lock` and `.replaying` files sit "
                                  "beside it). Unused on `memory://`.")] = "./bandit-spool.jsonl"
    spool_max_bytes: Annotated[StrictInt, Field(
        gt=0, description="The spool's size limit; when it is full the router answers 503 "
                          "and `/readyz` says not ready until the replay makes room.")] = 64 * MIB
    # Redis takes MAXLEN as a signed 64-bit integer and refuses every XADD beyond it.
    stream_maxlen: Annotated[StrictInt, Field(
        gt=0, le=(1 << 63) - 1,
        description="About how many entries the decision log keeps (Redis: `XADD MAXLEN ~`; "
                    "`memory://`: the newest, trimmed a tenth at a time).")] = 1_000_000


AwsRegion = Annotated[StrictStr, _checked(
    r"[a-z]{2}(-[a-z0-9]+)+", "an AWS region such as us-east-1", 32)]


class AuthConfig(ConfigModel):
    """Who may call the invocations and decisions routes. `none` (the default) lets anyone
    who reaches the router invoke every endpoint with the router's own AWS identity;
    `sigv4` verifies each call's AWS signature against the configured caller keys."""

    mode: Literal["none", "sigv4"] = Field(
        default="none",
        description="`none`: no caller authentication (a warning is logged at start-up); "
                    "`sigv4`: callers sign as for SageMaker Runtime (service `sagemaker`) "
                    "with a key from `BANDIT_ROUTER_CALLER_KEYS` or `keys_file`.")
    region: AwsRegion | None = Field(
        default=None,
        description="With `sigv4` (required): the region callers sign for, the "
                    "`region_name` of their boto3 client.")
    keys_file: Annotated[StrictStr, Field(min_length=1)] | None = Field(
        default=None,
        description="With `sigv4`: a JSON or YAML file of caller keys (`{name: "
                    "{access_key_id, secret_access_key, experiments}}`), looked at once a "
                    "second and re-read when it changed, so keys rotate without a restart.")
    clock_skew_seconds: Annotated[StrictInt, Field(
        ge=1, le=3600, description="How far a call's `X-Amz-Date` may be from the router's "
                                   "clock, either way, before its signature has expired "
                                   "(the 5 minutes AWS's own errors state).")] = 300

    @model_validator(mode="after")
    def _consistent(self) -> AuthConfig:
        errors: list[InitErrorDetails] = []
        if self.mode == "sigv4" and self.region is None:
            errors.append(error_line(("region",), "is required when mode is sigv4", None))
        if self.mode == "none":
            for key in ("region", "keys_file"):
                if getattr(self, key) is not None:
                    errors.append(error_line((key,), "only applies when mode is sigv4",
                                             getattr(self, key)))
        if errors:
            raise PydanticValidationError.from_exception_data(type(self).__name__, errors)
        return self
