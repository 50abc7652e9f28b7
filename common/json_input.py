"""JSON from a request (a body or a header), parsed with one kind of error for every failure.

Every HTTP surface parses its input through :func:`parse_json` and answers
:class:`InvalidJSONError` with its own 4xx. Besides malformed text and bytes that
are not UTF-8/16/32, that includes nesting deeper than Python's parser recurses
(``'[' * 3000``): ``json`` raises ``RecursionError`` for it, which is no
``ValueError`` and would otherwise escape as a 500.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

__all__ = ["FINITE", "PLAIN", "InvalidJSONError", "JSONTooDeepError", "parse_json"]


class InvalidJSONError(ValueError):
    """The input is not one JSON document; ``str()`` says why, as ``json`` words it."""


class JSONTooDeepError(InvalidJSONError):
    """The input nests arrays or objects deeper than the parser can recurse."""


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


PLAIN = json.JSONDecoder()
"""The standard decoder (what ``json.loads`` uses without options)."""
FINITE = json.JSONDecoder(parse_constant=_refuse_constant)
"""Standard JSON only: ``NaN``, ``Infinity`` and ``-Infinity`` are invalid."""


def parse_json(document: bytes | str, decoder: json.JSONDecoder = PLAIN) -> Any:
    """``document`` parsed by ``decoder`` (build one per set of options, once).

    Bytes are decoded as ``json.loads`` does (UTF-8, -16 or -32, detected). A
    ``ValueError`` raised by one of the decoder's hooks (``parse_constant``,
    ``object_pairs_hook``...) becomes an ``InvalidJSONError`` with its message and
    stays reachable as ``__cause__``; hooks' other exceptions pass through.
    """
    try:
        if not isinstance(document, str):
            document = document.decode(json.detect_encoding(document), "surrogatepass")
        return decoder.decode(document)
    except RecursionError:
        raise JSONTooDeepError("nesting too deep to parse") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise InvalidJSONError(str(exc)) from exc
