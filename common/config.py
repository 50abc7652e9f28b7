"""The YAML configuration: frozen models that refuse bad keys by path.

Every model forbids unknown keys; numbers must be finite and of the right kind
(``"20"`` is not an integer); names follow SageMaker's rules. A policy is checked
by building it with ``bandit.make_policy`` over the experiment's variants, so a
``SpecError`` comes back located at ``experiments[i].policy.<key>``. The leaf
sections are in ``common.config_sections``; defaults live in the fields only.

    settings = load_settings("router.yaml")     # raises ConfigError(problems)
    secrets = Secrets.from_env(os.environ)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails, InitErrorDetails
from pydantic_core.core_schema import ErrorType

from bandit import BanditError, SpecError, make_policy

from .config_problems import ConfigError, problem_lines, read_yaml
from .config_sections import (
    ArchiveConfig,
    AuthConfig,
    ColumnFeature,
    ConfigModel,
    ContextConfig,
    DecisionLogConfig,
    GuardrailConfig,
    PointerFeature,
    RewardConfig,
    SageMakerName,
    Slug,
    StoreUrl,
    VariantConfig,
    WeightsPushConfig,
    error_line,
    invalid,
    is_sagemaker_name,
)

__all__ = [
    "DEFAULT_CONFIG", "ArchiveConfig", "AuthConfig", "ColumnFeature", "ConfigError",
    "ContextConfig", "DecisionLogConfig", "ExperimentConfig", "GuardrailConfig", "PointerFeature",
    "RewardConfig", "Secrets", "Settings", "VariantConfig", "WeightsPushConfig",
    "load_settings", "parse_settings",
]

_PYDANTIC_TYPES = frozenset(get_args(ErrorType))
_SPEC_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _spec_loc(path: str) -> tuple[int | str, ...]:
    """``policy.prior.alpha`` -> ``("policy", "prior", "alpha")``; ``x[0]`` -> ``("x", 0)``."""
    rest = path.removeprefix("policy")
    return ("policy", *(key if key else int(index) for key, index in _SPEC_PART.findall(rest)))


def _policy_errors(policy: Any, arms: Sequence[str], seed: int) -> list[InitErrorDetails]:
    try:
        make_policy(policy, arms, seed)
    except SpecError as exc:
        return [error_line(_spec_loc(path), problem, policy) for path, problem in exc.problems]
    except BanditError as exc:  # e.g. an ArmError for a variant the policy cannot take
        return [error_line(("policy",), str(exc), policy)]
    return []


def _push_errors(push: Any, variants: int) -> list[InitErrorDetails]:
    """``weights_push.min_weight`` must leave room for every variant's floor."""
    if push.enabled and push.min_weight * variants > 1:
        share = f"{push.min_weight:g} × {variants} variants exceeds 1"
        return [error_line(("weights_push", "min_weight"), share, push.min_weight)]
    return []


def _valid_push(data: Any) -> WeightsPushConfig | None:
    """The ``weights_push`` section as written, when it is valid on its own."""
    try:
        return WeightsPushConfig.model_validate(data.get("weights_push", {}))
    except PydanticValidationError:
        return None


def _duplicate_errors(experiments: Sequence[Any],
                      at: tuple[str, ...] = ()) -> list[InitErrorDetails]:
    """Experiments sharing a name or an endpoint, at the later one (located under ``at``);
    ``experiments`` are configs, or mappings as written."""
    errors: list[InitErrorDetails] = []
    for key in ("name", "endpoint"):
        first: dict[str, int] = {}
        for i, experiment in enumerate(experiments):
            value = (experiment.get(key) if isinstance(experiment, Mapping)
                     else getattr(experiment, key, None))
            if not isinstance(value, str):
                continue
            j = first.setdefault(value, i)
            if j != i:
                errors.append(error_line((*at, i, key), f"duplicate {key} {value!r} "
                                                        f"(also experiments[{j}])", value))
    return errors


def _reinit(detail: ErrorDetails) -> InitErrorDetails:
    """A caught error, ready to raise again (custom types need their message back)."""
    if detail["type"] in _PYDANTIC_TYPES:
        again: InitErrorDetails = {"type": detail["type"],
                                   "loc": detail["loc"], "input": detail["input"]}
        if "ctx" in detail:
            again["ctx"] = detail["ctx"]
        return again
    return error_line(detail["loc"], detail["msg"], detail["input"])


