"""Contexts and arms as Vowpal Wabbit text lines: one ``shared`` line, one line per arm.

    shared |s age:42 premium:1 plan=gold user.country=fr
    |a arm=Variant1

The shared namespace ``s`` carries one feature per context key; the action
namespace ``a`` carries ``arm=<name>``, so VW learns a bias per arm and, through
the ``sa`` interaction, a per-arm weight for every context feature. Features
are keyed by name, never by position, so arms can come and go.

What each context value becomes (promised; a model's meaning depends on it):

- int or float: ``name:value`` (9 significant digits: VW stores float32);
  non-finite values and magnitudes above 1e38 (float32 overflows near 3.4e38)
  raise ``ContextError`` naming the key.
- bool: ``name:1`` when true, nothing when false.
- str: ``name=value``, a one-hot feature per distinct value.
- None: nothing.
- a nested mapping: its keys flattened as ``outer.inner``, at most
  ``MAX_DEPTH`` levels; lists and other types raise ``ContextError``.

Key segments, string values and arm names are percent-encoded (``%XX`` for the
characters VW's text parser or our own format gives a meaning: ``%``, space and
every ASCII control character, ``|``, ``:``, ``=``, ``.``; ``%uXXXX`` for lone
surrogates, which cannot be passed to VW as UTF-8), so no name can split a
token, start a namespace or example, or collide with another name.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._errors import ContextError
from ._types import Arm, Context

SHARED_NAMESPACE = "s"
ACTION_NAMESPACE = "a"
SHARED_PREFIX = f"shared |{SHARED_NAMESPACE}"
MAX_DEPTH = 8
MAX_MAGNITUDE = 1e38

# Names seen recently, escaped; bounded because keys come from callers.
_NAME_CACHE_LIMIT = 4096
_UNSAFE = re.compile("[%|:=.\x00-\x20\x7f\ud800-\udfff]")


def escape(text: str) -> str:
    """``text`` with VW's and our separators percent-encoded; injective."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_encode_char, text)


def _encode_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"%{code:02X}" if code < 0x80 else f"%u{code:04X}"


def action_line(arm: Arm) -> str:
    """The action line of ``arm``: ``|a arm=<escaped name>``."""
    return f"|{ACTION_NAMESPACE} arm={escape(arm)}"


class FeatureEncoder:
    """Builds the text lines of one decision; caches the per-arm lines and key names."""

    __slots__ = ("_actions", "_names")

    def __init__(self, arms: Sequence[Arm] = ()) -> None:
        self._actions: dict[Arm, str] = {arm: action_line(arm) for arm in arms}
        self._names: dict[str, str] = {}

    def add_arm(self, arm: Arm) -> None:
        self._actions[arm] = action_line(arm)

    def remove_arm(self, arm: Arm) -> None:
        self._actions.pop(arm, None)

    def lines(self, context: Context | None, arms: Sequence[Arm]) -> list[str]:
        """The shared line, then one action line per arm, in order.

        The policy's current arms come from the cache; other names (arms
        removed since a logged decision) are encoded on the fly.
        """
        actions = self._actions
        return [self.shared_line(context), *(actions.get(a) or action_line(a) for a in arms)]

    def shared_line(self, context: Context | None) -> str:
        """``shared |s`` and the context's features; raises ``ContextError`` naming a bad key."""
        if not context:
            return SHARED_PREFIX
        tokens = [SHARED_PREFIX]
        names = self._names
        # The common shapes (flat str/float/int/bool keys) stay on this loop;
        # everything else goes through _add_value.
        for key, value in context.items():
            name = names.get(key)
            if name is None:
                name = self._name(key)
            kind = type(value)
            if kind is float or kind is int:
                if not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
                    raise bad_number(key, value)
                tokens.append(f"{name}:{value:.9g}")
            elif kind is str:
                tokens.append(f"{name}={escape(value)}")
            elif kind is bool:
                if value:
                    tokens.append(f"{name}:1")
            elif value is not None:
                _add_value(tokens, name, key, value, 1)
        return " ".join(tokens)

    def _name(self, key: object) -> str:
        if not isinstance(key, str) or not key:
            raise ContextError(f"context keys must be non-empty strings, got {key!r}")
        name = escape(key)
        if len(self._names) >= _NAME_CACHE_LIMIT:
            self._names.clear()
        self._names[key] = name
        return name


def _add_value(tokens: list[str], name: str, path: str, value: Any, depth: int) -> None:
    """The slow path (see ``flatten_value``), as VW tokens."""
    pairs: list[Feature] = []
    flatten_value(pairs, name, path, value, depth)
    tokens.extend(feature if number is None else f"{feature}:{number:.9g}"
                  for feature, number in pairs)


Feature = tuple[str, float | None]
"""A feature's escaped name and its value; None for a one-hot string feature (``name=value``)."""


def flatten_value(pairs: list[Feature], name: str, path: str, value: Any, depth: int) -> None:
    """Append the features of one context value (any shape above) to ``pairs``.

    The one definition of what a value means, shared by every contextual policy type:
    numpy numbers and bools, nested mappings, and the refusals (``ContextError``
    naming the key by its ``path``).
    """
    if value is None:
        return
    if isinstance(value, bool | np.bool_):
        if value:
            pairs.append((name, 1.0))
    elif isinstance(value, str):
        pairs.append((f"{name}={escape(value)}", None))
    elif isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            raise bad_number(path, value) from None
        if not -MAX_MAGNITUDE <= number <= MAX_MAGNITUDE:
            raise bad_number(path, value)
        pairs.append((name, number))
    elif isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            raise ContextError(f"context key {path!r}: nested deeper than {MAX_DEPTH} levels")
        for key, inner in value.items():
            if not isinstance(key, str) or not key:
                raise ContextError(f"context key {path!r}: keys must be non-empty strings, "
                                   f"got {key!r}")
            flatten_value(pairs, f"{name}.{escape(key)}", f"{path}.{key}", inner, depth + 1)
    else:
        raise ContextError(f"context key {path!r}: a {type(value).__name__} cannot be a "
                           "feature (use numbers, strings, bools or nested objects)")


def bad_number(path: str, value: object) -> ContextError:
    """The refusal of a number that is not finite or is too large for VW's float32."""
    return ContextError(f"context key {path!r}: numbers must be finite and within "
                        f"±{MAX_MAGNITUDE:g}, got {value!r}")
