"""An archive file's index: its lines as columns, written once, so reading needs no parsing.

    raw = build_index(data, name)      # the archiver, or `bandit-router archive-index`
    index = load_index(raw)            # InvalidIndexError if it is not a valid index
    index.matches(size, read_range)    # is it the index of these bytes?

The index of ``churn-20240501T120000-000001.json`` is the file (or S3 object) beside
it, ``churn-20240501T120000-000001.json.index``. It holds what the reader derives
from the file's lines before any filter, by the reader's own ``decode``: per good
row the columns of its chunks, its ``EventId`` and where its line is; the bad lines
with their messages; the small tables the rows index. Reading through it yields
exactly what parsing the file yields. A gzip file's index describes its decompressed
lines (offsets into them) and is checked against the stored, compressed bytes.

Validity: the index records the data file's stored size and the CRC-32 of its first
and last ``CHECK_BYTES`` bytes (two small reads, ranged GETs on S3); any difference
and the reader parses the file. Archive files are written once, whole, and never
edited, so this catches a file replaced, truncated or appended to, not an edit in the
middle that keeps the size and both ends.

Layout (version 1), little-endian:

- bytes 0-7: ``MAGIC``; 8-11: the format version (uint32); 12-15: the header's length
  in bytes; 16-19: CRC-32 of the header; 20-23: CRC-32 of the body;
- the header: UTF-8 JSON, padded with spaces to a multiple of 8 bytes: ``data``
  (``size``, ``head_crc32``, ``tail_crc32``, ``check_bytes``), ``lines`` (non-blank
  lines), ``rows`` (good rows), ``width`` (the widest variant list), ``experiments``,
  ``versions``, ``arm_lists`` (the tables, first seen first), ``bad_lines``
  (``[line, message]``, in line order), and ``columns``: per column its numpy
  ``dtype``, ``shape`` and ``offset`` in the body;
- the body: the columns' raw bytes, each at a multiple of 8. Per good row:
  ``experiment``, ``version``, ``arm_list`` (table ids), ``action`` (the chosen
  column), ``propensity``, ``reward``, ``timestamp`` (Unix seconds), ``flags`` (1:
  targeted, 2: default reward), ``event_id`` (the ``EventId``'s JSON text, quotes
  included), ``line`` (1-based), ``offset`` and ``length`` (the line's bytes, without
  its line break), ``logged`` and ``offered`` (rows × ``width``).
"""

from __future__ import annotations

import json
import mmap
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._archive_parse import Decoded, Tables, decode
from ._archive_sources import INDEX_SUFFIX, line_blocks

__all__ = ["CHECK_BYTES", "INDEX_SUFFIX", "VERSION", "FileIndex", "InvalidIndexError",
           "build_index", "load_index"]

MAGIC = b"BRIDX\r\n\x1a"
VERSION = 1
CHECK_BYTES = 64 << 10
"""How many bytes at each end of the data file the index's CRC-32s cover."""

_BUILD_BYTES = 256 << 10
"""Stored bytes parsed per step: short steps, so an event loop beside the thread that
builds an index keeps its turn (each step holds the GIL throughout its regex pass)."""
_PREFIX = struct.Struct("<8sIIII")
_ALIGN = 8
_ID_COLUMNS = ("experiment", "version", "arm_list")
_ROW_COLUMNS = (*_ID_COLUMNS, "action", "propensity", "reward", "timestamp", "flags",
                "event_id", "line", "offset", "length", "logged", "offered")
_KINDS = frozenset("biufS")  # numbers, booleans and byte strings: never objects


class InvalidIndexError(ValueError):
    """Bytes that are not a valid index of this version."""


@dataclass(frozen=True, slots=True)
class FileIndex:
    """A loaded index: the data file's fingerprint, counts, tables and row columns."""

    size: int
    head_crc32: int
    tail_crc32: int
    lines: int
    bad_lines: list[tuple[int, str]]
    experiments: list[str | None]
    versions: list[str | None]
    arm_lists: list[tuple[str, ...]]
    columns: dict[str, npt.NDArray[Any]]

    @property
    def rows(self) -> int:
        return int(self.columns["action"].size)

    def matches(self, size: int, read_range: Callable[[int, int], bytes]) -> bool:
        """Whether a data file of ``size`` stored bytes, read by ``read_range(start,
        size)``, is the one indexed (its size and the CRC-32s of both ends)."""
        if size != self.size:
            return False
        head, tail = _ends(size, read_range)
        return (zlib.crc32(head), zlib.crc32(tail)) == (self.head_crc32, self.tail_crc32)


