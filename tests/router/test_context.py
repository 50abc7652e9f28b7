"""Context extraction: the X-Bandit-Context header, JSON pointers, CSV columns."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.config import ContextConfig
from router.context import ContextExtractor
from router.errors import ValidationError


def extractor(**config: Any) -> ContextExtractor:
    return ContextExtractor(ContextConfig.model_validate(config))


HEADER = extractor()
JSON = extractor(**{"from": "json", "pointers": [
    "/user/age", {"pointer": "/user/plan", "name": "tier"}, "/items/1", "/a~1b", "/m~0n",
    {"pointer": "/deep/x/y", "name": "xy"}]})
CSV = extractor(**{"from": "csv", "columns": [0, 2, {"column": 3, "name": "plan"}]})

BODY = json.dumps({"user": {"age": 42, "plan": "gold"}, "items": ["a", 7.5], "a/b": True,
                   "m~n": None, "deep": {"x": {"y": [1, 2]}}, "other": float("nan")}).encode()
BODY_FEATURES = {"age": 42, "tier": "gold", "1": 7.5, "a/b": True, "m~n": None, "xy": [1, 2]}


def refused(call: Any, *args: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        call(*args)
    assert caught.value.status == 400 and caught.value.code == "ValidationError"
    return caught.value.message


# --- header ------------------------------------------------------------------------------

def test_header_object_is_the_context() -> None:
    value = '{"age": 42, "premium": true, "plan": "gold", "geo": {"country": "fr"}, "x": null}'
    assert HEADER.extract(value, b"ignored", "application/json") == json.loads(value)


def test_no_header_no_context() -> None:
    assert HEADER.extract(None, b"{}", "application/json") is None


@pytest.mark.parametrize(("value", "message"), [
    ("[1, 2]", "X-Bandit-Context: must be a JSON object, got an array"),
    ('"text"', "X-Bandit-Context: must be a JSON object, got a string"),
    ("3", "X-Bandit-Context: must be a JSON object, got a number"),
    ("true", "X-Bandit-Context: must be a JSON object, got a boolean"),
    ("null", "X-Bandit-Context: must be a JSON object, got null"),
    ('{"a": NaN}', "X-Bandit-Context: NaN is not allowed (numbers must be finite)"),
    ('{"a": [Infinity]}', "X-Bandit-Context: Infinity is not allowed (numbers must be finite)"),
    ('{"a": -Infinity}', "X-Bandit-Context: -Infinity is not allowed (numbers must be finite)"),
    ('{"a": 1e999}', "X-Bandit-Context: numbers must be finite (no NaN or Infinity)"),
    ('{"a": {"b": -1e400}}', "X-Bandit-Context: numbers must be finite (no NaN or Infinity)"),
    ('{"a": [[[[1]]]]}', "X-Bandit-Context: nesting deeper than 4"),
    ('{"a": {"b": {"c": {"d": {}}}}}', "X-Bandit-Context: nesting deeper than 4"),
])
def test_header_errors(value: str, message: str) -> None:
    assert refused(HEADER.extract, value, b"", None) == message


def test_header_that_is_not_json() -> None:
    assert refused(HEADER.extract, "{age: 42}", b"", None).startswith(
        "X-Bandit-Context: not valid JSON (Expecting property name enclosed in double quotes")
    assert refused(HEADER.extract, "", b"", None).startswith("X-Bandit-Context: not valid JSON")
    assert refused(HEADER.extract, '{"a": 1} x', b"", None).startswith(
        "X-Bandit-Context: not valid JSON (Extra data")


def test_header_depth_bound_is_inclusive() -> None:
    assert HEADER.extract('{"a": [[{"b": 1}]]}', b"", None) == {"a": [[{"b": 1}]]}
    shallow = extractor(max_depth=1)
    assert shallow.extract('{"a": 1, "b": "x"}', b"", None) == {"a": 1, "b": "x"}
    assert refused(shallow.extract, '{"a": []}', b"", None) == (
        "X-Bandit-Context: nesting deeper than 1")


def test_very_deep_nesting_is_refused_without_recursion_errors() -> None:
    wide = extractor(max_bytes=1 << 20, max_depth=64)
    value = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert refused(wide.extract, value, b"", None) == "X-Bandit-Context: nesting deeper than 64"


def test_header_size_bound_counts_utf8_bytes() -> None:
    small = extractor(max_bytes=16)
    assert small.extract('{"k": "abcdefg"}', b"", None) == {"k": "abcdefg"}  # 16 bytes
    assert refused(small.extract, '{"k": "abcdefgh"}', b"", None) == (
        "X-Bandit-Context: larger than 16 bytes (17)")
    assert refused(small.extract, '{"k": "ééééé"}', b"", None) == (  # 14 chars, 19 bytes
        "X-Bandit-Context: larger than 16 bytes (19)")


def test_header_key_bound_counts_every_level() -> None:
    few = extractor(max_keys=3)
    assert few.extract('{"a": 1, "b": {"c": 2}}', b"", None) == {"a": 1, "b": {"c": 2}}
    assert refused(few.extract, '{"a": 1, "b": 2, "c": 3, "d": 4}', b"", None) == (
        "X-Bandit-Context: more than 3 keys")
    assert refused(few.extract, '{"a": 1, "b": [{"c": 2, "d": 3}]}', b"", None) == (
        "X-Bandit-Context: more than 3 keys")


def test_check_bounds_a_parsed_context_for_the_decision_api() -> None:
    assert HEADER.check({"a": 1.5, "b": {"c": [1]}}) == {"a": 1.5, "b": {"c": [1]}}
    assert refused(HEADER.check, [1]) == "context: must be a JSON object, got an array"
    assert refused(HEADER.check, {"a": math.inf}) == (
        "context: numbers must be finite (no NaN or Infinity)")
    assert refused(HEADER.check, {"a": {"b": [[[]]]}}) == "context: nesting deeper than 4"


# --- JSON body ---------------------------------------------------------------------------

def test_json_pointers_pick_features_from_the_body() -> None:
    assert JSON.extract(None, BODY, "application/json") == BODY_FEATURES


def test_json_source_merges_the_header() -> None:
    merged = JSON.extract('{"hour": 13}', BODY, "application/json")
    assert merged == {"hour": 13, **BODY_FEATURES}
    assert refused(JSON.extract, '{"tier": "x"}', BODY, None) == (
        "X-Bandit-Context: feature 'tier' is also read from the body")
    assert refused(JSON.extract, "[]", BODY, None) == (
        "X-Bandit-Context: must be a JSON object, got an array")


@pytest.mark.parametrize(("document", "pointer"), [
    ({"user": {"plan": "x"}}, "/user/age"),
    ({"user": {"age": 1, "plan": "x"}, "items": ["a"]}, "/items/1"),
    ({"user": {"age": 1, "plan": "x"}, "items": {"1": 5}, "a/b": 1}, None),
    ({"user": 5}, "/user/age"),
])
def test_json_pointer_not_found(document: Any, pointer: str | None) -> None:
    body = json.dumps(document).encode()
    if pointer is None:  # an object key "1" is found by /items/1, as RFC 6901 says
        assert refused(JSON.extract, None, body, None) == (
            "context pointer /m~0n: not found in the body")
    else:
        assert refused(JSON.extract, None, body, None) == (
            f"context pointer {pointer}: not found in the body")


@pytest.mark.parametrize("segment", ["-", "01", "+1", "9"])
def test_json_array_indexes_are_strict(segment: str) -> None:
    one = extractor(**{"from": "json", "pointers": [{"pointer": f"/x/{segment}", "name": "v"}]})
    assert refused(one.extract, None, b'{"x": [0, 1, 2]}', None) == (
        f"context pointer /x/{segment}: not found in the body")


def test_json_body_errors() -> None:
    assert refused(JSON.extract, None, b"1,2,3", "text/csv") == (
        "request body: not valid JSON, Content-Type text/csv (this endpoint reads its context "
        "from the JSON body)")
    assert refused(JSON.extract, None, b"", None) == (
        "request body: not valid JSON (this endpoint reads its context from the JSON body)")
    nan = extractor(**{"from": "json", "pointers": ["/x"]})
    assert refused(nan.extract, None, b'{"x": [1, NaN]}', None) == (
        "context pointer /x: numbers must be finite (no NaN or Infinity)")
    assert nan.extract(None, b'{"x": 1, "y": NaN}', None) == {"x": 1}  # NaN elsewhere is fine


# --- CSV body ----------------------------------------------------------------------------

def test_csv_columns_pick_features_from_the_first_line() -> None:
    body = b'3,ignored,-2.5e1,"gold, plus",x\r\n9,9,9,9\n'
    assert CSV.extract(None, body, "text/csv") == {"c0": 3, "c2": -25.0, "plan": "gold, plus"}


@pytest.mark.parametrize(("cell", "value"), [
    ("7", 7), (" -7 ", -7), ("1.5", 1.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0),
    ("nan", "nan"), ("inf", "inf"), ("1e999", "1e999"), ("1_000", "1_000"), ("0x10", "0x10"),
    ("", ""), ("abc", "abc"),
])
def test_csv_cells_are_numbers_only_when_they_read_as_finite_numbers(cell: str,
                                                                    value: Any) -> None:
    one = extractor(**{"from": "csv", "columns": [{"column": 1, "name": "v"}]})
    got = one.extract(None, f"x,{cell}".encode(), None)
    assert got == {"v": value} and type(got["v"]) is type(value)


def test_csv_merges_the_header_and_strips_a_bom() -> None:
    got = CSV.extract('{"hour": 1}', "\ufeff1,2,3,4".encode(), "text/csv")
    assert got == {"hour": 1, "c0": 1, "c2": 3, "plan": 4}


def test_csv_errors() -> None:
    assert refused(CSV.extract, None, b"1,2,3", "text/csv") == (
        "context column 3: the body's first CSV line has only 3 columns")
    assert refused(CSV.extract, None, b"1", None) == (
        "context column 2: the body's first CSV line has only 1 column")
    assert refused(CSV.extract, None, b"\xff\xfe,1", None) == (
        "request body: the first CSV line is not UTF-8 text")
    assert refused(CSV.extract, None, b"\n1,2,3,4", "text/csv") == (
        "request body: no CSV line to read the context from (Content-Type text/csv)")
    assert refused(CSV.extract, None, b"", None) == (
        "request body: no CSV line to read the context from")
    huge = b"1,2," + b"x" * 200_000 + b",4"  # beyond the csv module's field size limit
    assert refused(CSV.extract, None, huge, None).startswith(
        "request body: first CSV line: field larger than field limit")


# --- properties --------------------------------------------------------------------------

BOUNDS = {"max_bytes": 300, "max_depth": 3, "max_keys": 8}
BOUNDED = extractor(**BOUNDS)

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=12)
objects = st.dictionaries(st.text(max_size=6), values, max_size=6)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(map(keys, value.values()))
    if isinstance(value, list):
        return sum(map(keys, value))
    return 0


def same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (1, 1.0 and True differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(objects, st.booleans())
def test_any_object_within_the_bounds_round_trips_and_only_those(context: dict[str, Any],
                                                                  ascii_only: bool) -> None:
    value = json.dumps(context, ensure_ascii=ascii_only)
    within = (len(value.encode("utf-8", "surrogatepass")) <= BOUNDS["max_bytes"]
              and depth(context) <= BOUNDS["max_depth"] and keys(context) <= BOUNDS["max_keys"])
    if within:
        assert same(BOUNDED.extract(value, b"", None), context)
    else:
        refused(BOUNDED.extract, value, b"", None)