class ExperimentConfig(ConfigModel):
    """One experiment: an endpoint, its variants, a policy and how it learns."""

    name: Annotated[Slug, Field(
        description="The experiment's name: in the decisions and admin URLs, the archive's "
                    "file names, metrics labels and every logged event.")]
    endpoint: Annotated[SageMakerName, Field(
        description="The SageMaker endpoint name: callers invoke "
                    "`/endpoints/<endpoint>/invocations` on the router, which invokes this "
                    "endpoint's variants (and pushes weights to it).")]
    backend: Literal["sagemaker", "http"] = Field(
        default="sagemaker",
        description="`sagemaker`: InvokeEndpoint with the chosen "
                    "`TargetVariant`, signed with the default AWS credential "
                    "chain; `http`: a plain POST to each variant's `url`.")
    seed: Annotated[StrictInt, Field(
        ge=0, description="The seed of the policy's own randomness.")] = 0
    # Lengths are checked in the validators: a min_length would also fire, wrongly, when
    # an item is bad (pydantic counts the items that validated).
    variants: tuple[VariantConfig, ...] = Field(
        description="The production variants the bandit chooses among, at least one, "
                    "distinct names.")
    policy: dict[str, Any] = Field(
        description="The policy spec: `type` (`static`, `epsilon_greedy`, `thompson`, "
                    "`ucb1`, `squarecb`, `online_cover`, `vw`) and that type's keys; checked "
                    "by building the policy over the variants.")
    context: ContextConfig = Field(
        default_factory=lambda: ContextConfig.model_validate({}),
        description="Where a decision's features come from.")
    reward: RewardConfig = Field(
        default_factory=RewardConfig,
        description="The reward range, the join window and how repeated rewards combine.")
    guardrails: GuardrailConfig | None = Field(
        default_factory=GuardrailConfig,
        description="Suspend a variant that errors or is slow, then probe it back; null "
                    "disables.")
    weights_push: WeightsPushConfig = Field(
        default_factory=WeightsPushConfig,
        description="Pushing the learned split to the endpoint's variant weights.")
    learn_from_targeted: StrictBool = Field(
        default=False,
        description="Learn from decisions the caller targeted (`TargetVariant`, "
                    "logged with probability 1); they are archived either way.")

    @property
    def arms(self) -> tuple[str, ...]:
        """The variant names, in the order written."""
        return tuple(variant.name for variant in self.variants)

    @field_validator("variants")
    @classmethod
    def _variants(cls, variants: tuple[VariantConfig, ...],
                  info: ValidationInfo) -> tuple[VariantConfig, ...]:
        if not variants:
            raise invalid("must list at least one variant")
        backend = info.data.get("backend")
        errors: list[InitErrorDetails] = []
        first: dict[str, int] = {}
        for i, variant in enumerate(variants):
            j = first.setdefault(variant.name, i)
            if j != i:
                errors.append(error_line((i, "name"), f"duplicate variant {variant.name!r} "
                                                      f"(also variants[{j}])", variant.name))
            if backend == "http" and variant.url is None:
                errors.append(error_line((i, "url"), "is required when backend is http", None))
            elif backend == "sagemaker" and variant.url is not None:
                errors.append(error_line((i, "url"), "only applies when backend is http (SageMaker "
                                                     "routes by variant name)", variant.url))
        if errors:
            raise PydanticValidationError.from_exception_data("variants", errors)
        return variants

    @model_validator(mode="wrap")
    @classmethod
    def _policy(cls, data: Any,
                handler: ModelWrapValidatorHandler[ExperimentConfig]) -> ExperimentConfig:
        # The policy is built over the variants, so it is checked once they are known;
        # when other keys are bad too, it is still checked against the names written.
        # The same for the weights push, which needs the number of variants.
        try:
            experiment = handler(data)
        except PydanticValidationError as exc:
            details = exc.errors()
            names = _raw_names(data)
            extra: list[InitErrorDetails] = []
            if names and not any(d["loc"][:1] == ("policy",) for d in details):
                extra += _policy_errors(data.get("policy"), names, 0)
            push = _valid_push(data) if names else None
            if push is not None and not any(d["loc"][:1] == ("weights_push",) for d in details):
                extra += _push_errors(push, len(names))
            if extra:
                raise PydanticValidationError.from_exception_data(
                    exc.title, [*map(_reinit, details), *extra]) from None
            raise
        errors = _policy_errors(experiment.policy, experiment.arms, experiment.seed)
        errors += _push_errors(experiment.weights_push, len(experiment.variants))
        if errors:
            raise PydanticValidationError.from_exception_data(cls.__name__, errors)
        return experiment