def _ends(size: int, read_range: Callable[[int, int], bytes]) -> tuple[bytes, bytes]:
    span = min(size, CHECK_BYTES)
    return read_range(0, span), read_range(size - span, span)


def build_index(data: bytes, name: str = "") -> bytes:
    """The index of a data file's stored bytes (gzip when ``name`` ends in ``.gz`` or the
    bytes start with its magic); ``ArchiveError`` for gzip data that cannot be read."""
    tables = Tables()
    parts: list[tuple[Decoded, npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
    bad: list[tuple[int, str]] = []
    lines = first_line = offset = 0
    pieces = (data[at:at + _BUILD_BYTES] for at in range(0, len(data), _BUILD_BYTES))
    for block in line_blocks(pieces, name):
        newlines = block.count(b"\n")
        decoded = decode(tables, first_line, block, newlines, keep_text=False)
        ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
        starts = np.concatenate(([0], ends[:-1] + 1))
        at = decoded.numbers - first_line - 1
        parts.append((decoded, offset + starts[at], ends[at] - starts[at]))
        bad += decoded.bad
        lines += decoded.lines
        first_line += newlines
        offset += len(block)
    width = max((d.logged.shape[1] for d, _, _ in parts), default=0)
    done = [d for d, _, _ in parts]
    columns: dict[str, npt.NDArray[Any]] = {
        # Ids in the smallest unsigned type that holds them: the index stays small.
        "experiment": _ids(done, "experiment", len(tables.experiments.values)),
        "version": _ids(done, "version", len(tables.versions.values)),
        "arm_list": _ids(done, "arm_list", len(tables.arm_lists.values)),
        "action": _ids(done, "action", width),
        "propensity": _joined(np.zeros(0), [d.propensity for d in done]),
        "reward": _joined(np.zeros(0), [d.reward for d in done]),
        "timestamp": _joined(np.zeros(0), [d.timestamp for d in done]),
        "flags": _joined(np.zeros(0, np.uint8), [
            d.targeted.astype(np.uint8) | (d.default_reward.astype(np.uint8) << 1)
            for d in done]),
        "event_id": _joined(np.zeros(0, "S1"), [d.event_id for d in done]),
        "line": _counts(_joined(np.zeros(0, np.int64), [d.numbers for d in done])),
        "offset": _counts(_joined(np.zeros(0, np.int64), [o for _, o, _ in parts])),
        "length": _counts(_joined(np.zeros(0, np.int64), [n for _, _, n in parts])),
        "logged": _joined(np.zeros((0, width)), [_padded(d.logged, width) for d in done]),
        "offered": _joined(np.zeros((0, width), bool),
                           [_padded(d.offered, width) for d in done]),
    }
    head, tail = _ends(len(data), lambda start, size: data[start:start + size])
    header = {"data": {"size": len(data), "head_crc32": zlib.crc32(head),
                       "tail_crc32": zlib.crc32(tail), "check_bytes": CHECK_BYTES},
              "lines": lines, "rows": int(columns["action"].size), "width": width,
              "experiments": tables.experiments.values, "versions": tables.versions.values,
              "arm_lists": [list(arms) for arms in tables.arm_lists.values],
              "bad_lines": [[number, message] for number, message in bad]}
    return _encode(header, columns)


def _joined(empty: npt.NDArray[Any], arrays: list[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """The arrays end to end (``empty`` when there are none)."""
    return np.concatenate([empty, *arrays])


def _ids(decoded: list[Decoded], name: str, bound: int) -> npt.NDArray[Any]:
    """Non-negative ids below ``bound`` in the smallest unsigned type that holds them."""
    dtype = np.min_scalar_type(max(bound - 1, 0))
    return _joined(np.zeros(0, dtype), [getattr(d, name) for d in decoded]).astype(dtype)


def _counts(values: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """Non-negative integers in the smallest unsigned type that holds them."""
    return values.astype(np.min_scalar_type(int(values.max()) if values.size else 0))


def _padded(array: npt.NDArray[Any], width: int) -> npt.NDArray[Any]:
    if array.shape[1] == width:
        return array
    out = np.zeros((array.shape[0], width), dtype=array.dtype)
    out[:, :array.shape[1]] = array
    return out


def _encode(header: dict[str, Any], columns: dict[str, npt.NDArray[Any]]) -> bytes:
    body = bytearray()
    layout: dict[str, dict[str, Any]] = {}
    for name, array in columns.items():
        body += b"\0" * (-len(body) % _ALIGN)
        layout[name] = {"dtype": array.dtype.str, "shape": list(array.shape),
                        "offset": len(body)}
        body += np.ascontiguousarray(array).tobytes()
    text = json.dumps({**header, "columns": layout}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % _ALIGN)
    return (_PREFIX.pack(MAGIC, VERSION, len(text), zlib.crc32(text), zlib.crc32(body))
            + text + bytes(body))


def load_index(raw: bytes | mmap.mmap) -> FileIndex:
    """The index in ``raw``; ``InvalidIndexError`` when it is not a whole, valid index of this
    version (the columns are views of ``raw``: no copy)."""
    try:
        magic, version, length, header_crc, body_crc = _PREFIX.unpack_from(raw)
    except struct.error:
        raise InvalidIndexError("too short for an index") from None
    if magic != MAGIC:
        raise InvalidIndexError("not an archive index")
    if version != VERSION:
        raise InvalidIndexError(f"index version {version}, this reader reads {VERSION}")
    start = _PREFIX.size
    view = memoryview(raw)
    text = bytes(view[start:start + length])
    body = view[start + length:]
    if zlib.crc32(text) != header_crc or zlib.crc32(body) != body_crc:
        raise InvalidIndexError("the index is damaged (CRC-32 mismatch)")
    try:
        header = json.loads(text)
        data = header["data"]
        if data["check_bytes"] != CHECK_BYTES:
            raise InvalidIndexError(f"checked ends of {data['check_bytes']} bytes, not "
                                f"{CHECK_BYTES}")
        columns = {name: _column(body, header["columns"][name]) for name in _ROW_COLUMNS}
        index = FileIndex(
            size=int(data["size"]), head_crc32=int(data["head_crc32"]),
            tail_crc32=int(data["tail_crc32"]), lines=int(header["lines"]),
            bad_lines=[(int(n), str(m)) for n, m in header["bad_lines"]],
            experiments=[_optional(e) for e in header["experiments"]],
            versions=[_optional(v) for v in header["versions"]],
            arm_lists=[tuple(str(a) for a in arms) for arms in header["arm_lists"]],
            columns=columns)
        _check_shapes(index, int(header["rows"]), int(header["width"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InvalidIndexError):
            raise
        raise InvalidIndexError(f"not a valid index header: {exc!r}") from None
    return index


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


def _column(body: memoryview, spec: dict[str, Any]) -> npt.NDArray[Any]:
    dtype = np.dtype(spec["dtype"])
    if dtype.kind not in _KINDS or dtype.hasobject:
        raise InvalidIndexError(f"column dtype {dtype} is not allowed")
    shape = tuple(int(n) for n in spec["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    offset = int(spec["offset"])
    if offset < 0 or offset + count * dtype.itemsize > len(body):
        raise InvalidIndexError("a column lies outside the index")
    return np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape)


def _check_shapes(index: FileIndex, rows: int, width: int) -> None:
    """Every column one value per row (two: rows × width) and every id in its table."""
    for name, array in index.columns.items():
        expected = (rows, width) if name in ("logged", "offered") else (rows,)
        if array.shape != expected:
            raise InvalidIndexError(f"column {name} has shape {array.shape}, not {expected}")
    if not rows:
        return
    bounds = {"experiment": len(index.experiments), "version": len(index.versions),
              "arm_list": len(index.arm_lists), "action": width}
    for name, bound in bounds.items():
        if int(index.columns[name].max()) >= bound:
            raise InvalidIndexError(f"column {name} refers past its table")


def index_name(name: str) -> str:
    """The name (path or S3 key) of the index of the data file ``name``."""
    return name + INDEX_SUFFIX
