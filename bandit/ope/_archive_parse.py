"""One block of archive lines as the reader's columns: ``decode``.

Lines in the layout ``to_dsjson`` writes are split into their fields by one regular
expression over the whole block (no per-line JSON objects), the fields become arrays
in numpy, and what repeats from line to line (the action order ``a``, the offered
actions ``c._multi``, the variant list, experiment and version) is decoded once and
cached in ``Tables``. Other lines (other key orders, spacing, escapes) take the slow
path, ``json.loads``, and are re-encoded into the same fields, so both paths share
every check. The fast path checks the layout of every field it uses; the feature
object ``c.s`` is parsed only when contexts are asked for.

Checks: ``p`` a pmf over ``c._multi`` within 1e-6, ``_label_probability`` in
(0, 1] and equal to the chosen action's ``p`` within 1e-9, a finite reward, every
offered variant among the line's ``variants``. A line failing one is a bad line.

Every result of ``decode`` is per line, whatever the block boundaries: the archive
reader and the index builder (``_index``) cut files into blocks differently and
must agree row for row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import compress, repeat
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from .._types import Arm
from ..dsjson import _arm as _arm_name  # the one decoder of an action's name
from ._chunks import BoolArray, FloatArray, IntArray

PMF_TOLERANCE = 1e-6
PROPENSITY_TOLERANCE = 1e-9


# The fast path: one line exactly as to_dsjson writes it; strings without escapes.
_STR = rb'"[^"\\\n]*"'
_NUM = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_INT = rb"(?:0|[1-9][0-9]*)"
_OBSERVED = (rb'\[(?:\{"v":' + _NUM + rb',"EventId":' + _STR
             + rb',"ActionTaken":(?:true|false)\})?\]')
# c.s and c._multi are matched loosely, for speed: _multi is decoded (and checked) with
# json once per distinct value, c.s only when contexts are asked for. A loose group
# cannot end inside a JSON string: the literal after it starts with an unescaped '"'.
_FEATURES = rb"\{[^{}\n]*\}"
_ACTIONS = rb"\[[^\]\n]*\]"
_STRINGS = rb"\[(?:" + _STR + rb"(?:," + _STR + rb")*)?\]"
_LINE = re.compile(
    rb'^\{"_label_cost":(' + _NUM + rb'),"_label_probability":(' + _NUM
    + rb'),"_label_Action":(' + _INT + rb'),"_labelIndex":' + _INT + rb',"o":' + _OBSERVED
    + rb',"Timestamp":"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}'
    rb'(?:\.[0-9]{1,6})?)Z","Version":' + _STR + rb',"EventId":(' + _STR + rb')'
    + rb',"a":\[(' + _INT + rb"(?:," + _INT + rb')*)\],"c":\{(?:"s":' + _FEATURES
    + rb',)?"_multi":(' + _ACTIONS + rb')\},"p":\[('
    + _NUM + rb"(?:," + _NUM + rb')*)\],("experiment":(?:' + _STR + rb'|null),'
    rb'"policy_version":(?:' + _STR + rb"|null|" + _INT + rb')),"variants":('
    + _STRINGS + rb'|null),("targeted":(?:true|false),"default_reward":(?:true|false))'
    rb'(?:,"dropped_features":' + _STRINGS + rb")?\}\r?$", re.MULTILINE)

# A line's fields as bytes, in the fast path's group order.
_Fields = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes]
(_COST, _PROBABILITY, _ACTION_ID, _TIME, _EVENT_ID, _ORDER, _MULTI, _P, _IDENT, _VARIANTS,
 _FLAGS) = range(11)



@dataclass(slots=True)
class Decoded:
    """A block's lines before any filter: its good rows' columns and its bad lines.

    ``experiment``, ``version`` and ``arm_list`` index ``Tables.experiments``,
    ``versions`` and ``arm_lists``; ``action`` is the chosen column of ``logged``
    and ``offered`` (as wide as the block's widest variant list); ``event_id`` the
    ``EventId`` as its JSON text (quotes included), the duplicate filter's key;
    ``texts`` the good rows' lines when asked for; ``bad`` is in line order.
    """

    lines: int
    bad: list[tuple[int, str]]
    numbers: IntArray
    experiment: IntArray
    version: IntArray
    arm_list: IntArray
    action: IntArray
    propensity: FloatArray
    logged: FloatArray
    offered: BoolArray
    reward: FloatArray
    timestamp: FloatArray
    targeted: BoolArray
    default_reward: BoolArray
    event_id: npt.NDArray[np.bytes_]
    texts: list[bytes] | None


def decode(tables: Tables, first_line: int, data: bytes, newlines: int,
           keep_text: bool) -> Decoded:
    """The good rows and bad lines of a block of whole lines (``newlines`` of them).

    ``first_line`` is the number of lines before the block; line numbers are 1-based.
    New variant lists, experiments and versions are added to ``tables``, first seen
    first (bad rows' too).
    """
    rows = _LINE.findall(data)
    texts: list[bytes] | None
    unread: list[tuple[int, str]] = []
    if len(rows) == newlines:
        numbers: list[int] = list(range(first_line + 1, first_line + len(rows) + 1))
        texts = data.split(b"\n")[:-1] if keep_text else None
    else:  # a line off the fast layout: line by line
        rows, numbers, texts, unread = _line_by_line(first_line, data, keep_text)
    lines = len(rows) + len(unread)
    if not rows:
        return _no_rows(lines, unread)
    columns = list(zip(*rows, strict=True))
    layout = tables.layout_ids(list(zip(columns[_ORDER], columns[_MULTI],
                                        columns[_VARIANTS], strict=True)))
    ident = tables.ident_ids(columns[_IDENT])
    flags = tables.flag_bits(columns[_FLAGS])
    tables.build()
    parsed = _parse(columns, layout, tables)
    # Reported in line order, whichever check found them.
    bad = sorted(unread + [(numbers[r], m) for r, m in parsed.errors])
    good = parsed.rows
    good_list = good.tolist()
    event_ids = columns[_EVENT_ID]
    return Decoded(
        lines=lines, bad=bad, numbers=np.asarray(numbers, dtype=np.intp)[good],
        experiment=tables.ident_experiment[ident[good]],
        version=tables.ident_version[ident[good]], arm_list=tables.arm_list[layout[good]],
        action=parsed.action, propensity=parsed.propensity, logged=parsed.logged,
        offered=parsed.offered, reward=parsed.reward, timestamp=parsed.timestamp,
        targeted=(flags[good] & 1).astype(bool), default_reward=(flags[good] & 2).astype(bool),
        event_id=np.array([event_ids[i] for i in good_list], dtype=np.bytes_).reshape(-1),
        texts=None if texts is None else [texts[i] for i in good_list])


def _no_rows(lines: int, unread: list[tuple[int, str]]) -> Decoded:
    ints = np.zeros(0, dtype=np.intp)
    floats = np.zeros(0)
    flags = np.zeros(0, dtype=bool)
    return Decoded(lines, unread, ints, ints, ints, ints, ints, floats, np.zeros((0, 0)),
                   np.zeros((0, 0), dtype=bool), floats, floats, flags, flags,
                   np.zeros(0, dtype="S1"), None)


def _line_by_line(first_line: int, data: bytes, keep_text: bool) -> tuple[
        list[_Fields], list[int], list[bytes] | None, list[tuple[int, str]]]:
    """Fields of each line (fast layout or JSON), their numbers, texts, and the unread."""
    rows: list[_Fields] = []
    numbers: list[int] = []
    texts: list[bytes] = []
    unread: list[tuple[int, str]] = []
    for offset, text in enumerate(data.split(b"\n")[:-1]):
        number = first_line + offset + 1
        if not text.strip():
            continue
        match = _LINE.match(text + b"\n")
        try:
            fields = cast(_Fields, match.groups()) if match else _slow_fields(text)
        except ValueError as exc:
            unread.append((number, str(exc)))
            continue
        rows.append(fields)
        numbers.append(number)
        texts.append(text)
    return rows, numbers, texts if keep_text else None, unread

@dataclass(frozen=True, slots=True)
class Layout:
    """What an (``a``, ``c._multi``, ``variants``) triple means, decoded once.

    ``columns[j]`` is the variant column of ``p[j]``; ``ids[j]`` = ``a[j]``;
    ``arms`` the chunk's columns (``variants``, or the offered actions without them).
    """

    arms: tuple[Arm, ...]
    columns: list[int]
    ids: list[int]
    error: str | None = None


class Ids:
    """Dense integer ids for the values met so far (experiments, versions, variant lists)."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}
        self.values: list[Any] = []

    def __call__(self, value: Any) -> int:
        found = self.ids.get(value)
        if found is None:
            found = self.ids[value] = len(self.values)
            self.values.append(value)
        return found


class Tables:
    """Per-id arrays of the decoded layouts and identities, for numpy look-ups by id.

    One entry per distinct layout (action order × offered set × variant list) and per
    (experiment, version): hundreds in practice, so the arrays are rebuilt as they grow.
    """

    def __init__(self) -> None:
        self.layout_keys: dict[tuple[bytes, bytes, bytes], int] = {}
        self.layouts: list[Layout] = []
        self.ident_keys: dict[bytes, int] = {}
        self.ident_values: list[tuple[int, int]] = []
        self.flag_keys: dict[bytes, int] = {}
        self.experiments = Ids()
        self.versions = Ids()
        self.arm_lists = Ids()
        empty = np.zeros(0, dtype=np.intp)
        self.ident_experiment = self.ident_version = self.size = self.width = empty
        self.arm_list = empty
        self.broken = np.zeros(0, dtype=bool)
        self.column = self.action_id = np.zeros((0, 0), dtype=np.intp)

    def layout_ids(self, keys: list[tuple[bytes, bytes, bytes]]) -> IntArray:
        cache = self.layout_keys
        for key in _new(keys, cache):
            cache[key] = len(self.layouts)
            self.layouts.append(_layout(*key))
        return np.fromiter(map(cache.__getitem__, keys), dtype=np.intp, count=len(keys))

    def ident_ids(self, keys: tuple[bytes, ...]) -> IntArray:
        cache = self.ident_keys
        for key in _new(keys, cache):
            experiment, version = _ident(key)
            cache[key] = len(self.ident_values)
            self.ident_values.append((self.experiments(experiment), self.versions(version)))
        return np.fromiter(map(cache.__getitem__, keys), dtype=np.intp, count=len(keys))

    def flag_bits(self, keys: tuple[bytes, ...]) -> IntArray:
        """Per row: 1 when targeted, + 2 when the reward was the default."""
        cache = self.flag_keys
        for key in _new(keys, cache):
            cache[key] = (b'"targeted":true' in key) + 2 * (b'"default_reward":true' in key)
        return np.fromiter(map(cache.__getitem__, keys), dtype=np.intp, count=len(keys))

    def build(self) -> None:
        """Bring the per-id arrays up to date with the ids added since the last call."""
        if len(self.ident_values) != len(self.ident_experiment):
            idents = np.array(self.ident_values, dtype=np.intp).reshape(-1, 2)
            self.ident_experiment, self.ident_version = idents[:, 0], idents[:, 1]
        if len(self.layouts) == len(self.size):
            return
        layouts = self.layouts
        width = max(len(lay.ids) for lay in layouts)
        self.size = np.array([len(lay.ids) for lay in layouts], dtype=np.intp)
        self.width = np.array([len(lay.arms) for lay in layouts], dtype=np.intp)
        self.broken = np.array([lay.error is not None for lay in layouts], dtype=bool)
        self.arm_list = np.array([self.arm_lists(lay.arms) for lay in layouts], dtype=np.intp)
        self.column = np.zeros((len(layouts), width), dtype=np.intp)
        self.action_id = np.zeros((len(layouts), width), dtype=np.intp)
        for i, lay in enumerate(layouts):
            self.column[i, :len(lay.columns)] = lay.columns
            self.action_id[i, :len(lay.ids)] = lay.ids


def _new(keys: Iterable[Any], cache: dict[Any, int]) -> list[Any]:
    """The keys not in ``cache``, each once, first seen first (ids follow the file order)."""
    return [key for key in dict.fromkeys(keys) if key not in cache]


@dataclass(slots=True)
class _Parsed:
    """A block's numeric fields for its good rows (``rows``: their block indices)."""

    rows: IntArray
    errors: list[tuple[int, str]]
    reward: FloatArray
    propensity: FloatArray
    timestamp: FloatArray
    action: IntArray
    logged: FloatArray
    offered: BoolArray


def _parse(columns: list[tuple[bytes, ...]], layout: IntArray, tables: Tables) -> _Parsed:
    """The numeric fields of a block in numpy, and the rows that fail a check."""
    n = layout.size
    errors: dict[int, str] = {}
    sizes = tables.size[layout]
    for row in np.flatnonzero(tables.broken[layout]).tolist():
        errors[row] = str(tables.layouts[layout[row]].error)
    # Counting commas is cheap and catches a p of the wrong length before the arrays
    # are laid out by it.
    counts = np.fromiter(map(bytes.count, columns[_P], repeat(b",")), dtype=np.intp,
                         count=n) + 1
    for row in np.flatnonzero(counts != sizes).tolist():
        errors.setdefault(row, f"'p' has {counts[row]} values for the "
                               f"{sizes[row]} actions in 'a'")
    if errors:
        fine = np.ones(n, dtype=bool)
        fine[list(errors)] = False
        rows = np.flatnonzero(fine)
        p_text = b",".join(compress(columns[_P], fine.tolist()))
    else:
        rows = np.arange(n)
        p_text = b",".join(columns[_P])
    m = rows.size
    if not m:
        empty = np.zeros(0)
        return _Parsed(rows, sorted(errors.items()), empty, empty, empty,
                       np.zeros(0, dtype=np.intp), np.zeros((0, 0)), np.zeros((0, 0), bool))
    kinds = layout[rows]
    sizes = sizes[rows]
    reward = -_floats(columns[_COST])[rows]
    propensity = _floats(columns[_PROBABILITY])[rows]
    action = np.asarray(columns[_ACTION_ID], dtype=np.bytes_).astype(np.intp)[rows]
    timestamp, bad_times = _timestamps(columns[_TIME])
    timestamp, bad_times = timestamp[rows], bad_times[rows]
    p = _floats(p_text.split(b","))
    # Row-major positions of the p values: the layouts' padded columns, masked by size.
    present = np.arange(tables.column.shape[1]) < sizes[:, None]
    row_of = np.broadcast_to(np.arange(m)[:, None], present.shape)[present]
    column_of = tables.column[kinds][present]
    id_of = tables.action_id[kinds][present]
    width = int(tables.width[kinds].max())
    logged = np.zeros((m, width))
    logged[row_of, column_of] = p
    offered = np.zeros((m, width), dtype=bool)
    offered[row_of, column_of] = True
    chosen = id_of == action[row_of]
    chosen_column = np.full(m, -1, dtype=np.intp)
    chosen_column[row_of[chosen]] = column_of[chosen]
    chosen_p = np.full(m, np.nan)
    chosen_p[row_of[chosen]] = p[chosen]
    starts = np.cumsum(sizes) - sizes
    totals = np.add.reduceat(p, starts)
    lowest = np.minimum.reduceat(p, starts)
    # The checks, in the order a message is chosen: the first failing check names the row.
    checks: list[tuple[BoolArray, Callable[[int], str]]] = [
        (bad_times, lambda r: f"Timestamp {columns[_TIME][rows[r]].decode()!r} is not an "
                              "ISO 8601 UTC time"),
        (chosen_column < 0, lambda r: f"_label_Action {action[r]} is not one of the "
                                      f"{sizes[r]} actions in 'a'"),
        ((lowest < 0) | ~(np.abs(totals - 1.0) <= PMF_TOLERANCE),
         lambda r: f"'p' is not a probability distribution (sum {totals[r]:.9g}, "
                   f"smallest {lowest[r]:.9g})"),
        (~((propensity > 0) & (propensity <= 1)),
         lambda r: f"_label_probability {float(propensity[r])!r} is not in (0, 1]"),
        (~(np.abs(propensity - chosen_p) <= PROPENSITY_TOLERANCE),
         lambda r: f"_label_probability {float(propensity[r])!r} is not the chosen "
                   f"action's p {float(chosen_p[r])!r}"),
        (~np.isfinite(reward), lambda r: f"the reward (-_label_cost) {float(reward[r])!r} "
                                         "is not finite"),
    ]
    failing = np.zeros(m, dtype=bool)
    for mask, message in checks:
        for r in np.flatnonzero(mask & ~failing).tolist():
            errors[int(rows[r])] = message(r)
        failing |= mask
    if failing.any():
        keep = ~failing
        rows = rows[keep]
        reward, propensity, timestamp = reward[keep], propensity[keep], timestamp[keep]
        chosen_column, logged, offered = chosen_column[keep], logged[keep], offered[keep]
    return _Parsed(rows, sorted(errors.items()), reward, propensity, timestamp,
                   chosen_column, logged, offered)


def _floats(values: Iterable[bytes]) -> FloatArray:
    array = np.asarray(values if isinstance(values, list | tuple) else list(values),
                       dtype=np.bytes_)
    return array.astype(np.float64) if array.size else np.zeros(0)


def _timestamps(values: tuple[bytes, ...]) -> tuple[FloatArray, BoolArray]:
    """ISO 8601 UTC times (no zone suffix) as Unix seconds, and which ones would not parse."""
    text = np.asarray(values, dtype=np.bytes_)
    try:
        micros = text.astype("datetime64[us]").astype(np.int64)
        return micros / 1e6, np.zeros(len(values), dtype=bool)
    except ValueError:  # one bad date (month 13): find it row by row
        seconds = np.zeros(len(values))
        bad = np.zeros(len(values), dtype=bool)
        for row, value in enumerate(text):
            try:
                seconds[row] = np.datetime64(value.decode(), "us").astype(np.int64) / 1e6
            except ValueError:
                bad[row] = True
        return seconds, bad


def _layout(order: bytes, multi: bytes, variants: bytes) -> Layout:
    """Decode and check an (``a``, ``c._multi``, ``variants``) triple."""
    try:
        offered = [_arm_name(item) for item in json.loads(multi)]
        listed = json.loads(variants)
        arms = tuple(str(v) for v in listed) if listed is not None else tuple(offered)
    except (ValueError, TypeError, AttributeError) as exc:
        return _bad_layout(f"not one of our DSJSON lines: c._multi: {exc}")
    ids = [int(i) for i in order.split(b",")]
    if sorted(ids) != list(range(1, len(offered) + 1)):
        return _bad_layout(f"'a' {ids} is not a permutation of the {len(offered)} actions "
                           "in c._multi")
    if len(set(arms)) != len(arms):
        return _bad_layout(f"'variants' lists a variant twice: {list(arms)}")
    index = {arm: i for i, arm in enumerate(arms)}
    unknown = [arm for arm in offered if arm not in index]
    if unknown:
        return _bad_layout(f"variant {unknown[0]!r} is not one of the experiment's variants "
                           f"{list(arms)}")
    if len(set(offered)) != len(offered):
        return _bad_layout(f"c._multi offers a variant twice: {offered}")
    return Layout(arms, [index[offered[i - 1]] for i in ids], ids)


def _bad_layout(message: str) -> Layout:
    return Layout((), [], [], message)


def _ident(text: bytes) -> tuple[str | None, str | None]:
    """(experiment, policy version) from the fast path's identity group."""
    record = json.loads(b"{" + text + b"}")
    version = record["policy_version"]
    return record["experiment"], None if version is None else str(version)


def _slow_fields(text: bytes) -> _Fields:
    """Any line JSON can read, re-encoded as the fast path's fields; ``ValueError`` if bad."""
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError("not one of our DSJSON lines: not a JSON object")
    try:
        context = record.get("c") or {}
        multi = context["_multi"]
        experiment = record.get("experiment")
        version = record.get("policy_version")
        variants = record.get("variants")
        _check(isinstance(multi, list), "c._multi is not a list")
        _check(experiment is None or isinstance(experiment, str), "experiment is not a string")
        _check(version is None or (isinstance(version, str | int)
               and not isinstance(version, bool)), "policy_version is not a string")
        _check(variants is None or (isinstance(variants, list)
               and all(isinstance(v, str) for v in variants)), "variants is not a string list")
        order = record["a"]
        p = record["p"]
        _check(isinstance(order, list) and bool(order)
               and all(_is_int(i) for i in order), "'a' is not a list of action ids")
        _check(isinstance(p, list) and all(_is_number(x) for x in p),
               "'p' is not a list of numbers")
        cost, probability, action = (record["_label_cost"], record["_label_probability"],
                                     record["_label_Action"])
        _check(_is_number(cost) and _is_number(probability) and _is_int(action),
               "_label_cost, _label_probability and _label_Action must be numbers")
        stamp = _utc_iso(record["Timestamp"])
        event_id = record["EventId"]
        _check(isinstance(event_id, str), "EventId is not a string")
        targeted, default = record.get("targeted", False), record.get("default_reward", False)
        _check(isinstance(targeted, bool) and isinstance(default, bool),
               "targeted and default_reward must be true or false")
    except KeyError as exc:
        raise ValueError(f"not one of our DSJSON lines: no {exc} key") from None
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"not one of our DSJSON lines: {exc}") from None

    def dump(value: object) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    return (repr(float(cost)).encode(), repr(float(probability)).encode(), b"%d" % action,
            stamp.encode(), dump(event_id), b",".join(b"%d" % i for i in order), dump(multi),
            b",".join(repr(float(x)).encode() for x in p),
            b'"experiment":' + dump(experiment) + b',"policy_version":' + dump(version),
            dump(variants),
            b'"targeted":' + dump(targeted) + b',"default_reward":' + dump(default))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"not one of our DSJSON lines: {message}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _utc_iso(value: object) -> str:
    """A timestamp as the fast path's text: ISO 8601 in UTC, microseconds, no zone."""
    if not isinstance(value, str):
        raise ValueError(f"Timestamp {value!r} is not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"Timestamp {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds")