def _raw_names(data: Any) -> list[str]:
    """The variant names written, for checking a policy beside other errors; empty unless
    every name is valid and distinct (else the policy's errors would be about the names)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("policy"), Mapping):
        return []
    variants = data.get("variants")
    if not isinstance(variants, list | tuple):
        return []
    names = [v.get("name") if isinstance(v, Mapping) else None for v in variants]
    if not names or not all(map(is_sagemaker_name, names)) or len(set(names)) < len(names):
        return []
    return [str(name) for name in names]


class Settings(ConfigModel):
    """The whole configuration file."""

    store: StoreUrl = Field(
        default="memory://",
        description="`memory://`: everything in one process, and `serve` runs the learning "
                    "loop itself; `redis://host:port/db` (or `rediss://` for TLS): the log, "
                    "registry and snapshots shared by router replicas and `ingest`.")
    experiments: tuple[ExperimentConfig, ...] = Field(
        description="At least one; names and endpoints must be distinct.")
    archive: ArchiveConfig | None = Field(
        default=None,
        description="Where joined events are archived as DSJSON; null: not archived.")
    decision_log: DecisionLogConfig = Field(
        default_factory=DecisionLogConfig,
        description="The decision log's bounds and its spool for Redis outages.")
    auth: AuthConfig = Field(
        default_factory=AuthConfig,
        description="Who may call the invocations and decisions routes.")

    @field_validator("experiments")
    @classmethod
    def _unique(cls, experiments: tuple[ExperimentConfig, ...]) -> tuple[ExperimentConfig, ...]:
        if not experiments:
            raise invalid("must list at least one experiment")
        errors = _duplicate_errors(experiments)
        if errors:
            raise PydanticValidationError.from_exception_data("experiments", errors)
        return experiments

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        # An experiment with a bad key must not hide that another one repeats its name.
        try:
            return handler(data)
        except PydanticValidationError as exc:
            written = data.get("experiments") if isinstance(data, Mapping) else None
            if not isinstance(written, list | tuple):
                raise
            details = exc.errors()
            found = {detail["loc"] for detail in details}
            extra = [error for error in _duplicate_errors(written, ("experiments",))
                     if error.get("loc") not in found]
            if not extra:
                raise
            raise PydanticValidationError.from_exception_data(
                exc.title, [*map(_reinit, details), *extra]) from None


def parse_settings(data: object) -> Settings:
    """Settings from a parsed document; ``ConfigError`` lists every bad key."""
    try:
        return Settings.model_validate(data)
    except PydanticValidationError as exc:
        raise ConfigError(problem_lines(exc)) from None


def load_settings(path: str | Path) -> Settings:
    """Settings from a YAML file; ``ConfigError`` for a missing file, bad YAML or bad keys."""
    data = read_yaml(path)
    if data is None:
        raise ConfigError([f"{path}: is empty (expected a mapping with experiments)"])
    return parse_settings(data)


@dataclass(frozen=True, slots=True)
class Secrets:
    """Secrets come from the environment only, never from the YAML file."""

    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    admin_token: str | None = field(default=None, repr=False)
    caller_keys: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Secrets:
        """``BANDIT_ROUTER_WEBHOOK_SECRET`` (comma-separated: two during rotation),
        ``BANDIT_ROUTER_ADMIN_TOKEN`` and ``BANDIT_ROUTER_CALLER_KEYS`` (the caller keys
        of ``auth: {mode: sigv4}`` as JSON, read by ``router.auth_keys``); empty values
        count as unset."""
        raw = environ.get("BANDIT_ROUTER_WEBHOOK_SECRET", "")
        secrets = tuple(s.strip() for s in raw.split(",") if s.strip())
        token = environ.get("BANDIT_ROUTER_ADMIN_TOKEN", "").strip() or None
        keys = environ.get("BANDIT_ROUTER_CALLER_KEYS", "").strip() or None
        return cls(webhook_secrets=secrets, admin_token=token, caller_keys=keys)


DEFAULT_CONFIG = parse_settings({
    "store": "memory://",
    "experiments": [{
        "name": "demo",
        "endpoint": "demo-endpoint",
        "backend": "sagemaker",
        "variants": [{"name": "Variant1"}, {"name": "Variant2"}, {"name": "Variant3"}],
        "policy": {"type": "thompson"},
        "context": {"from": "header"},
    }],
})
"""The embedded configuration ``make demo`` runs: one Thompson experiment on ``memory://``."""
