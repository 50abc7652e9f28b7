"""Metric names in a PromQL expression, and metric families in an exposition text.

A small tokenizer, enough for dashboards and alert rules: it drops string literals,
label matchers (``{...}``), ranges and offsets (``[5m]``), grouping clauses
(``by (...)``, ``without (...)``, ``on (...)``, ``ignoring (...)``, ``group_left (...)``),
numbers, keywords and functions (an identifier followed by ``(``); the identifiers
left are metric names. Grafana's ``$variable`` and ``${variable}`` are removed first.
"""

from __future__ import annotations

import re

KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2"})
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def metric_names(expression: str) -> set[str]:
    """The metric names ``expression`` selects."""
    text = _VARIABLES.sub("1", expression)
    text = _STRINGS.sub('""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        before = text[:match.start()]
        if before.endswith(("0x",)) or (before and (before[-1].isdigit() or before[-1] == ".")):
            continue  # part of a number (1e3, 0x1f, 2.5)
        following = text[match.end():].lstrip()
        if following.startswith("(") or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def exposed_families(exposition: str) -> set[str]:
    """Every family named by a ``# TYPE`` line, and every sample's name."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(_IDENTIFIER.match(line).group())  # type: ignore[union-attr]
    return names


def family_of(name: str, exposed: set[str]) -> str:
    """``name`` itself if exposed, else its family (``x_bucket`` -> ``x``; a counter's
    ``x_total`` -> ``x`` when it has no sample yet)."""
    if name in exposed:
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[:-len(suffix)] in exposed:
            return name[:-len(suffix)]
    return name
