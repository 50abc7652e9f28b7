"""What the simulator serves: its endpoint, its variants, and their injected faults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simulator.models import MODEL_KINDS

ERROR_KINDS: tuple[str, ...] = ("model", "throttle", "unavailable", "internal", "not_ready")
"""What an injected failure answers: ModelError 424 (the model failed, OriginalStatusCode
500), ThrottlingException 400, ServiceUnavailable 503, InternalFailure 500."""

DEFAULT_ENDPOINT = "bandit-sim"
DEFAULT_VARIANTS = "Variant1=logistic,Variant2=tree,Variant3=naive_bayes"


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One production variant: its model, routing weight, latency and failure rate."""

    name: str
    model: str
    weight: float = 1.0
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_kind: str = "model"

    def __post_init__(self) -> None:
        where = f"variant {self.name!r}"
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"{where}: name must be letters, digits, '-' or '_'")
        if self.model not in MODEL_KINDS:
            raise ValueError(f"{where}: unknown model {self.model!r}; "
                             f"choose from {', '.join(MODEL_KINDS)}")
        for label, value in (("weight", self.weight), ("latency", self.latency_ms),
                             ("jitter", self.jitter_ms)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{where}: {label} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"{where}: error rate must be in [0, 1], got {self.error_rate}")
        if self.error_kind not in ERROR_KINDS:
            raise ValueError(f"{where}: unknown error kind {self.error_kind!r}; "
                             f"choose from {', '.join(ERROR_KINDS)}")


@dataclass(frozen=True, slots=True)
class SimulatorSpec:
    """The endpoint name the simulator answers to, its variants, and its RNG seed."""

    variants: tuple[VariantSpec, ...]
    endpoint: str = DEFAULT_ENDPOINT
    seed: int = 0
    names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError("at least one variant is needed")
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate variant names: {', '.join(duplicates)}")
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError("at least one variant needs a weight > 0")
        object.__setattr__(self, "names", frozenset(names))


_KEYS = {"weight": "weight", "latency": "latency_ms", "jitter": "jitter_ms",
         "error": "error_rate", "kind": "error_kind"}


def _variant(item: str) -> VariantSpec:
    name, sep, rest = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"{item!r}: expected NAME=MODEL[:key=value...]")
    model, *options = rest.strip().split(":")
    numbers: dict[str, float] = {}
    kind = "model"
    for option in options:
        key, sep, value = option.partition("=")
        attribute = _KEYS.get(key.strip())
        if not sep or attribute is None:
            raise ValueError(f"variant {name!r}: bad option {option!r}; expected one of "
                             f"{', '.join(k + '=…' for k in _KEYS)}")
        if attribute == "error_kind":
            kind = value.strip()
            continue
        try:
            numbers[attribute] = float(value)
        except ValueError:
            raise ValueError(f"variant {name!r}: {key.strip()} must be a number, "
                             f"got {value!r}") from None
    return VariantSpec(name, model.strip(), weight=numbers.get("weight", 1.0),
                       latency_ms=numbers.get("latency_ms", 0.0),
                       jitter_ms=numbers.get("jitter_ms", 0.0),
                       error_rate=numbers.get("error_rate", 0.0), error_kind=kind)


def parse_variants(text: str = DEFAULT_VARIANTS, *, endpoint: str = DEFAULT_ENDPOINT,
                   seed: int = 0) -> SimulatorSpec:
    """Parse ``"V1=logistic,V2=tree:latency=5:jitter=2:error=0.1:kind=model:weight=2"``.

    Models: ``logistic``, ``tree``, ``naive_bayes``, ``forest``, ``stump``. Options:
    ``weight`` (routing weight, default 1), ``latency`` and ``jitter`` (ms),
    ``error`` (failure rate in [0, 1]) and ``kind`` (``model``, ``throttle``,
    ``unavailable``, ``internal``, ``not_ready``). Raises ValueError naming what is wrong.
    """
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("no variants given; expected e.g. " + DEFAULT_VARIANTS)
    return SimulatorSpec(tuple(_variant(item) for item in items), endpoint=endpoint, seed=seed)
