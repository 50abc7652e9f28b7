"""A decision's context (its features) from the request, as an experiment's config says.

Three sources (``context.from``):

- ``header``: the ``X-Bandit-Context`` header, a JSON object, bounded in bytes,
  nesting depth and total keys; NaN and Infinity are refused.
- ``json``: values picked out of a JSON body by RFC 6901 pointers; each feature
  is named by the pointer's ``name`` or its last segment.
- ``csv``: columns of the body's first CSV line, by index; a cell that reads as
  a finite number becomes one; named ``c<index>`` unless named.

With ``json`` or ``csv`` a header, when sent, adds its features too (a name
given by both is refused rather than silently picked). Every problem raises
``router.errors.ValidationError`` naming the header, pointer or column at fault.

The header path is hot: a flat object costs ``json.loads`` plus one pass over
its values; only nested values pay for the iterative depth and key walk.
"""

from __future__ import annotations

import csv
import json
import re
from typing import Any, NoReturn

from common.config_sections import ContextConfig, pointer_segments
from common.json_input import InvalidJSONError, JSONTooDeepError, parse_json

from .errors import ValidationError

HEADER = "X-Bandit-Context"

_INDEX = re.compile(r"0|[1-9][0-9]*")
_INTEGER = re.compile(r"\s*[-+]?[0-9]+\s*")
_DECIMAL = re.compile(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*")


class _NonFiniteError(Exception):
    """``NaN``, ``Infinity`` or ``-Infinity`` in the header's JSON (no ``ValueError``, so
    ``parse_json`` lets it through for its own message)."""


def _refuse_constant(name: str) -> NoReturn:
    raise _NonFiniteError(name)


# One decoder for every request: json.loads(..., parse_constant=...) builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _kind(value: object) -> str:
    """A JSON value's kind, as the error message names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _finite_tree(value: Any) -> bool:
    """No NaN or infinite float anywhere in ``value`` (iterative: no recursion limit)."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is float:
            if node - node != 0.0:  # inf - inf and nan - nan are nan
                return False
        elif kind is dict:
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
    return True


def _too_deep(label: str, max_depth: int) -> NoReturn:
    raise ValidationError(f"{label}: nesting deeper than {max_depth}")


def _too_many_keys(label: str, max_keys: int) -> NoReturn:
    raise ValidationError(f"{label}: more than {max_keys} keys")


def _not_finite(label: str) -> NoReturn:
    raise ValidationError(f"{label}: numbers must be finite (no NaN or Infinity)")


def _cell(text: str) -> Any:
    """A CSV cell: an int or a finite float when it reads as one, else the text."""
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text):
        number = float(text)
        if number - number == 0.0:
            return number
    return text


