"""``make_policy`` and ``load_policy``: from a spec or a snapshot to a policy."""

from __future__ import annotations

from collections.abc import Sequence

from ._errors import SnapshotError, SpecError
from ._policy import Policy, decode_snapshot
from ._types import Arm, PolicySpec

_POLICY_TYPES: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make a policy type known to ``make_policy``/``load_policy``."""
    _POLICY_TYPES[cls.type_name] = cls
    return cls


def policy_types() -> tuple[str, ...]:
    """The registered ``type`` names, in registration order."""
    return tuple(_POLICY_TYPES)


def make_policy(spec: PolicySpec, arms: Sequence[Arm], seed: int = 0) -> Policy:
    """A new policy over ``arms`` from a spec such as ``{"type": "thompson"}``.

    Raises ``SpecError`` whose message starts with the bad key's path.
    """
    if not hasattr(spec, "get"):
        raise SpecError("policy", f"must be a mapping, got {type(spec).__name__}")
    kind = spec.get("type")
    if kind is None:
        raise SpecError("policy.type", f"is required (one of {', '.join(_POLICY_TYPES)})")
    cls = _POLICY_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SpecError("policy.type", f"must be one of {', '.join(_POLICY_TYPES)}, got {kind!r}")
    return cls.from_spec(spec, arms, seed)


def load_policy(blob: bytes) -> Policy:
    """Restore a policy from ``Policy.snapshot()``; same probabilities as the original."""
    document = decode_snapshot(blob)
    cls = _POLICY_TYPES.get(document["type"])
    if cls is None:
        raise SnapshotError(f"snapshot of unknown policy type {document['type']!r}")
    try:
        policy = cls._restore(
            list(document["arms"]), float(document["floor"]), int(document["seed"]),
            document["state"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"corrupt {document['type']} snapshot: {exc}") from exc
    policy.version = int(document["version"])
    return policy
