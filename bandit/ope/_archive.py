"""The decision archive as ``LogChunk`` arrays: ``read_archive``.

    archive = read_archive("archive/", experiment="churn", since=t0)
    for chunk in archive:          # each pass re-reads the files
        ...
    archive.stats                  # what the latest pass read, skipped and excluded

Each line is one of ``bandit.dsjson``'s lines (its module docstring is the format).
Speed comes from reading a block of lines at a time: lines in the layout
``to_dsjson`` writes are split into their fields by one regular expression over
the whole block (no per-line JSON objects), the fields become arrays in numpy,
and what repeats from line to line (the action order ``a``, the offered actions
``c._multi``, the variant list, experiment and version) is decoded once and
cached. Other lines (other key orders, spacing, escapes) take the slow path,
``json.loads``, and are re-encoded into the same fields, so both paths share every
check. The fast path checks the layout of every field it uses; the feature object
``c.s`` is parsed only when contexts are asked for.

Checks: ``p`` a pmf over ``c._multi`` within 1e-6, ``_label_probability`` in
(0, 1] and equal to the chosen action's ``p`` within 1e-9, a finite reward, every
offered variant among the line's ``variants``. A line failing one is a bad line
(skipped and counted, or an ``ArchiveError`` with ``on_bad_line="fail"``).

Filters, each excluded event counted once under the first that applies, in this
order: ``other_experiment``, ``targeted`` (always: the caller chose, so the line
holds no exploration), ``before_since``, ``after_until`` (Unix seconds; ``until``
is exclusive), ``default_reward`` (with ``drop_default_rewards``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import compress
from typing import Any, Literal, cast

import numpy as np

from .._types import Arm, Context
from ..dsjson import _arm as _arm_name  # the one decoder of an action's name
from ..dsjson import from_dsjson
from ._archive_sources import ArchiveError, Source, resolve
from ._chunks import BoolArray, FloatArray, IntArray, LogChunk

__all__ = ["Archive", "ArchiveError", "BadLine", "ReadStats", "read_archive"]

PMF_TOLERANCE = 1e-6
PROPENSITY_TOLERANCE = 1e-9
BAD_EXAMPLES = 10
EXCLUSION_REASONS = ("targeted", "other_experiment", "before_since", "after_until",
                     "default_reward")

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
    rb'(?:\.[0-9]{1,6})?)Z","Version":' + _STR + rb',"EventId":' + _STR
    + rb',"a":\[(' + _INT + rb"(?:," + _INT + rb')*)\],"c":\{(?:"s":' + _FEATURES
    + rb',)?"_multi":(' + _ACTIONS + rb')\},"p":\[('
    + _NUM + rb"(?:," + _NUM + rb')*)\],("experiment":(?:' + _STR + rb'|null),'
    rb'"policy_version":(?:' + _STR + rb"|null|" + _INT + rb')),"variants":('
    + _STRINGS + rb'|null),("targeted":(?:true|false),"default_reward":(?:true|false))'
    rb'(?:,"dropped_features":' + _STRINGS + rb")?\}\r?$", re.MULTILINE)

# A line's fields as bytes, in the fast path's group order.
_Fields = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes]
_COST, _PROBABILITY, _ACTION_ID, _TIME, _ORDER, _MULTI, _P, _IDENT, _VARIANTS, _FLAGS = (
    range(10))
_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line the reader could not use: where it is (1-based line number) and why."""

    path: str
    line: int
    message: str


