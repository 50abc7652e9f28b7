"""``bandit-router replay``: what candidate policies would have earned, from the archive.

The command's plumbing: candidate specs from the command line (inline JSON, a type
name, ``@file.yaml``, each optionally ``NAME=``), times, then one pass of
``bandit.ope.replay`` over ``bandit.ope.read_archive`` and the three outputs (the
terminal tables, ``--json``, ``--report``). Every problem a user can cause ends in
one line naming it and exit status 2.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bandit import PolicySpec

# NAME=SPEC: a name of safe characters, then a spec (so '{"a=b"...' is not split).
_NAMED = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)=(.+)", re.DOTALL)
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*")

EXIT_UNTRUSTED = 1
"""``--strict``: the log failed its calibration or sample-ratio check."""


class ReplayUsageError(ValueError):
    """A bad argument of ``replay``; the message names it."""


@dataclass(frozen=True, slots=True)
class NamedSpec:
    """One candidate from the command line."""

    name: str
    spec: PolicySpec


def parse_candidates(values: Sequence[str]) -> list[NamedSpec]:
    """``--policy`` values as named specs; names default to the spec's type and must differ."""
    candidates: list[NamedSpec] = []
    seen: set[str] = set()
    for value in values:
        name, spec = _parse_one(value)
        if name in seen:
            raise ReplayUsageError(f"--policy: two candidates named {name!r}; name them apart "
                                   "with NAME=SPEC")
        seen.add(name)
        candidates.append(NamedSpec(name, spec))
    return candidates


def _parse_one(value: str) -> tuple[str, PolicySpec]:
    text = value.strip()
    name: str | None = None
    named = _NAMED.fullmatch(text)
    if named and not text.startswith(("{", "@")):
        name, text = named.group(1), named.group(2).strip()
    spec = _spec(text, value)
    kind = spec.get("type")
    if not isinstance(kind, str) or not kind:
        raise ReplayUsageError(f"--policy {value!r}: a spec needs a 'type' "
                               "(e.g. {\"type\": \"thompson\"})")
    return name or kind, spec


def _spec(text: str, original: str) -> PolicySpec:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ReplayUsageError(f"--policy {original!r}: cannot read {path}: "
                                   f"{exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ReplayUsageError(f"--policy {original!r}: {path} is not YAML: "
                                   f"{' '.join(str(exc).split())}") from None
        # A config excerpt ({policy: {...}}) works as well as the spec itself.
        if isinstance(document, dict) and isinstance(document.get("policy"), dict):
            document = document["policy"]
        where = f"{path}"
    elif text.startswith("{"):
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ReplayUsageError(f"--policy {original!r}: not valid JSON: {exc}") from None
        where = "the spec"
    elif _TYPE_NAME.fullmatch(text):
        document = {"type": text}
        where = "the spec"
    else:
        raise ReplayUsageError(f"--policy {original!r}: expected a policy type name, inline "
                               "JSON ({...}) or @file.yaml, optionally after NAME=")
    if not isinstance(document, dict) or not all(isinstance(key, str) for key in document):
        raise ReplayUsageError(f"--policy {original!r}: {where} must be a mapping of "
                               "policy keys, e.g. {\"type\": \"thompson\"}")
    return document


def parse_time(value: str, option: str) -> float:
    """Unix seconds, or an ISO 8601 date or time (UTC unless it names an offset)."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ReplayUsageError(f"{option} {value!r}: expected Unix seconds or an ISO 8601 "
                                   "time such as 2026-12-01 or 2026-12-01T12:00:00Z") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if not math.isfinite(seconds):
        raise ReplayUsageError(f"{option} {value!r}: must be a finite time")
    return seconds


def parse_estimators(value: str) -> tuple[str, ...]:
    """``ips,snips,dm,dr`` (any case, any subset) in the given order."""
    from bandit.ope import ESTIMATORS

    names = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",")
                                if part.strip()))
    unknown = [name for name in names if name not in ESTIMATORS]
    if unknown or not names:
        raise ReplayUsageError(f"--estimators: unknown {', '.join(unknown) or '(none given)'}; "
                               f"choose from {','.join(ESTIMATORS)}")
    return names


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """Everything the command was asked, parsed."""

    paths: tuple[str, ...]
    candidates: tuple[NamedSpec, ...]
    experiment: str | None = None
    since: float | None = None
    until: float | None = None
    estimators: tuple[str, ...] = ("ips", "snips", "dm", "dr")
    clip: float | None = None
    drop_default_rewards: bool = False
    on_bad_line: str = "skip"
    seed: int = 0


def run(options: ReplayOptions, *, progress: Any = None) -> dict[str, Any]:
    """Read the archive once, score the candidates, return the ``--json`` document.

    ``progress``: a callable taking the archive's total bytes and returning a context
    manager that yields an ``advance(bytes)`` callable (``replay_view.progress``).
    Raises ``bandit.ope.EvaluationError`` (ArchiveError, CandidateError among them).
    """
    from bandit.ope import Candidate, read_archive, replay

    if options.since is not None and options.until is not None \
            and options.since >= options.until:
        raise ReplayUsageError("--since must be before --until")
    players = [Candidate(c.name, c.spec, seed=options.seed) for c in options.candidates]
    advance = _Forward()
    archive = read_archive(
        list(options.paths), experiment=options.experiment, since=options.since,
        until=options.until, drop_default_rewards=options.drop_default_rewards,
        on_bad_line="fail" if options.on_bad_line == "fail" else "skip",
        contexts=any(p.needs_contexts for p in players),
        lines=any(p.needs_lines for p in players), progress=advance)
    bar = progress(archive.total_bytes) if progress is not None else nullcontext(None)
    with bar as step:
        advance.to = step
        result = replay(archive, {p.name: p for p in players}, estimators=options.estimators,
                        clip=options.clip, seed=options.seed)
    document = result.to_json(archive.stats, options.paths)
    for candidate in options.candidates:
        document["candidates"][candidate.name]["spec"] = candidate.spec
    return document


class _Forward:
    """The reader's progress callback, aimed at the bar once the bar exists."""

    def __init__(self) -> None:
        self.to: Callable[[int], None] | None = None

    def __call__(self, done: int) -> None:
        if self.to is not None:
            self.to(done)


def untrusted(document: dict[str, Any]) -> bool:
    """Whether the log failed its calibration or sample-ratio check."""
    audit = document.get("audit", {})
    return not (audit.get("calibration", {}).get("ok", True)
                and audit.get("sample_ratio", {}).get("ok", True))
