"""The context → VW text encoder, checked against VW's own parser."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import vowpalwabbit
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit import ContextError
from bandit._vw_features import FeatureEncoder, action_line, escape

AWKWARD = [
    "plain", "with space", "pipe|pipe", "colon:colon", "new\nline", "tab\ttab", "cr\rcr",
    "eq=eq", "dot.dot", "%41", "%", "100%", "ünïcødé", "emoji 🎲", "shared", "|", ":", "=",
    "\x00nul", "\x7fdel", "\ud800lone surrogate", "-1", "'tag", "  ", "a\x0bb\x0cc",
]


class Parser:
    """VW's own text parser, and the weight index it gives a named feature."""

    def __init__(self) -> None:
        self.workspace = vowpalwabbit.Workspace("--cb_explore_adf --quiet")

    def parse(self, lines: list[str]) -> list[dict[str, list[tuple[int, float]]]]:
        """Per example parsed from ``lines``: namespace -> [(index, value), ...]."""
        ws = self.workspace
        examples = ws._parse("\n".join(lines))
        try:
            out = []
            for example in examples:
                namespaces: dict[str, list[tuple[int, float]]] = {}
                for i in range(example.num_namespaces()):
                    ns = example.namespace(i)
                    namespaces[chr(ns)] = [
                        (example.feature(ns, j), example.feature_weight(ns, j))
                        for j in range(example.num_features_in(ns))
                    ]
                out.append(namespaces)
            return out
        finally:
            ws._finish_example_multi_ex(examples)

    def index(self, namespace: str, name: str) -> int:
        """The index of feature ``name`` in ``namespace``, as the parser stores it."""
        ws = self.workspace
        # VW 9 stores indexes pre-multiplied by the stride, masked to the 2^18 table.
        stride = int(ws.get_stride())
        hashed = int(ws.hash_feature(name, ws.hash_space(namespace)))
        return hashed * stride & ((1 << 18) * stride - 1)


@pytest.fixture(scope="module")
def vw() -> Iterator[Parser]:
    parser = Parser()
    yield parser
    parser.workspace.finish()


def test_awkward_names_and_values_reach_vw_as_the_intended_features(vw: Parser) -> None:
    context: dict[str, Any] = {f"k {name}": 1.5 for name in AWKWARD}
    context.update({f"s {name}": name for name in AWKWARD})
    arms = ("arm one", "arm|two", "arm:3", "arm\n4", "shared")
    lines = FeatureEncoder(arms).lines(context, arms)
    examples = vw.parse(lines)
    # One shared example and one per arm: nothing in a name started a new example.
    assert len(examples) == 1 + len(arms)
    shared = examples[0]["s"]
    expected = [(vw.index("s", escape(f"k {n}")), 1.5) for n in AWKWARD]
    expected += [(vw.index("s", f"{escape(f's {n}')}={escape(n)}"), 1.0) for n in AWKWARD]
    assert shared == expected
    assert len({i for i, _ in shared}) == len(shared)  # distinct names, distinct features
    for arm, example in zip(arms, examples[1:], strict=True):
        assert example["a"] == [(vw.index("a", f"arm={escape(arm)}"), 1.0)]
        assert set(example) == {"a", chr(128)}  # the action namespace and VW's constant


@settings(max_examples=60, deadline=None)
@given(context=st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.one_of(st.text(max_size=12), st.floats(-1e6, 1e6).filter(lambda x: abs(x) > 1e-3),
              st.integers(-10**6, 10**6).filter(bool)),
    max_size=8,
))
def test_every_context_key_becomes_exactly_one_shared_feature(
    vw: Parser, context: dict[str, Any]
) -> None:
    examples = vw.parse(FeatureEncoder(["A"]).lines(context, ("A",)))
    assert len(examples) == 2
    shared = examples[0].get("s", [])
    assert len(shared) == len(context)
    for (idx, value), (key, raw) in zip(shared, context.items(), strict=True):
        if isinstance(raw, str):
            assert (idx, value) == (vw.index("s", f"{escape(key)}={escape(raw)}"), 1.0)
        else:
            assert idx == vw.index("s", escape(key))
            assert value == pytest.approx(raw, rel=1e-6)  # float32 in VW


@settings(max_examples=200, deadline=None)
@given(a=st.text(max_size=6), b=st.text(max_size=6))
def test_escape_is_injective_and_leaves_no_separator(a: str, b: str) -> None:
    assert (escape(a) == escape(b)) == (a == b)
    assert not set(escape(a)) & set(" \t\n\r|:=.")


def test_values_encode_as_documented() -> None:
    encoder = FeatureEncoder()
    context = {"n": 42, "x": 0.25, "on": True, "off": False, "none": None, "plan": "gold",
               "user": {"age": 30, "geo": {"country": "fr"}}, "np": np.float32(0.5),
               "ni": np.int64(7), "nb": np.bool_(True)}
    assert encoder.shared_line(context) == (
        "shared |s n:42 x:0.25 on:1 plan=gold user.age:30 user.geo.country=fr np:0.5 ni:7 nb:1"
    )
    assert encoder.shared_line(None) == encoder.shared_line({}) == "shared |s"
    assert encoder.shared_line({"x": 1 / 3}) == "shared |s x:0.333333333"  # float32 precision
    assert encoder.shared_line({"a.b": 1, "a": {"b": 2}}) == "shared |s a%2Eb:1 a.b:2"


@pytest.mark.parametrize(("context", "message"), [
    ({"tags": ["a", "b"]}, "'tags'.*list"),
    ({"x": math.nan}, "'x'.*finite"),
    ({"x": math.inf}, "'x'.*finite"),
    ({"x": -1e39}, "'x'.*finite"),
    ({"x": 10**400}, "'x'.*finite"),
    ({"x": np.float64("nan")}, "'x'.*finite"),
    ({"user": {"tags": ("a",)}}, "'user.tags'.*tuple"),
    ({"user": {"score": math.inf}}, "'user.score'.*finite"),
    ({"blob": b"bytes"}, "'blob'.*bytes"),
    ({"": 1}, "non-empty strings"),
    ({3: 1}, "non-empty strings"),
    ({"u": {4: 1}}, "'u'.*non-empty strings"),
    ({"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": 1}}}}}}}}}, "'d.d.d.d.d.d.d.d'.*deeper"),
])
def test_unrepresentable_values_raise_context_error_naming_the_key(
    context: dict[Any, Any], message: str
) -> None:
    with pytest.raises(ContextError, match=message):
        FeatureEncoder().shared_line(context)


def test_action_lines_are_cached_for_current_arms_and_computed_for_others() -> None:
    encoder = FeatureEncoder(["A", "B"])
    first = encoder.lines(None, ("A", "B"))
    assert encoder.lines(None, ("A", "B"))[1] is first[1]  # the cached string itself
    encoder.remove_arm("B")
    encoder.add_arm("C")
    assert encoder.lines(None, ("B", "C")) == ["shared |s", "|a arm=B", "|a arm=C"]
    assert action_line("B|x") == "|a arm=B%7Cx"