@dataclass(slots=True)
class ReadStats:
    """What one pass over the archive read, skipped and excluded; filled while iterating.

    ``events`` are the events yielded in chunks; ``excluded`` counts the events each
    filter removed (every key always present); ``default_rewards`` the kept events
    whose reward was the default; ``experiments`` every valid event per experiment,
    before filtering; ``bad_examples`` the first ``BAD_EXAMPLES`` bad lines.
    """

    files: int = 0
    lines: int = 0
    events: int = 0
    bad_lines: int = 0
    bad_examples: list[BadLine] = field(default_factory=list)
    excluded: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(EXCLUSION_REASONS, 0))
    default_rewards: int = 0
    experiments: dict[str | None, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Options:
    experiment: str | None
    since: float | None
    until: float | None
    drop_default_rewards: bool
    fail: bool
    contexts: bool
    lines: bool
    chunk_size: int


class Archive(Iterable[LogChunk]):
    """The archive's files, read as ``LogChunk`` arrays on each iteration.

    ``files`` are resolved when the archive is made, sorted by file name (a name
    sort is a time sort); ``total_bytes`` is their stored size, for progress
    bars; ``stats`` describes the latest (or current) pass.
    """

    def __init__(self, sources: list[Source], options: _Options,
                 progress: Callable[[int], None] | None) -> None:
        self._sources = sources
        self._options = options
        self._progress = progress
        self.files: tuple[str, ...] = tuple(s.name for s in sources)
        self.total_bytes: int = sum(s.size for s in sources)
        self.stats = ReadStats()

    def __iter__(self) -> Iterator[LogChunk]:
        stats = self.stats = ReadStats()
        reader = _Reader(self._options, stats)
        for source in self._sources:
            stats.files += 1
            line_number = 0
            for block in source.blocks(self._progress):
                newlines = block.count(b"\n")
                yield from reader.block(source.name, line_number, block, newlines)
                line_number += newlines
        yield from reader.finish()
        wanted = self._options.experiment
        if wanted is not None and wanted not in stats.experiments:
            found = ", ".join(_experiment_name(e) for e in stats.experiments)
            raise ArchiveError(f"experiment {wanted!r} is not in the archive; " + (
                f"it holds: {found}" if found else "it holds no readable decision"))


def read_archive(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    experiment: str | None = None,
    since: float | None = None,
    until: float | None = None,
    drop_default_rewards: bool = False,
    on_bad_line: Literal["skip", "fail"] = "skip",
    contexts: bool = False,
    lines: bool = False,
    chunk_size: int = 65_536,
    s3_client: Any | None = None,
    progress: Callable[[int], None] | None = None,
) -> Archive:
    """The archive at ``paths`` (files, directories, globs, ``s3://bucket/prefix``).

    Nothing is read until the archive is iterated; the files are listed now
    (``ArchiveError`` for a missing path, a directory without archive files or a
    bad S3 URL). Directories are searched recursively for ``*.json``, ``*.jsonl``
    and their ``.gz``; every key under an S3 prefix is read, through
    ``s3_client`` or ``boto3.client("s3")``. ``contexts``/``lines`` keep each
    event's context (as ``from_dsjson`` rebuilds it) or raw line in the chunks.
    ``progress`` is called with the stored bytes read since its previous call.
    See the module docstring for the checks and the filters.
    """
    if on_bad_line not in ("skip", "fail"):
        raise ArchiveError(f"on_bad_line must be 'skip' or 'fail', got {on_bad_line!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ArchiveError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and not math.isfinite(bound):
            raise ArchiveError(f"{name} must be finite Unix seconds, got {bound!r}")
    options = _Options(experiment, since, until, drop_default_rewards, on_bad_line == "fail",
                       contexts, lines, chunk_size)
    return Archive(resolve(paths, s3_client), options, progress)


def _experiment_name(experiment: str | None) -> str:
    return "(no experiment)" if experiment is None else experiment


@dataclass(frozen=True, slots=True)
class _Layout:
    """What an (``a``, ``c._multi``, ``variants``) triple means, decoded once.

    ``columns[j]`` is the variant column of ``p[j]``; ``ids[j]`` = ``a[j]``;
    ``arms`` the chunk's columns (``variants``, or the offered actions without them).
    """

    arms: tuple[Arm, ...]
    columns: IntArray
    ids: IntArray
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Ident:
    experiment: str | None
    version: str | None


class _Reader:
    """Turns blocks of lines into chunks; keeps the caches and the chunk being filled."""

    def __init__(self, options: _Options, stats: ReadStats) -> None:
        self.options = options
        self.stats = stats
        self.layouts: dict[tuple[bytes, bytes, bytes], _Layout] = {}
        self.idents: dict[bytes, _Ident] = {}
        self.flags: dict[bytes, tuple[bool, bool]] = {}
        self.versions: dict[str | None, int] = {}
        self.chunk = _ChunkBuilder(options.chunk_size, self.versions)

    def block(self, path: str, first_line: int, data: bytes,
              newlines: int) -> Iterator[LogChunk]:
        """The chunks completed by a block of whole lines (``newlines`` of them)."""
        rows = _LINE.findall(data)
        keep_text = self.options.contexts or self.options.lines
        texts: list[bytes] | None
        unread: list[tuple[int, str]] = []
        if len(rows) == newlines:
            numbers: list[int] = list(range(first_line + 1, first_line + len(rows) + 1))
            texts = data.split(b"\n")[:-1] if keep_text else None
        else:  # a line off the fast layout: line by line
            rows, numbers, texts, unread = self._line_by_line(first_line, data, keep_text)
        self.stats.lines += len(rows) + len(unread)
        yield from self._rows(path, rows, numbers, texts, unread)

    def finish(self) -> Iterator[LogChunk]:
        yield from self.chunk.flush(self.stats)

    @staticmethod
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

    def _bad(self, path: str, line: int, message: str) -> None:
        if self.options.fail:
            raise ArchiveError(f"{path}:{line}: {message}")
        self.stats.bad_lines += 1
        if len(self.stats.bad_examples) < BAD_EXAMPLES:
            self.stats.bad_examples.append(BadLine(path, line, message))

    def _rows(self, path: str, rows: list[_Fields], numbers: list[int],
              texts: list[bytes] | None, unread: list[tuple[int, str]]) -> Iterator[LogChunk]:
        if not rows:
            for number, message in unread:
                self._bad(path, number, message)
            return
        columns = list(zip(*rows, strict=True))
        layouts = self._layouts(columns)
        idents = self._lookup(self.idents, columns[_IDENT], _ident)
        flags = self._lookup(self.flags, columns[_FLAGS], _flags)
        parsed = _parse(columns, layouts)
        # Reported in line order, whichever check found them.
        for number, message in sorted(unread + [(numbers[r], m) for r, m in parsed.errors]):
            self._bad(path, number, message)
        if parsed.errors:
            good = parsed.good
            idents = list(compress(idents, good))
            flags = list(compress(flags, good))
            layouts = list(compress(layouts, good))
            if texts is not None:
                texts = list(compress(texts, good))
        if not layouts:
            return
        experiments = [i.experiment for i in idents]
        self._count_experiments(experiments)
        keep = self._filter(parsed, experiments, flags)
        defaults = np.fromiter((d for _, d in flags), dtype=bool, count=len(flags))
        version = np.fromiter((self._version_id(i.version) for i in idents), dtype=np.intp,
                              count=len(idents))
        kept = np.flatnonzero(keep)
        self.stats.default_rewards += int(defaults[kept].sum())
        arms = [layouts[i].arms for i in kept.tolist()]
        contexts: list[Context | None] | None = None
        lines: list[str] | None = None
        if texts is not None:
            kept_texts = [texts[i].decode() for i in kept.tolist()]
            lines = kept_texts if self.options.lines else None
            if self.options.contexts:
                contexts = [from_dsjson(t)["context"] for t in kept_texts]
        yield from self.chunk.add(self.stats, experiments=[experiments[i] for i in kept.tolist()],
                                  arms=arms, parsed=parsed, rows=kept,
                                  default_reward=defaults[kept], version=version[kept],
                                  contexts=contexts, lines=lines)

    def _layouts(self, columns: list[tuple[bytes, ...]]) -> list[_Layout]:
        cache = self.layouts
        keys = list(zip(columns[_ORDER], columns[_MULTI], columns[_VARIANTS], strict=True))
        for key in set(keys).difference(cache):
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[key] = _layout(*key)
        return list(map(cache.__getitem__, keys))

    @staticmethod
    def _lookup(cache: dict[bytes, Any], values: tuple[bytes, ...],
                decode: Callable[[bytes], Any]) -> list[Any]:
        for value in set(values).difference(cache):
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[value] = decode(value)
        return list(map(cache.__getitem__, values))

    def _version_id(self, version: str | None) -> int:
        found = self.versions.get(version)
        if found is None:
            found = self.versions[version] = len(self.versions)
        return found

    def _count_experiments(self, experiments: list[str | None]) -> None:
        seen = self.stats.experiments
        for name in dict.fromkeys(experiments):  # first seen first
            seen[name] = seen.get(name, 0) + experiments.count(name)
        if self.options.experiment is None and len(seen) > 1:
            found = ", ".join(_experiment_name(e) for e in seen)
            raise ArchiveError(f"the archive holds more than one experiment ({found}); "
                               "choose the one to evaluate")

    def _filter(self, parsed: _Parsed, experiments: list[str | None],
                flags: list[tuple[bool, bool]]) -> BoolArray:
        options = self.options
        excluded = self.stats.excluded
        keep = np.ones(len(experiments), dtype=bool)

        def drop(reason: str, mask: BoolArray) -> None:
            hit = keep & mask
            excluded[reason] += int(hit.sum())
            keep[hit] = False

        if options.experiment is not None:
            drop("other_experiment", np.fromiter((e != options.experiment for e in experiments),
                                                 dtype=bool, count=len(experiments)))
        drop("targeted", np.fromiter((t for t, _ in flags), dtype=bool, count=len(flags)))
        if options.since is not None:
            drop("before_since", parsed.timestamp < options.since)
        if options.until is not None:
            drop("after_until", parsed.timestamp >= options.until)
        if options.drop_default_rewards:
            drop("default_reward", np.fromiter((d for _, d in flags), dtype=bool,
                                               count=len(flags)))
        return keep


@dataclass(slots=True)
class _Parsed:
    """A block's numeric fields, good rows only, as arrays (``logged`` is rows × width)."""

    good: list[bool]
    errors: list[tuple[int, str]]
    reward: FloatArray
    propensity: FloatArray
    timestamp: FloatArray
    action: IntArray
    logged: FloatArray
    offered: BoolArray


def _parse(columns: list[tuple[bytes, ...]], layouts: list[_Layout]) -> _Parsed:
    """The numeric fields of a block in numpy, and the rows that fail a check."""
    n = len(layouts)
    errors: dict[int, str] = {}
    for row, layout in enumerate(layouts):
        if layout.error is not None:
            errors[row] = layout.error
    sizes = np.fromiter((lay.ids.size for lay in layouts), dtype=np.intp, count=n)
    # Counting commas is cheap and catches a p of the wrong length before the arrays
    # are laid out by it.
    counts = np.fromiter(map(bytes.count, columns[_P], [b","] * n), dtype=np.intp,
                         count=n) + 1
    for row in np.flatnonzero(counts != sizes).tolist():
        errors.setdefault(row, f"'p' has {counts[row]} values for the "
                               f"{sizes[row]} actions in 'a'")
    good = [row not in errors for row in range(n)] if errors else [True] * n
    if errors:
        columns = [tuple(compress(c, good)) for c in columns]
        layouts = list(compress(layouts, good))
        sizes = sizes[np.asarray(good)]
    rows = len(layouts)
    reward = -_floats(columns[_COST])
    propensity = _floats(columns[_PROBABILITY])
    action = np.asarray(columns[_ACTION_ID], dtype=np.bytes_).astype(np.intp) if rows else (
        np.zeros(0, dtype=np.intp))
    timestamp, bad_times = _timestamps(columns[_TIME])
    p = _floats(b",".join(columns[_P]).split(b",")) if rows else np.zeros(0)
    width = max((len(lay.arms) for lay in layouts), default=0)
    row_of = np.repeat(np.arange(rows), sizes)
    column_of = (np.concatenate([lay.columns for lay in layouts]) if rows
                 else np.zeros(0, dtype=np.intp))
    id_of = (np.concatenate([lay.ids for lay in layouts]) if rows
             else np.zeros(0, dtype=np.intp))
    logged = np.zeros((rows, width))
    logged[row_of, column_of] = p
    offered = np.zeros((rows, width), dtype=bool)
    offered[row_of, column_of] = True
    chosen = id_of == action[row_of]
    chosen_column = np.full(rows, -1, dtype=np.intp)
    chosen_column[row_of[chosen]] = column_of[chosen]
    chosen_p = np.full(rows, np.nan)
    chosen_p[row_of[chosen]] = p[chosen]
    starts = np.cumsum(sizes) - sizes
    totals = np.add.reduceat(p, starts) if rows else np.zeros(0)
    lowest = np.minimum.reduceat(p, starts) if rows else np.zeros(0)
    # The checks, in the order a message is chosen: the first failing check names the row.
    checks: list[tuple[BoolArray, Callable[[int], str]]] = [
        (bad_times, lambda r: f"Timestamp {columns[_TIME][r].decode()!r} is not an "
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
        (~np.isfinite(reward), lambda r: f"the reward (-_label_cost) {float(reward[r])!r} is not "
                                         "finite"),
    ]
    failing = np.zeros(rows, dtype=bool)
    block_rows = np.flatnonzero(np.asarray(good)) if errors else np.arange(n)
    for mask, message in checks:
        for r in np.flatnonzero(mask & ~failing).tolist():
            errors[int(block_rows[r])] = message(r)
        failing |= mask
    if failing.any():
        keep = ~failing
        fail_rows = set(block_rows[failing].tolist())
        good = [g and row not in fail_rows for row, g in enumerate(good)]
        reward, propensity, timestamp = reward[keep], propensity[keep], timestamp[keep]
        chosen_column, logged, offered = chosen_column[keep], logged[keep], offered[keep]
    return _Parsed(good, sorted(errors.items()), reward, propensity, timestamp,
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


def _layout(order: bytes, multi: bytes, variants: bytes) -> _Layout:
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
    columns = np.array([index[offered[i - 1]] for i in ids], dtype=np.intp)
    return _Layout(arms, columns, np.array(ids, dtype=np.intp))


def _bad_layout(message: str) -> _Layout:
    return _Layout((), np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), message)


def _ident(text: bytes) -> _Ident:
    record = json.loads(b"{" + text + b"}")
    version = record["policy_version"]
    return _Ident(record["experiment"], None if version is None else str(version))


def _flags(text: bytes) -> tuple[bool, bool]:
    return b'"targeted":true' in text, b'"default_reward":true' in text


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
            stamp.encode(), b",".join(b"%d" % i for i in order), dump(multi),
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


class _ChunkBuilder:
    """Collects kept rows into chunks of one experiment and variant list, ``size`` at most."""

    def __init__(self, size: int, versions: dict[str | None, int]) -> None:
        self.size = size
        self.versions = versions
        self.key: tuple[str | None, tuple[Arm, ...]] | None = None
        self.pieces: list[dict[str, Any]] = []
        self.count = 0

    def add(self, stats: ReadStats, *, experiments: list[str | None],
            arms: list[tuple[Arm, ...]], parsed: _Parsed, rows: IntArray,
            default_reward: BoolArray, version: IntArray,
            contexts: list[Context | None] | None,
            lines: list[str] | None) -> Iterator[LogChunk]:
        n = len(arms)
        start = 0
        while start < n:
            key = (experiments[start], arms[start])
            end = start + 1
            # Runs of one key: compare neighbours (tuples are shared through the cache,
            # so ``is`` answers nearly always).
            while end < n and (arms[end] is key[1] or arms[end] == key[1]) and (
                    experiments[end] == key[0]):
                end += 1
            if key != self.key:
                yield from self.flush(stats)
                self.key = key
            while start < end:
                take = min(end - start, self.size - self.count)
                picked = rows[start:start + take]
                width = len(key[1])
                self.pieces.append({
                    "action": parsed.action[picked], "propensity": parsed.propensity[picked],
                    "logged": parsed.logged[picked, :width],
                    "offered": parsed.offered[picked, :width],
                    "reward": parsed.reward[picked], "timestamp": parsed.timestamp[picked],
                    "default_reward": default_reward[start:start + take],
                    "version": version[start:start + take],
                    "contexts": contexts[start:start + take] if contexts is not None else None,
                    "lines": lines[start:start + take] if lines is not None else None,
                })
                self.count += take
                start += take
                if self.count >= self.size:
                    yield from self.flush(stats)
                    self.key = key

    def flush(self, stats: ReadStats) -> Iterator[LogChunk]:
        if not self.pieces or self.key is None:
            return
        pieces, self.pieces, self.count = self.pieces, [], 0
        experiment, arms = self.key

        def joined(name: str) -> Any:
            return np.concatenate([piece[name] for piece in pieces])

        names = {index: name for name, index in self.versions.items()}
        used, version = np.unique(joined("version"), return_inverse=True)
        chunk = LogChunk(
            experiment=experiment, arms=arms, action=joined("action"),
            propensity=joined("propensity"), logged=joined("logged"), offered=joined("offered"),
            reward=joined("reward"), timestamp=joined("timestamp"),
            default_reward=joined("default_reward"), version=version.astype(np.intp),
            versions=tuple(names[int(u)] for u in used),
            contexts=(None if pieces[0]["contexts"] is None
                      else [c for piece in pieces for c in piece["contexts"]]),
            lines=(None if pieces[0]["lines"] is None
                   else [t for piece in pieces for t in piece["lines"]]))
        stats.events += len(chunk)
        yield chunk
