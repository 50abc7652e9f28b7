"""The caller keys of ``auth: {mode: sigv4}``: parsed, merged and re-read on change.

Keys come from ``BANDIT_ROUTER_CALLER_KEYS`` (JSON) and/or ``auth.keys_file`` (JSON
or YAML), both shaped as

    {"billing-app": {"access_key_id": "AKIA...", "secret_access_key": "...",
                     "experiments": ["churn"]},        # or "*": every experiment
     "ops": {...}}

The file is looked at again (a ``stat``) at most once a second, and re-read when its
modification time, size or inode changed; a file that no longer parses keeps the
keys read before, with an error logged, so a half-written file never locks every
caller out. Secrets are never logged or shown in a ``repr``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

import yaml
from pydantic import Field, StrictStr
from pydantic import ValidationError as PydanticValidationError

from common.config_problems import problem_lines
from common.config_sections import ConfigModel, Slug

logger = logging.getLogger(__name__)

ENV_VAR = "BANDIT_ROUTER_CALLER_KEYS"
STAT_INTERVAL_S = 1.0


class KeysError(ValueError):
    """Caller keys that cannot be used; the message has one ``where: problem`` per line."""


class _KeyEntry(ConfigModel):
    # An access key id goes between slashes in the Credential: no slash, no space.
    access_key_id: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.+=-]{1,128}$")]
    secret_access_key: Annotated[StrictStr, Field(min_length=1, repr=False)]
    experiments: Literal["*"] | tuple[Slug, ...]


@dataclass(frozen=True, slots=True)
class CallerKey:
    """One caller's key: its name, ids, and the experiments it may call (None: every one)."""

    name: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    experiments: frozenset[str] | None

    def allows(self, experiment: str) -> bool:
        """Whether this key may call ``experiment``."""
        return self.experiments is None or experiment in self.experiments


def parse_keys(data: object, where: str) -> dict[str, CallerKey]:
    """The keys of one parsed document, by access key id; ``KeysError`` naming every
    bad entry (``where`` prefixes each line)."""
    if not isinstance(data, Mapping) or not data:
        raise KeysError(f"{where}: must be a non-empty mapping of key name to "
                        "{access_key_id, secret_access_key, experiments}")
    problems: list[str] = []
    keys: dict[str, CallerKey] = {}
    for name, entry in data.items():
        try:
            parsed = _KeyEntry.model_validate(entry)
        except PydanticValidationError as exc:
            problems += [f"{where}: {name}.{line}" for line in problem_lines(exc)]
            continue
        if parsed.access_key_id in keys:
            problems.append(f"{where}: {name}.access_key_id: also the key of "
                            f"{keys[parsed.access_key_id].name!r}")
            continue
        allowed = None if parsed.experiments == "*" else frozenset(parsed.experiments)
        keys[parsed.access_key_id] = CallerKey(str(name), parsed.access_key_id,
                                               parsed.secret_access_key, allowed)
    if problems:
        raise KeysError("\n".join(problems))
    return keys


def _load(text: str, where: str) -> dict[str, CallerKey]:
    try:
        data = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as exc:
        raise KeysError(f"{where}: not valid JSON or YAML ({type(exc).__name__})") from None
    return parse_keys(data, where)


def _merge(*sources: Mapping[str, CallerKey]) -> dict[str, CallerKey]:
    merged: dict[str, CallerKey] = {}
    for source in sources:
        for key_id, key in source.items():
            if key_id in merged:
                raise KeysError(f"access key id of {key.name!r} is also the key of "
                                f"{merged[key_id].name!r}")
            merged[key_id] = key
    return merged


class KeyRing:
    """The current caller keys: the environment's, plus the file's as it is now."""

    def __init__(self, env_keys: str | None, keys_file: str | None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``KeysError`` when there are no keys at all or a source does not parse."""
        self._env = _load(env_keys, ENV_VAR) if env_keys else {}
        self._path = keys_file
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -float("inf")
        self._keys = dict(self._env)
        if keys_file is not None:
            self._reload(strict=True)
        if not self._keys:
            raise KeysError(f"auth.mode sigv4: no caller keys (set {ENV_VAR} or "
                            "auth.keys_file)")

    def _reload(self, *, strict: bool) -> None:
        if self._path is None:
            return
        where = f"auth.keys_file {self._path!r}"
        try:
            st = os.stat(self._path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            with open(self._path, encoding="utf-8") as file:
                keys = _merge(self._env, _load(file.read(), where))
        except (OSError, KeysError) as exc:
            message = (f"{where}: {exc.strerror or exc}" if isinstance(exc, OSError)
                       else str(exc))
            if strict:
                raise KeysError(message) from None
            if self._stamp is not None:  # log once per bad version, not per request
                logger.error("caller keys not reloaded, keeping the previous ones: %s",
                             message)
                self._stamp = None
            return
        self._stamp = stamp
        self._keys = keys
        logger.info("caller keys loaded: %s", ", ".join(sorted(k.name for k in keys.values())))

    def get(self, access_key_id: str) -> CallerKey | None:
        """The key with this id, after re-reading the file if it changed."""
        if self._path is not None:
            now = self._clock()
            if now - self._checked >= STAT_INTERVAL_S:
                self._checked = now
                self._reload(strict=False)
        return self._keys.get(access_key_id)

    def names(self) -> list[str]:
        """The names of the keys now loaded (for the start-up log)."""
        return sorted(key.name for key in self._keys.values())
