"""What every experiment registry provides: the protocol and its view.

The registry is what router replicas share: each experiment's configuration
(as the YAML writes it) under a revision number bumped by every change, and the
policy snapshots the learner publishes (``common.storage.snapshots``), each under its
own publication counter.
A router seeds the registry from its config file on start, for experiments not
yet in it (and never deleted through the admin API); from then on the registry,
not the file, is the source of truth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from common.config import ExperimentConfig
from common.storage.snapshots import Snapshot


@dataclass(frozen=True, slots=True)
class RegistryView:
    """Every experiment in the registry at one revision."""

    revision: int
    experiments: Mapping[str, ExperimentConfig] = field(default_factory=dict)


def config_json(config: ExperimentConfig) -> str:
    """The stored form: canonical JSON that ``ExperimentConfig`` validates back unchanged."""
    return json.dumps(config.model_dump(mode="json", by_alias=True), sort_keys=True,
                      separators=(",", ":"))


def parse_config(text: str | bytes) -> ExperimentConfig:
    """A stored config back as a model (a pydantic ``ValidationError`` if it went bad)."""
    return ExperimentConfig.model_validate_json(text)


class ChangeFeed(Protocol):
    """Prompt notice of changes (experiments or snapshots) for one watcher."""

    async def wait(self, timeout_s: float) -> None:
        """Return on a change notice (or one that came since the last call), or on timeout."""
        ...

    async def close(self) -> None:
        """Stop listening."""
        ...


class Registry(Protocol):
    """Experiments and policy snapshots shared by router replicas.

    Every method may raise ``router.errors.RegistryUnavailableError``; writes taking
    ``expect_revision`` raise ``RegistryConflictError`` when the registry has moved past it.
    """

    async def start(self) -> None:
        """Connect (never fails on an unreachable store: calls then raise)."""
        ...

    async def close(self) -> None:
        """Release every resource."""
        ...

    def describe(self) -> str:
        """Where the registry lives, for logs and ``/readyz`` (no credentials)."""
        ...

    async def read(self) -> RegistryView:
        """Every experiment and the revision they are at, read atomically."""
        ...

    async def poll(self, experiments: Sequence[str]) -> tuple[int, dict[str, int]]:
        """The revision and the snapshot version of each experiment (0: none), cheaply."""
        ...

    async def seed(self, configs: Sequence[ExperimentConfig]) -> int:
        """Add the configs not in the registry (and not deleted); returns how many."""
        ...

    async def put(self, config: ExperimentConfig, *, expect_revision: int | None = None) -> int:
        """Create or replace an experiment; returns the new revision."""
        ...

    async def delete(self, name: str, *, expect_revision: int | None = None) -> int | None:
        """Delete an experiment; the new revision, or None when it was not there."""
        ...

    async def snapshot(self, experiment: str) -> Snapshot | None:
        """The latest published snapshot of ``experiment``, if any."""
        ...

    def changes(self) -> ChangeFeed:
        """A new feed of change notices (one per watcher)."""
        ...