class ContextExtractor:
    """Reads one experiment's context from a request; build once per experiment."""

    __slots__ = ("_columns", "_max_bytes", "_max_depth", "_max_keys", "_pointers", "_source")

    def __init__(self, config: ContextConfig) -> None:
        self._source = config.source
        self._max_bytes = config.max_bytes
        self._max_depth = config.max_depth
        self._max_keys = config.max_keys
        # (feature name, pointer as written, segments with list indexes pre-parsed)
        self._pointers = tuple(
            (p.feature, p.pointer,
             tuple((s, int(s) if _INDEX.fullmatch(s) else None)
                   for s in pointer_segments(p.pointer)))
            for p in config.pointers)
        self._columns = tuple((c.feature, c.column) for c in config.columns)

    def extract(self, header_value: str | None, body: bytes,
                content_type: str | None) -> dict[str, Any] | None:
        """The context for one request; None when the source is the header and none came."""
        header = None if header_value is None else self.parse_header(header_value)
        if self._source == "header":
            return header
        if self._source == "json":
            features = self._from_json(body, content_type)
        else:
            features = self._from_csv(body, content_type)
        if not header:
            return features
        clash = header.keys() & features.keys()
        if clash:
            raise ValidationError(f"{HEADER}: feature {min(clash)!r} is also read from the body")
        header.update(features)
        return header

    def parse_header(self, value: str) -> dict[str, Any]:
        """The header's JSON object, within the configured bounds."""
        size = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        if size > self._max_bytes:
            raise ValidationError(f"{HEADER}: larger than {self._max_bytes} bytes ({size})")
        try:
            context = parse_json(value, _DECODER)
        except _NonFiniteError as exc:
            raise ValidationError(f"{HEADER}: {exc} is not allowed (numbers must be "
                                  "finite)") from None
        except JSONTooDeepError:
            _too_deep(HEADER, self._max_depth)
        except InvalidJSONError as exc:
            raise ValidationError(f"{HEADER}: not valid JSON ({exc})") from None
        return self.check(context, HEADER)

    def check(self, context: Any, label: str = "context") -> dict[str, Any]:
        """An already parsed context (the decision API's ``context``), within the bounds.

        Errors start with ``label``. A flat object costs one pass over its values.
        """
        if type(context) is not dict:
            raise ValidationError(f"{label}: must be a JSON object, got {_kind(context)}")
        if len(context) > self._max_keys:
            _too_many_keys(label, self._max_keys)
        for item in context.values():
            kind = type(item)
            if kind is float:
                if item - item != 0.0:  # 1e999 parses as inf without parse_constant
                    _not_finite(label)
            elif kind is dict or kind is list:
                self._check_tree(context, label)
                break
        return context

    def _check_tree(self, context: dict[str, Any], label: str) -> None:
        """Depth, total keys and finiteness of a nested context, without recursion."""
        keys = 0
        stack: list[tuple[Any, int]] = [(context, 1)]
        while stack:
            node, depth = stack.pop()
            if depth > self._max_depth:
                _too_deep(label, self._max_depth)
            if type(node) is dict:
                keys += len(node)
                if keys > self._max_keys:
                    _too_many_keys(label, self._max_keys)
                values = node.values()
            else:
                values = node
            for item in values:
                kind = type(item)
                if kind is dict or kind is list:
                    stack.append((item, depth + 1))
                elif kind is float and item - item != 0.0:
                    _not_finite(label)

    def _from_json(self, body: bytes, content_type: str | None) -> dict[str, Any]:
        try:
            document = parse_json(body)
        except InvalidJSONError:
            shown = f", Content-Type {content_type}" if content_type else ""
            raise ValidationError(f"request body: not valid JSON{shown} (this endpoint reads "
                                  "its context from the JSON body)") from None
        features: dict[str, Any] = {}
        for name, pointer, segments in self._pointers:
            node = document
            for key, index in segments:
                if type(node) is dict and key in node:
                    node = node[key]
                elif type(node) is list and index is not None and index < len(node):
                    node = node[index]
                else:
                    raise ValidationError(f"context pointer {pointer}: not found in the body")
            if not _finite_tree(node):
                raise ValidationError(f"context pointer {pointer}: numbers must be finite "
                                      "(no NaN or Infinity)")
            features[name] = node
        return features

    def _from_csv(self, body: bytes, content_type: str | None) -> dict[str, Any]:
        end = body.find(b"\n")
        try:
            line = (body if end < 0 else body[:end]).decode("utf-8-sig").rstrip("\r")
        except UnicodeDecodeError:
            raise ValidationError("request body: the first CSV line is not UTF-8 text") from None
        if not line.strip():
            shown = f" (Content-Type {content_type})" if content_type else ""
            raise ValidationError(f"request body: no CSV line to read the context from{shown}")
        try:
            row = next(csv.reader([line]))
        except csv.Error as exc:
            raise ValidationError(f"request body: first CSV line: {exc}") from None
        features: dict[str, Any] = {}
        for name, column in self._columns:
            if column >= len(row):
                raise ValidationError(f"context column {column}: the body's first CSV line has "
                                      f"only {len(row)} column{'s' if len(row) != 1 else ''}")
            features[name] = _cell(row[column])
        return features
