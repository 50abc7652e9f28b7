"""Reading policy specs key by key, with errors that name the key's path.

A spec is the YAML mapping an operator wrote (``{"type": "thompson", ...}``), so
every error says where it is (``policy.prior.alpha: must be > 0``) and which keys
were unexpected. Policies read their own keys through ``SpecReader`` and call
``finish()`` so that an unknown key is refused, not silently ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ._errors import SpecError


class SpecReader:
    """Typed, range-checked access to one mapping of a spec."""

    def __init__(self, spec: Any, path: str = "policy") -> None:
        if not isinstance(spec, Mapping):
            raise SpecError(path, f"must be a mapping, got {type(spec).__name__}")
        self._spec = spec
        self._path = path
        self._read: set[str] = set()

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
            raise SpecError(path, f"must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(path, f"must be finite, got {value!r}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise SpecError(path, f"must be in {_interval(low, high, low_open, high_open)}, "
                                  f"got {value!r}")
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        """An integer in [low, high]."""
        value = self.raw(key, default)
        path = self._key_path(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(path, f"must be an integer, got {value!r}")
        if not low <= value <= high:
            raise SpecError(path, f"must be in [{low}, {high}], got {value!r}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(key, default)
        if value not in choices:
            raise SpecError(self._key_path(key), f"must be one of {', '.join(choices)}, "
                                                 f"got {value!r}")
        return str(value)

    def string(self, key: str, default: str) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise SpecError(self._key_path(key), f"must be a string, got {value!r}")
        return value

    def section(self, key: str) -> SpecReader:
        """A nested mapping (an empty one when the key is absent)."""
        return SpecReader(self.raw(key, {}), self._key_path(key))

    def finish(self) -> None:
        """Refuse the keys nobody read: a typo must not pass for a default."""
        unknown = sorted(str(k) for k in self._spec if k not in self._read)
        if unknown:
            known = ", ".join(sorted(self._read)) or "none"
            raise SpecError(self._key_path(unknown[0]), f"unknown key (known keys: {known})")


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"
