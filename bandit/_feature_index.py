"""Contexts as sparse feature vectors: one column per feature name, seen while learning.

The features are the ones ``_vw_features`` gives Vowpal Wabbit, so a context
means the same to every contextual policy type:

- int or float: feature ``name`` with that value; non-finite values and
  magnitudes above 1e38 raise ``ContextError`` naming the key.
- bool: ``name`` = 1 when true, nothing when false.
- str: ``name=value`` = 1, a one-hot feature per distinct value.
- None: nothing.
- a nested mapping: its keys flattened as ``outer.inner``, at most ``MAX_DEPTH``
  levels; lists and other types raise ``ContextError``.

Names are escaped as for VW (``escape``), so no two features share a name.
Column 0 is the constant (a bias per arm). A name gets the next free column
the first time it is *learned*; a name only seen in decisions has no column
and, since nothing was learned for it, contributes nothing. Once
``max_features`` columns are taken, further names share the existing columns
by hashing (CRC-32, stable across processes), as VW's hashed features do: memory
and time stay bounded whatever the cardinality of the callers' features.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from ._errors import ContextError
from ._types import Context
from ._vw_features import MAX_MAGNITUDE, Feature, bad_number, escape, flatten_value

BIAS = "\x00bias"  # not a feature name any context can produce (escape encodes \x00)
_NAME_CACHE_LIMIT = 4096


class FeatureIndex:
    """Feature names → columns, and contexts → (columns, values)."""

    __slots__ = ("_columns", "_keys", "_names", "max_features")

    def __init__(self, max_features: int, names: Iterable[str] = ()) -> None:
        self.max_features = max_features
        self._names: list[str] = [BIAS]
        self._columns: dict[str, int] = {BIAS: 0}
        for name in names:
            self._add(name)
        self._keys: dict[str, str] = {}  # context key → escaped name (a bounded cache)

    @property
    def names(self) -> list[str]:
        """The feature names in column order, the bias (column 0) left out."""
        return self._names[1:]

    def __len__(self) -> int:
        """Columns in use, the bias included."""
        return len(self._names)

    def encode(self, context: Context | None, *, grow: bool) -> tuple[list[int], list[float]]:
        """Columns and values of ``context``'s features, the bias first.

        ``grow`` (learning) gives new names a column while there is room;
        otherwise a name without a column is left out while there is room
        (nothing was learned for it) and hashed once there is none. A column may
        repeat (hashed names): callers add the values up.
        """
        columns, values = [0], [1.0]
        if not context:
            return columns, values
        keys = self._keys
        # The common flat shapes stay on this loop; the rest goes through flatten_value.
        for key, value in context.items():
            name = keys.get(key)
            if name is None:
                name = self._key_name(key)
            kind = type(value)
            if kind is float or kind is int:
                if not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
                    raise bad_number(key, value)
                self._put(name, float(value), columns, values, grow)
            elif kind is str:
                self._put(f"{name}={escape(value)}", 1.0, columns, values, grow)
            elif kind is bool:
                if value:
                    self._put(name, 1.0, columns, values, grow)
            elif value is not None:
                pairs: list[Feature] = []
                flatten_value(pairs, name, key, value, 1)
                for feature, number in pairs:
                    self._put(feature, 1.0 if number is None else number, columns, values,
                              grow)
        return columns, values

    def _put(self, name: str, value: float, columns: list[int], values: list[float],
             grow: bool) -> None:
        column = self._columns.get(name)
        if column is None:
            if len(self._names) < self.max_features:
                if not grow:
                    return
                column = self._add(name)
            else:
                # Past the bias column; max_features ≥ 2 leaves at least one.
                column = 1 + zlib.crc32(name.encode("utf-8", "surrogatepass")) % (
                    self.max_features - 1)
        columns.append(column)
        values.append(value)

    def truncate(self, size: int) -> None:
        """Forget the columns from ``size`` on (a refused batch takes back its names)."""
        for name in self._names[size:]:
            del self._columns[name]
        del self._names[size:]

    def _add(self, name: str) -> int:
        column = len(self._names)
        self._names.append(name)
        self._columns[name] = column
        return column

    def _key_name(self, key: object) -> str:
        if not isinstance(key, str) or not key:
            raise ContextError(f"context keys must be non-empty strings, got {key!r}")
        name = escape(key)
        if len(self._keys) >= _NAME_CACHE_LIMIT:
            self._keys.clear()
        self._keys[key] = name
        return name
