"""Reading policy specs key by key, with errors that name the key's path.

A spec is the YAML mapping an operator wrote (``{"type": "thompson", ...}``), so
every error says where it is (``policy.prior.alpha: must be > 0``) and which keys
were unexpected. Policies read their own keys through ``SpecReader`` and call
``finish()`` so that an unknown key is refused, not silently ignored.

A reader does not stop at the first bad key: it records the problem, answers the
key's default so reading goes on, and ``raise_problems()`` raises one ``SpecError``
naming every problem of the spec, in the order they were read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._errors import SpecError


class SpecReader:
    """Typed, range-checked access to one mapping of a spec."""

    def __init__(self, spec: Any, path: str = "policy", *,
                 problems: list[tuple[str, str]] | None = None) -> None:
        if not isinstance(spec, Mapping):
            raise SpecError(path, f"must be a mapping, got {type(spec).__name__}")
        self._spec = spec
        self._path = path
        self._read: set[str] = set()
        self._problems: list[tuple[str, str]] = [] if problems is None else problems

    def report(self, path: str, problem: str) -> None:
        """Record a problem at ``path``; reading goes on."""
        self._problems.append((path, problem))

    def report_error(self, error: SpecError) -> None:
        """Record the problems of ``error`` (raised by a check that cannot go on) that
        are not recorded yet."""
        for problem in error.problems:
            if problem not in self._problems:
                self._problems.append(problem)

    def raise_problems(self) -> None:
        """Raise one ``SpecError`` naming every problem recorded (by this reader and its
        sections), if there is any."""
        if self._problems:
            (path, problem), *more = self._problems
            raise SpecError(path, problem, more=more)

    @property
    def path(self) -> str:
        return self._path

    def _key_path(self, key: str) -> str:
        return f"{self._path}.{key}"

    def keys(self) -> list[str]:
        """The keys present, in the order written."""
        return [str(key) for key in self._spec]

    def has(self, key: str) -> bool:
        return key in self._spec

    def raw(self, key: str, default: Any = None) -> Any:
        self._read.add(key)
        return self._spec.get(key, default)

    def number(
        self,
        key: str,
        default: float,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> float:
        """A finite real in the given interval (closed unless ``*_open``)."""
        value = self.raw(key, default)
        path = self._key_path(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.report(path, f"must be a number, got {value!r}")
            return default
        value = float(value)
        if not math.isfinite(value):
            self.report(path, f"must be finite, got {value!r}")
            return default
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            self.report(path, f"must be in {_interval(low, high, low_open, high_open)}, "
                              f"got {value!r}")
            return default
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        """An integer in [low, high]."""
        value = self.raw(key, default)
        path = self._key_path(key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(path, f"must be an integer, got {value!r}")
            return default
        if not low <= value <= high:
            self.report(path, f"must be in [{low}, {high}], got {value!r}")
            return default
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(key, default)
        if value not in choices:
            self.report(self._key_path(key), f"must be one of {', '.join(choices)}, "
                                             f"got {value!r}")
            return default
        return str(value)

    def string(self, key: str, default: str) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            self.report(self._key_path(key), f"must be a string, got {value!r}")
            return default
        return value

    def section(self, key: str) -> SpecReader:
        """A nested mapping (an empty one when the key is absent, or not a mapping: that
        is reported); its problems are this reader's."""
        value = self.raw(key, {})
        path = self._key_path(key)
        if not isinstance(value, Mapping):
            self.report(path, f"must be a mapping, got {type(value).__name__}")
            value = {}
        return SpecReader(value, path, problems=self._problems)

    def finish(self) -> None:
        """Report the keys nobody read: a typo must not pass for a default."""
        known = ", ".join(sorted(self._read)) or "none"
        for key in sorted(str(k) for k in self._spec if k not in self._read):
            self.report(self._key_path(key), f"unknown key (known keys: {known})")
            self._read.add(key)  # reported once, however often finish() is called


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"
