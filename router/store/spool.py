"""A bounded, append-only JSON-lines spool file: where decision events wait out an outage.

Two files hold the spool: ``PATH`` takes appends; ``PATH.replaying`` holds the part
being replayed. ``take()`` renames ``PATH`` to ``PATH.replaying`` (unless one is
left from before: a crash or a failed replay) and returns its lines, so appends go
on to a fresh ``PATH`` while the replay runs; ``drop_taken()`` deletes the replayed
file (the truncation, done with one atomic unlink once the replay succeeded). A
crash anywhere leaves every acknowledged line in one of the two files, and the
replay's dedupe makes replaying a line twice harmless.

Each ``append`` writes its whole batch, flushes and fsyncs before returning, so an
acknowledged event survives a process or machine crash. A torn last line (the
process died mid-write, before the acknowledgement) is cut off on ``open``.
``PATH.lock`` holds an exclusive ``flock`` while the spool is open: two processes
sharing one spool would interleave and replay each other's events.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from router.store.base import event_id_of

logger = logging.getLogger(__name__)


class Spool:
    """The spool at ``path``, holding at most ``max_bytes`` bytes over both files."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.replaying_path = self.path.with_name(self.path.name + ".replaying")
        self.max_bytes = max_bytes
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None
        self._active: BinaryIO | None = None
        self._sizes = {self.path: 0, self.replaying_path: 0}
        self._counts = {self.path: 0, self.replaying_path: 0}

    @property
    def pending(self) -> int:
        """Events in the spool (both files)."""
        return sum(self._counts.values())

    @property
    def size(self) -> int:
        """Bytes in the spool (both files), counted against ``max_bytes``."""
        return sum(self._sizes.values())

    def open(self) -> None:
        """Lock the spool, repair torn tails, and count what a previous run left."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"spool {self.path} is in use by another process or store "
                               "(each router process needs its own spool path)") from None
        self._lock_fd = fd
        for path in (self.path, self.replaying_path):
            self._sizes[path], self._counts[path] = _repair(path)
        self._open_active()

    def close(self) -> None:
        """Close the files and release the lock; the spooled lines stay for the next run."""
        if self._active is not None:
            self._active.close()
            self._active = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def append(self, lines: Sequence[str]) -> int:
        """Append the longest prefix of ``lines`` that fits; durable on return.

        Returns how many lines were appended (fewer than given: the spool is full).
        """
        active = self._require_open()
        room = self.max_bytes - self.size
        chunks: list[bytes] = []
        for line in lines:
            data = line.encode() + b"\n"
            if len(data) > room:
                break
            chunks.append(data)
            room -= len(data)
        if not chunks:
            return 0
        payload = b"".join(chunks)
        before = self._sizes[self.path]
        try:
            active.write(payload)
            active.flush()
            os.fsync(active.fileno())
        except OSError:
            # Not acknowledged, so it must not be replayed: cut it off again.
            active.truncate(before)
            raise
        self._sizes[self.path] += len(payload)
        self._counts[self.path] += len(chunks)
        return len(chunks)

    def take(self) -> list[str]:
        """The lines to replay next, oldest first: ``PATH.replaying``'s, made if need be."""
        active = self._require_open()
        if self._counts[self.replaying_path] == 0 and self._counts[self.path] > 0:
            active.close()
            self._active = None
            os.replace(self.path, self.replaying_path)
            self._sizes[self.replaying_path] = self._sizes[self.path]
            self._counts[self.replaying_path] = self._counts[self.path]
            self._sizes[self.path] = self._counts[self.path] = 0
            self._open_active()  # fsyncs the directory: the rename is durable too
        if self._counts[self.replaying_path] == 0:
            return []
        return self.replaying_path.read_text().splitlines()

    def drop_taken(self) -> None:
        """Forget the lines ``take()`` returned: they are all on the stream now."""
        self._require_open()
        if self.replaying_path.exists():
            self.replaying_path.unlink()
            _fsync_dir(self.path.parent)
        self._sizes[self.replaying_path] = self._counts[self.replaying_path] = 0

    def _open_active(self) -> None:
        self._active = open(self.path, "ab")  # noqa: SIM115 - held open across appends
        _fsync_dir(self.path.parent)

    def _require_open(self) -> BinaryIO:
        if self._active is None:
            raise RuntimeError(f"spool {self.path} is not open")
        return self._active


def _repair(path: Path) -> tuple[int, int]:
    """Cut a torn last line off ``path``; its (size, line count) after that."""
    if not path.exists():
        return 0, 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as file:
            file.truncate(end)
            file.flush()
            os.fsync(file.fileno())
    return end, data.count(b"\n", 0, end)


def _fsync_dir(directory: Path) -> None:
    """Make a create, rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_spooled(lines: Sequence[str]) -> tuple[list[str], list[str]]:
    """The (event ids, lines) of spooled events; a line we cannot read is logged, skipped."""
    event_ids: list[str] = []
    kept: list[str] = []
    for line in lines:
        try:
            event = json.loads(line)
            if not isinstance(event, dict):
                raise ValueError("not a JSON object")
            event_id = event_id_of(event)
        except ValueError:  # JSONDecodeError is one; only a damaged file gets here
            logger.error("skipping an unreadable spooled decision event: %.200s", line)
            continue
        event_ids.append(event_id)
        kept.append(line)
    return event_ids, kept
