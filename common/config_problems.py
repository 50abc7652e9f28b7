"""Config failures as one line per bad key: ``experiments[0].policy.epsilon: must be ...``.

``ConfigError`` carries every problem found, so an operator fixes a file in one
pass. Pydantic's errors are reworded for people who write YAML (``null``, a
mapping, a list); YAML syntax errors name the line and column; duplicate keys,
which ``yaml.safe_load`` would silently resolve to the last one, are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails


class ConfigError(Exception):
    """A configuration that cannot be used; ``problems`` has one ``path: problem`` per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def dotted(loc: Iterable[int | str]) -> str:
    """``("experiments", 0, "policy", "epsilon")`` as ``experiments[0].policy.epsilon``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "config"


def problem_lines(error: PydanticValidationError) -> list[str]:
    """Every error of a pydantic validation as ``path: problem``, in document order."""
    return [f"{dotted(detail['loc'])}: {describe(detail)}" for detail in error.errors()]


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

_COMPARISONS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def describe(detail: ErrorDetails) -> str:
    """One pydantic error's problem in the words of the YAML file (no path)."""
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    got = show(detail["input"])
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "is required"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {got}"
    if kind in _COMPARISONS:
        key, sign = _COMPARISONS[kind]
        bound = ctx[key]  # pydantic holds float bounds as floats: 0.0 reads better as 0
        if isinstance(bound, float) and bound.is_integer() and abs(bound) < 1e15:
            bound = int(bound)
        return f"must be {sign} {bound}, got {got}"
    if kind == "finite_number":
        return f"must be finite, got {got}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {got}"
    if kind == "too_short":
        count = ctx["min_length"]
        return f"must have at least {count} item{'s' if count != 1 else ''}"
    if kind == "too_long":
        count = ctx["max_length"]
        return f"must have at most {count} item{'s' if count != 1 else ''}"
    if kind == "value_error":
        return detail["msg"].removeprefix("Value error, ")
    return detail["msg"]


def show(value: object, limit: int = 60) -> str:
    """A value as the problem line quotes it: YAML words for null and booleans, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        # Merge keys (<<) may legitimately repeat what they merge; only explicit keys count.
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark,
                f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(path: str | Path) -> object:
    """The YAML document at ``path``; ``ConfigError`` with one clear line when it cannot be."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a config file"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: YAML error{where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: YAML error: {exc}"]) from None
