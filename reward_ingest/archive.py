"""The archiver: joined events as DSJSON files in a local directory or under ``s3://bucket/prefix``.

    archiver = Archiver("s3://logs/bandit", max_bytes=64 << 20, max_seconds=300)
    await archiver.add(joined_events)     # buffered; files written as limits are reached
    await archiver.flush_due()            # call now and then: closes files past max_seconds
    await archiver.close()                # writes the tail

Each experiment gets its own files (``by_experiment=False``: one stream, ``all``),
named ``<experiment>-<UTC yyyymmddTHHMMSS>-<seq>.json`` after the time the file's
first event arrived, so a name sort is a time sort. A file is closed when the next
line would take it past ``max_bytes`` (a single larger line gets a file of its own)
or when it is ``max_seconds`` old. Files appear whole: locally written under a
hidden temporary name in the same directory, fsynced, then linked to the final name
(never over an existing file: the sequence number moves on); on S3 one
``put_object`` per file with ``If-None-Match: *``. Blocking I/O runs in a thread.

Each file written gets its index beside it, ``<file>.index`` (``bandit.ope.build_index``:
the reader's columns, so replaying the file needs no JSON parsing), built in a thread
after the file is written and written the same way. The data file is the source of
truth: an index that cannot be built or written is logged and counted
(``index_errors``), never retried, and never holds back or fails a data file; readers
then parse that file. One index is made at a time; files waiting for theirs are kept
in memory up to ``max(2 × max_bytes, 64 MiB)``, and a file written while that is full
is left without one (counted the same way).

Failures: if a write fails the file stays queued and is retried by the next call.
``add`` first retries what is queued and, if that still fails, raises *without
taking the new events*, so the caller can offer them again later; once it has taken
them, a failed write is logged, counted and retried, never raised. ``flush`` and
``close`` raise while anything cannot be written. Events are acknowledged upstream
safely after a successful ``flush``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bandit.dsjson import to_dsjson
from bandit.ope import INDEX_SUFFIX, build_index

logger = logging.getLogger(__name__)

ALL = "all"
CONTENT_TYPE = "application/x-ndjson"
INDEX_CONTENT_TYPE = "application/octet-stream"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_NAME_ATTEMPTS = 1000
_RECENT_FILES = 1000
_INLINE_BATCH = 64
_INDEX_BACKLOG = 64 << 20

Clock = Callable[[], float]
S3ClientFactory = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    """Counters since start: what was written, what waits, what was refused; ``indexes``
    written beside the files, and ``index_errors``: files left without one."""

    files: int
    events: int
    bytes: int
    pending_events: int
    skipped: int
    write_errors: int
    indexes: int = 0
    index_errors: int = 0


@dataclass(slots=True)
class _Buffer:
    opened_at: float
    lines: list[bytes]
    size: int = 0


@dataclass(frozen=True, slots=True)
class _Sealed:
    stream: str
    opened_at: float
    data: bytes
    events: int


class _Sink(Protocol):
    def put(self, name: str, data: bytes, content_type: str = CONTENT_TYPE) -> bool:
        """Store ``data`` as ``name``; False when ``name`` exists already (nothing written)."""


class _LocalSink:
    """A directory; each file written under a temporary name, then linked into place."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def put(self, name: str, data: bytes, content_type: str = CONTENT_TYPE) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        if final.exists():
            return False
        # Hidden and not *.json, so readers globbing the archive never pick it up.
        temporary = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with temporary.open("xb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, final)  # atomic and never overwrites
            except FileExistsError:
                return False
            except OSError:
                # A file system without hard links: check, then rename.
                if final.exists():
                    return False
                os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_directory(self.directory)
        return True


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _S3Sink:
    """``s3://bucket/prefix``: one object per file, through a boto3 client made on first use."""

    def __init__(self, url: str, client_factory: S3ClientFactory | None) -> None:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"archive path must be s3://bucket/prefix, got {url!r}")
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._factory = client_factory or _default_s3_client
        self._client: Any = None
        self._conditional = True

    def put(self, name: str, data: bytes, content_type: str = CONTENT_TYPE) -> bool:
        from botocore.exceptions import ClientError

        if self._client is None:
            self._client = self._factory()
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + name,
                                   "Body": data, "ContentType": content_type}
        if self._conditional:
            request["IfNoneMatch"] = "*"
        try:
            self._client.put_object(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            if code == "NotImplemented" and self._conditional:
                # An S3 look-alike without conditional writes: plain puts from now on.
                logger.warning("archive: %s refuses If-None-Match; writing unconditionally",
                            self.bucket)
                self._conditional = False
                return self.put(name, data, content_type)
            raise
        return True


def _default_s3_client() -> Any:
    import boto3

    # boto3 itself honours AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the usual chain.
    return boto3.client("s3")


class Archiver:
    """Buffers joined events as DSJSON lines and writes them out as whole, rotated files."""

    def __init__(
        self,
        path: str,
        *,
        max_bytes: int = 64 << 20,
        max_seconds: float = 300.0,
        clock: Clock = time.time,
        s3_client: S3ClientFactory | None = None,
        by_experiment: bool = True,
        index: bool = True,
    ) -> None:
        if max_bytes <= 0 or max_seconds <= 0:
            raise ValueError("max_bytes and max_seconds must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._clock = clock
        self._by_experiment = by_experiment
        self._sink: _Sink = (_S3Sink(path, s3_client) if path.startswith("s3:")
                             else _LocalSink(path))
        self._buffers: dict[str, _Buffer] = {}
        self._pending: deque[_Sealed] = deque()
        self._lock = asyncio.Lock()
        self._seq = 0
        self._closed = False
        self._files = self._events = self._bytes = self._skipped = self._errors = 0
        self._index = index
        self._index_queue: deque[tuple[str, bytes]] = deque()
        self._index_backlog = 0
        self._index_worker: asyncio.Task[None] | None = None
        self._indexes = self._index_errors = 0
        # The latest files written (names, oldest first), for stats and tests.
        self.recent_files: deque[str] = deque(maxlen=_RECENT_FILES)

    @property
    def stats(self) -> ArchiveStats:
        waiting = sum(len(b.lines) for b in self._buffers.values())
        return ArchiveStats(files=self._files, events=self._events, bytes=self._bytes,
                            pending_events=waiting + sum(s.events for s in self._pending),
                            skipped=self._skipped, write_errors=self._errors,
                            indexes=self._indexes, index_errors=self._index_errors)

    async def add(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Take joined events; returns how many were taken (malformed ones are skipped).

        Raises (taking nothing) when files queued by an earlier failure still cannot be
        written; see the module docstring.
        """
        self._check_open()
        await self._write_pending()
        batch = list(events)
        # ~50 µs an event: a big batch is encoded in a thread so the loop stays responsive.
        encoded = (self._encode(batch) if len(batch) <= _INLINE_BATCH
                   else await asyncio.to_thread(self._encode, batch))
        self._check_open()  # close() may have run meanwhile: then nothing is taken
        for stream, line in encoded:
            self._append(stream, line)
        self._seal_due(self._clock())
        try:
            await self._write_pending()
        except Exception:  # kept queued; the next call retries
            logger.exception("archive: writing to %s failed; will retry", self.path)
        return len(encoded)

    def next_due(self) -> float | None:
        """Seconds until the oldest open file reaches ``max_seconds`` (None when none is open)."""
        if not self._buffers:
            return None
        oldest = min(b.opened_at for b in self._buffers.values())
        return max(0.0, oldest + self.max_seconds - self._clock())

    async def flush_due(self) -> None:
        """Close and write the files that have reached ``max_seconds``, and retry queued ones."""
        self._seal_due(self._clock())
        await self._write_pending()

    async def flush(self) -> None:
        """Close every open file and write everything; raises if something cannot be written."""
        for stream in list(self._buffers):
            self._seal(stream)
        await self._write_pending()

    async def close(self) -> None:
        """Refuse further events, then ``flush``, then wait for the indexes being made."""
        self._closed = True
        await self.flush()
        if self._index_worker is not None:
            await self._index_worker

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("archiver is closed")

    def _encode(self, events: list[Mapping[str, Any]]) -> list[tuple[str, bytes]]:
        encoded: list[tuple[str, bytes]] = []
        for event in events:
            try:
                encoded.append((self._stream(event), (to_dsjson(event) + "\n").encode()))
            except ValueError as exc:
                self._skipped += 1
                logger.warning("archive: skipped a malformed joined event: %s", exc)
        return encoded

    def _stream(self, event: Mapping[str, Any]) -> str:
        if not self._by_experiment:
            return ALL
        name = _UNSAFE_NAME.sub("_", str(event.get("experiment") or "")).lstrip(".")
        return name or "unknown"

    def _append(self, stream: str, line: bytes) -> None:
        buffer = self._buffers.get(stream)
        if buffer is not None and buffer.size + len(line) > self.max_bytes:
            self._seal(stream)
            buffer = None
        if buffer is None:
            buffer = self._buffers[stream] = _Buffer(self._clock(), [])
        buffer.lines.append(line)
        buffer.size += len(line)
        if buffer.size >= self.max_bytes:
            self._seal(stream)

    def _seal_due(self, now: float) -> None:
        for stream, buffer in list(self._buffers.items()):
            if now - buffer.opened_at >= self.max_seconds:
                self._seal(stream)

    def _seal(self, stream: str) -> None:
        buffer = self._buffers.pop(stream, None)
        if buffer is not None and buffer.lines:
            self._pending.append(_Sealed(stream, buffer.opened_at, b"".join(buffer.lines),
                                         len(buffer.lines)))

    async def _write_pending(self) -> None:
        async with self._lock:
            while self._pending:
                sealed = self._pending[0]
                try:
                    name = await self._put(sealed)
                except Exception:
                    self._errors += 1
                    raise
                self._pending.popleft()
                self.recent_files.append(name)
                self._files += 1
                self._events += sealed.events
                self._bytes += len(sealed.data)
                self._start_index(name, sealed.data)

    def _start_index(self, name: str, data: bytes) -> None:
        """Queue ``name``'s index for the background worker (see the module docstring)."""
        if not self._index:
            return
        if self._index_queue and (self._index_backlog + len(data)
                                  > max(2 * self.max_bytes, _INDEX_BACKLOG)):
            self._index_errors += 1
            logger.warning("archive: %s left without an index (%d files wait for theirs); "
                           "readers parse it", name, len(self._index_queue))
            return
        self._index_queue.append((name, data))
        self._index_backlog += len(data)
        if self._index_worker is None or self._index_worker.done():
            self._index_worker = asyncio.create_task(self._write_indexes())

    async def _write_indexes(self) -> None:
        while self._index_queue:
            name, data = self._index_queue.popleft()
            try:
                await asyncio.to_thread(self._put_index, name, data)
            except Exception:
                self._index_errors += 1
                logger.warning("archive: could not write the index of %s; readers parse it",
                               name, exc_info=True)
            else:
                self._indexes += 1
            finally:
                self._index_backlog -= len(data)

    def _put_index(self, name: str, data: bytes) -> None:
        index = build_index(data, name)
        if not self._sink.put(name + INDEX_SUFFIX, index, INDEX_CONTENT_TYPE):
            raise FileExistsError(f"{name}{INDEX_SUFFIX} exists already")

    async def _put(self, sealed: _Sealed) -> str:
        stamp = datetime.fromtimestamp(sealed.opened_at, UTC).strftime("%Y%m%dT%H%M%S")
        for _ in range(_MAX_NAME_ATTEMPTS):
            self._seq += 1
            name = f"{sealed.stream}-{stamp}-{self._seq:06d}.json"
            if await asyncio.to_thread(self._sink.put, name, sealed.data):
                return name
        raise RuntimeError(f"archive: no free file name for {sealed.stream}-{stamp}-*")
