"""The decision archive as ``LogChunk`` arrays: ``read_archive``.

    archive = read_archive("archive/", experiment="churn", since=t0)
    for chunk in archive:          # each pass re-reads the files
        ...
    archive.stats                  # what the latest pass read, skipped and excluded

Each line is one of ``bandit.dsjson``'s lines (its module docstring is the format).
A file with a valid index beside it (``_index``: written by the archiver, or by
``bandit-router archive-index`` for older files) is read through the index: its
rows are already columns, so the reader only maps, filters and slices arrays. Any
other file is parsed a block of lines at a time (``_archive_parse``: one regular
expression over the block, numpy, and ``json.loads`` for lines off the archiver's
layout). Both give exactly the same chunks and counters; ``use_index=False``
parses every file. With ``on_bad_line="fail"`` a file with bad lines is parsed (so
the error comes where parsing finds it), and so is a file that would make an
archive read without ``experiment`` hold two experiments (the error comes at the
same line).

Checks (``_archive_parse``): ``p`` a pmf over ``c._multi`` within 1e-6,
``_label_probability`` in (0, 1] and equal to the chosen action's ``p`` within 1e-9,
a finite reward, every offered variant among the line's ``variants``. A line failing
one is a bad line (skipped and counted, or an ``ArchiveError`` with
``on_bad_line="fail"``).

Filters, each excluded event counted once under the first that applies, in this
order: ``duplicate`` (an ``EventId`` read among the ``RECENT_IDS`` valid lines
before it: the archiver writes at least once, and after an ingester restart it may
write again what the previous process had written, at most one file's worth, which
with the default 64 MiB files is ≈ 150,000 lines), ``other_experiment``,
``targeted`` (always: the caller chose, so the line holds no exploration),
``before_since``, ``after_until`` (Unix seconds; ``until`` is exclusive),
``default_reward`` (with ``drop_default_rewards``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .._types import Context
from ..dsjson import from_dsjson
from ._archive_parse import Tables, decode
from ._archive_sources import ArchiveError, Source, resolve
from ._chunks import BoolArray, FloatArray, IntArray, LogChunk
from ._index import FileIndex, InvalidIndexError, load_index

__all__ = ["Archive", "ArchiveError", "BadLine", "ReadStats", "read_archive"]

BAD_EXAMPLES = 10
EXCLUSION_REASONS = ("duplicate", "targeted", "other_experiment", "before_since",
                     "after_until", "default_reward")
RECENT_IDS = 1 << 18
"""How many valid lines before a line the duplicate filter looks back over."""
TEXT_ROWS = 1 << 16
"""Rows of an indexed file turned into lines or contexts at a time (memory stays flat)."""

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
    before filtering, first counted first; ``bad_examples`` the first ``BAD_EXAMPLES``
    bad lines; ``indexed_files`` the files read through their index,
    ``unindexed_files`` those parsed (no index, or one that does not match the file).
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
    indexed_files: int = 0
    unindexed_files: int = 0


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
    use_index: bool


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
            index = _valid_index(source) if self._options.use_index else None
            if index is not None and reader.takes(index):
                stats.indexed_files += 1
                yield from reader.indexed(source, index, self._progress)
            else:
                stats.unindexed_files += 1
                yield from reader.parsed(source, self._progress)
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
    use_index: bool = True,
    s3_client: Any | None = None,
    progress: Callable[[int], None] | None = None,
) -> Archive:
    """The archive at ``paths`` (files, directories, globs, ``s3://bucket/prefix``).

    Nothing is read until the archive is iterated; the files are listed now
    (``ArchiveError`` for a missing path, a directory without archive files or a
    bad S3 URL). Directories are searched recursively for ``*.json``, ``*.jsonl``
    and their ``.gz``; every key under an S3 prefix but indexes is read, through
    ``s3_client`` or ``boto3.client("s3")``. ``contexts``/``lines`` keep each
    event's context (as ``from_dsjson`` rebuilds it) or raw line in the chunks.
    ``use_index=False`` parses every file, ignoring their indexes.
    ``progress`` is called with the stored bytes read since its previous call.
    See the module docstring for the checks and the filters.
    """
    if on_bad_line not in ("skip", "fail"):
        raise ArchiveError(f"on_bad_line must be 'skip' or 'fail', got {on_bad_line!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ArchiveError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    for name, bound in (("since", since), ("until", until)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)
                                  or not math.isfinite(bound)):
            raise ArchiveError(f"{name} must be finite Unix seconds, got {bound!r}")
    options = _Options(experiment, since, until, drop_default_rewards, on_bad_line == "fail",
                       contexts, lines, chunk_size, use_index)
    return Archive(resolve(paths, s3_client), options, progress)


def _experiment_name(experiment: str | None) -> str:
    return "(no experiment)" if experiment is None else experiment


def _valid_index(source: Source) -> FileIndex | None:
    """The source's index when it has one that matches its bytes; None otherwise (parse)."""
    try:
        raw = source.index()
        if raw is None:
            return None
        index = load_index(raw)
        return index if index.matches(source.size, source.read_range) else None
    except (InvalidIndexError, ArchiveError, OSError):
        # A missing, damaged or stale index costs speed, never the read: the data file
        # is the source of truth, and parsing it reports its own errors.
        return None


_P1 = np.uint64(0x100000001B3)
_OFFSET = np.uint64(0xCBF29CE484222325)


def _id_hashes(ids: npt.NDArray[np.bytes_]) -> npt.NDArray[np.uint64]:
    """64-bit hashes of byte strings, whatever the array's width (all-zero words are
    skipped, so padding changes nothing). Only a fast pre-filter: equal ids always have
    equal hashes; equal hashes are compared byte for byte."""
    width = -(-ids.dtype.itemsize // 8) * 8
    words = ids.astype(f"S{width}").view("<u8").reshape(ids.size, width // 8)
    out = np.full(ids.size, _OFFSET, dtype=np.uint64)
    for column in words.T:
        out = np.where(column != 0, (out ^ column) * _P1, out)
    return out


class _RecentIds:
    """Which ids occurred among the ``size`` ids before them, exactly, in flat memory.

    Each id gets a position (how many ids came before it). The hashes of the last ids
    are kept sorted by (hash, position), and the ids themselves in a ring indexed by
    position, so a batch is checked with one sort of its own hashes and one binary
    search; hashes find candidates, bytes decide. The answer is the same however the
    ids are cut into batches.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._next = 0
        self._hash = np.zeros(0, dtype=np.uint64)
        self._position = np.zeros(0, dtype=np.int64)
        self._ring: npt.NDArray[np.bytes_] = np.zeros(0, dtype="S1")  # sized on first use

    def repeated(self, ids: npt.NDArray[np.bytes_]) -> BoolArray:
        """Which of ``ids`` (in order) occurred among the ``size`` ids before each.

        Remembers them."""
        m = ids.size
        start = self._next
        if not m:
            return np.zeros(0, dtype=bool)
        hashes = _id_hashes(ids)
        order = np.argsort(hashes, kind="stable")  # equal hashes stay in position order
        h = hashes[order]
        sorted_ids = ids[order]
        position = order.astype(np.int64) + start
        latest = np.full(m, -1, dtype=np.int64)  # the latest earlier position of each id
        slow: list[int] = []
        # Within the batch: the row before, in an equal-hash run.
        after = np.flatnonzero(h[1:] == h[:-1]) + 1
        if after.size:
            same = sorted_ids[after] == sorted_ids[after - 1]
            latest[after[same]] = position[after[same] - 1]
            slow += after[~same].tolist()
        # Before the batch, for the first of each run: the latest id of an equal hash.
        if self._hash.size:
            rows = np.ones(m, dtype=bool)
            rows[after] = False
            rows = np.flatnonzero(rows)
            at = np.searchsorted(self._hash, h[rows], side="right") - 1
            hit = at >= 0
            hit[hit] = self._hash[at[hit]] == h[rows[hit]]
            rows, at = rows[hit], at[hit]
            earlier = self._position[at]
            near = position[rows] - earlier <= self._size  # the rest are too old anyway
            rows, earlier = rows[near], earlier[near]
            same = self._ring[earlier % self._size] == sorted_ids[rows]
            latest[rows[same]] = earlier[same]
            slow += rows[~same].tolist()
        for row in slow:  # a hash shared by different ids: one by one
            latest[row] = self._latest(h, sorted_ids, position, row)
        seen = (latest >= 0) & (position - latest <= self._size)
        repeated = np.empty(m, dtype=bool)
        repeated[order] = seen
        self._remember(h, position, ids)
        return repeated

    def _latest(self, h: npt.NDArray[np.uint64], ids: npt.NDArray[np.bytes_],
                position: npt.NDArray[np.int64], row: int) -> int:
        """The latest earlier position of the id at sorted ``row``, or -1: byte by byte."""
        target = ids[row]
        for earlier in range(row - 1, int(np.searchsorted(h, h[row])) - 1, -1):
            if ids[earlier] == target:
                return int(position[earlier])
        low = int(np.searchsorted(self._hash, h[row], side="left"))
        high = int(np.searchsorted(self._hash, h[row], side="right"))
        for kept in range(high - 1, low - 1, -1):
            earlier = int(self._position[kept])
            if position[row] - earlier > self._size:
                break  # older ones are further still
            if self._ring[earlier % self._size] == target:
                return earlier
        return -1

    def _remember(self, h: npt.NDArray[np.uint64], position: npt.NDArray[np.int64],
                  ids: npt.NDArray[np.bytes_]) -> None:
        """Add the batch (``h``, ``position`` sorted by hash; ``ids`` in order)."""
        self._next += ids.size
        ring = self._ring
        if not ring.size:
            ring = self._ring = np.zeros(self._size, dtype=ids.dtype)
        elif ids.dtype.itemsize > ring.dtype.itemsize:  # wider ids than so far
            ring = self._ring = ring.astype(ids.dtype)
        tail = ids[-self._size:]
        slots = np.arange(self._next - tail.size, self._next) % self._size
        ring[slots] = tail
        # Forget hashes too old to matter only now and then: a stale entry is never
        # taken for a repeat (the distance is checked), it only takes room.
        if self._hash.size + h.size > 2 * self._size:
            fresh = self._position >= self._next - self._size
            self._hash, self._position = self._hash[fresh], self._position[fresh]
            recent = position >= self._next - self._size
            h, position = h[recent], position[recent]
        # Two sorted runs: the stable sort merges them, and keeps equal hashes in order.
        merged = np.argsort(np.concatenate([self._hash, h]), kind="stable")
        self._hash = np.concatenate([self._hash, h])[merged]
        self._position = np.concatenate([self._position, position])[merged]


@dataclass(frozen=True, slots=True)
class _Batch:
    """Valid rows in file order, before the filters; ids index the reader's tables.

    ``texts(kept)`` gives the lines of the rows at the indices ``kept`` (None: not asked for).
    """

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
    texts: Callable[[IntArray], list[bytes]] | None


class _Reader:
    """Turns files into chunks; keeps the decoded tables and the chunk being filled."""

    def __init__(self, options: _Options, stats: ReadStats) -> None:
        self.options = options
        self.stats = stats
        self.tables = Tables()
        self.wanted = (-1 if options.experiment is None
                       else self.tables.experiments(options.experiment))
        self.chunk = _ChunkBuilder(options.chunk_size, self.tables)
        self.recent = _RecentIds(RECENT_IDS)
        self.keep_text = options.contexts or options.lines

    def parsed(self, source: Source, progress: Callable[[int], None] | None
               ) -> Iterator[LogChunk]:
        """The chunks completed by parsing ``source``, a block of lines at a time."""
        first_line = 0
        for block in source.blocks(progress):
            newlines = block.count(b"\n")
            decoded = decode(self.tables, first_line, block, newlines, self.keep_text)
            first_line += newlines
            self.stats.lines += decoded.lines
            for number, message in decoded.bad:
                self._bad(source.name, number, message)
            texts = decoded.texts
            yield from self._select(_Batch(
                decoded.experiment, decoded.version, decoded.arm_list, decoded.action,
                decoded.propensity, decoded.logged, decoded.offered, decoded.reward,
                decoded.timestamp, decoded.targeted, decoded.default_reward, decoded.event_id,
                None if texts is None else _picker(texts)))

    def takes(self, index: FileIndex) -> bool:
        """Whether reading through ``index`` gives what parsing would, errors included."""
        if self.options.fail and index.bad_lines:
            return False  # parsing stops at the first bad line, after the lines before it
        if self.options.experiment is None:
            used = np.flatnonzero(np.bincount(index.columns["experiment"]))
            names = {index.experiments[i] for i in used.tolist()} | set(self.stats.experiments)
            return len(names) <= 1  # else parsing raises, at the line it does
        return True

    def indexed(self, source: Source, index: FileIndex,
                progress: Callable[[int], None] | None) -> Iterator[LogChunk]:
        """The chunks completed by ``source``'s rows, from its index."""
        tables = self.tables
        columns = index.columns
        maps = [np.array([ids(value) for value in values], dtype=np.intp).reshape(-1)
                for ids, values in ((tables.experiments, index.experiments),
                                    (tables.versions, index.versions),
                                    (tables.arm_lists, index.arm_lists))]
        self.stats.lines += index.lines
        for number, message in index.bad_lines:
            self._bad(source.name, number, message)
        flags = columns["flags"]
        blocks = source.blocks(progress) if self.keep_text else None
        step = TEXT_ROWS if self.keep_text else max(index.rows, 1)
        lines = _Lines(blocks)
        for start in range(0, index.rows, step):
            rows = slice(start, start + step)
            offset, length = columns["offset"][rows], columns["length"][rows]
            yield from self._select(_Batch(
                maps[0][columns["experiment"][rows]], maps[1][columns["version"][rows]],
                maps[2][columns["arm_list"][rows]], columns["action"][rows].astype(np.intp),
                columns["propensity"][rows], columns["logged"][rows], columns["offered"][rows],
                columns["reward"][rows], columns["timestamp"][rows],
                (flags[rows] & 1).astype(bool), (flags[rows] & 2).astype(bool),
                columns["event_id"][rows],
                None if blocks is None else lines.picker(offset, length)))
        if blocks is not None:
            lines.finish()  # the rest of the file, for the progress count
        elif progress is not None:
            progress(source.size)

    def finish(self) -> Iterator[LogChunk]:
        yield from self.chunk.flush(self.stats)

    def _bad(self, path: str, line: int, message: str) -> None:
        if self.options.fail:
            raise ArchiveError(f"{path}:{line}: {message}")
        self.stats.bad_lines += 1
        if len(self.stats.bad_examples) < BAD_EXAMPLES:
            self.stats.bad_examples.append(BadLine(path, line, message))

    def _select(self, batch: _Batch) -> Iterator[LogChunk]:
        """The filters over a batch of valid rows, then its kept rows into chunks."""
        if not batch.experiment.size:
            return
        repeated = self.recent.repeated(batch.event_id)
        self._count_experiments(batch.experiment[~repeated])
        keep = self._filter(repeated, batch.experiment, batch.targeted,
                            batch.default_reward, batch.timestamp)
        self.stats.default_rewards += int(batch.default_reward[keep].sum())
        kept = np.flatnonzero(keep)
        contexts: list[Context | None] | None = None
        lines: list[str] | None = None
        if batch.texts is not None:
            kept_texts = [text.decode() for text in batch.texts(kept)]
            lines = kept_texts if self.options.lines else None
            if self.options.contexts:
                contexts = [from_dsjson(t)["context"] for t in kept_texts]
        yield from self.chunk.add(self.stats, _Rows(
            experiment=batch.experiment[kept], arm_list=batch.arm_list[kept],
            action=batch.action[kept], propensity=batch.propensity[kept],
            logged=batch.logged[kept], offered=batch.offered[kept],
            reward=batch.reward[kept], timestamp=batch.timestamp[kept],
            default_reward=batch.default_reward[kept], version=batch.version[kept],
            contexts=contexts, lines=lines))

    def _count_experiments(self, experiment: IntArray) -> None:
        seen = self.stats.experiments
        names = self.tables.experiments.values
        counts = np.bincount(experiment)
        present = np.flatnonzero(counts)
        if present.size > 1:  # first counted first, whatever the blocks: by their first row
            firsts = [int(np.argmax(experiment == e)) for e in present.tolist()]
            present = present[np.argsort(firsts)]
        for index in present.tolist():
            seen[names[index]] = seen.get(names[index], 0) + int(counts[index])
        if self.options.experiment is None and len(seen) > 1:
            found = ", ".join(_experiment_name(e) for e in seen)
            raise ArchiveError(f"the archive holds more than one experiment ({found}); "
                               "choose the one to evaluate")

    def _filter(self, repeated: BoolArray, experiment: IntArray, targeted: BoolArray,
                default: BoolArray, timestamp: FloatArray) -> BoolArray:
        options = self.options
        excluded = self.stats.excluded
        keep = np.ones(experiment.size, dtype=bool)

        def drop(reason: str, mask: BoolArray) -> None:
            hit = keep & mask
            excluded[reason] += int(hit.sum())
            keep[hit] = False

        drop("duplicate", repeated)
        if options.experiment is not None:
            drop("other_experiment", experiment != self.wanted)
        drop("targeted", targeted)
        if options.since is not None:
            drop("before_since", timestamp < options.since)
        if options.until is not None:
            drop("after_until", timestamp >= options.until)
        if options.drop_default_rewards:
            drop("default_reward", default)
        return keep


def _picker(texts: list[bytes]) -> Callable[[IntArray], list[bytes]]:
    def pick(kept: IntArray) -> list[bytes]:
        return [texts[i] for i in kept.tolist()]

    return pick


class _Lines:
    """Lines of a file by (decompressed) byte offset, read forward from its blocks."""

    def __init__(self, blocks: Iterator[bytes] | None) -> None:
        self._blocks = blocks
        self._start = 0       # the offset of _data[0]
        self._data = b""

    def take(self, offsets: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
             ) -> list[bytes]:
        """The lines at ``offsets`` (increasing, past every earlier call's) of ``lengths``."""
        if not offsets.size or self._blocks is None:
            return []
        first, end = int(offsets[0]), int(offsets[-1]) + int(lengths[-1])
        more: list[bytes] = []
        have = self._start + len(self._data)
        while have < end:
            block = next(self._blocks)
            more.append(block)
            have += len(block)
        # From the first line asked for: the lines before it are never asked for again.
        pieces = [self._data, *more]
        cut = first - self._start
        while cut >= len(pieces[0]) and len(pieces) > 1:
            cut -= len(pieces.pop(0))
        self._data = b"".join([memoryview(pieces[0])[cut:], *pieces[1:]])
        self._start = first
        data = self._data
        return [data[o:o + n] for o, n in zip((offsets - first).tolist(), lengths.tolist(),
                                               strict=True)]

    def picker(self, offsets: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
               ) -> Callable[[IntArray], list[bytes]]:
        """``take`` of the rows at the given indices of ``offsets``/``lengths``."""
        def pick(kept: IntArray) -> list[bytes]:
            return self.take(offsets[kept], lengths[kept])

        return pick

    def finish(self) -> None:
        if self._blocks is not None:
            for _ in self._blocks:
                pass
        self._data = b""


@dataclass(frozen=True, slots=True)
class _Rows:
    """Kept rows of a block, ready for chunks; ``experiment``/``arm_list``/``version`` are ids."""

    experiment: IntArray
    arm_list: IntArray
    action: IntArray
    propensity: FloatArray
    logged: FloatArray
    offered: BoolArray
    reward: FloatArray
    timestamp: FloatArray
    default_reward: BoolArray
    version: IntArray
    contexts: list[Context | None] | None
    lines: list[str] | None


class _ChunkBuilder:
    """Collects kept rows into chunks of one experiment and variant list, ``size`` at most."""

    def __init__(self, size: int, tables: Tables) -> None:
        self.size = size
        self.tables = tables
        self.key: tuple[int, int] | None = None
        self.pieces: list[dict[str, Any]] = []
        self.count = 0

    def add(self, stats: ReadStats, rows: _Rows) -> Iterator[LogChunk]:
        n = rows.experiment.size
        if not n:
            return
        # Where (experiment, variant list) changes: each run goes to one chunk key.
        changes = np.flatnonzero((rows.experiment[1:] != rows.experiment[:-1])
                                 | (rows.arm_list[1:] != rows.arm_list[:-1])) + 1
        bounds = [0, *changes.tolist(), n]
        for start, end in pairwise(bounds):
            key = (int(rows.experiment[start]), int(rows.arm_list[start]))
            if key != self.key:
                yield from self.flush(stats)
                self.key = key
            width = len(self.tables.arm_lists.values[key[1]])
            while start < end:
                take = min(end - start, self.size - self.count)
                span = slice(start, start + take)
                self.pieces.append({
                    "action": rows.action[span], "propensity": rows.propensity[span],
                    "logged": rows.logged[span, :width], "offered": rows.offered[span, :width],
                    "reward": rows.reward[span], "timestamp": rows.timestamp[span],
                    "default_reward": rows.default_reward[span], "version": rows.version[span],
                    "contexts": rows.contexts[span] if rows.contexts is not None else None,
                    "lines": rows.lines[span] if rows.lines is not None else None,
                })
                self.count += take
                start += take
                if self.count >= self.size:
                    yield from self.flush(stats)

    def flush(self, stats: ReadStats) -> Iterator[LogChunk]:
        if not self.pieces or self.key is None:
            return
        pieces, self.pieces, self.count = self.pieces, [], 0
        experiment, arm_list = self.key

        def joined(name: str) -> Any:
            return np.concatenate([piece[name] for piece in pieces])

        used, version = np.unique(joined("version"), return_inverse=True)
        names = self.tables.versions.values
        chunk = LogChunk(
            experiment=self.tables.experiments.values[experiment],
            arms=self.tables.arm_lists.values[arm_list], action=joined("action"),
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
