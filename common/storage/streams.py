"""Streams as the router and the learning loop read them: "the entries after id X".

Every reader (the joiner over decisions and rewards, the learners and the archive over
joined events) remembers the id of the last entry it handled and asks for what came
after it. On Redis that is ``XRANGE stream (X + COUNT n``; ``read_after`` writes it
once. In one process, ``MemoryStream`` is the same stream: ids ``"1-0"``, ``"2-0"``…
in append order, trimmed like ``XADD MAXLEN ~``, read the same way.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

START = "0"
"""The id before every entry: a reader that has handled nothing reads after it."""


def xrange_min(after: str | None) -> str:
    """The ``XRANGE`` lower bound for the entries after ``after`` (``None``, ``"0"`` or
    ``"-"``: from the first entry)."""
    return "-" if after is None or after in (START, "-") else f"({after}"


async def read_after(client: Any, stream: str, after: str | None, count: int) -> Any:
    """Up to ``count`` entries of ``stream`` with ids after ``after``, oldest first, as
    the redis.asyncio ``client`` answers ``XRANGE`` (``[(id, fields), ...]``)."""
    return await client.xrange(stream, min=xrange_min(after), count=count)


def as_text(value: str | bytes) -> str:
    """A Redis reply as text, from a client with or without ``decode_responses``."""
    return value.decode() if isinstance(value, bytes) else value


def sequence(stream_id: str) -> int:
    """The N of an in-memory id ``"N-0"`` (or ``"N"``); ``ValueError`` naming a bad id."""
    head = stream_id.split("-", 1)[0]
    if not head.isdigit():
        raise ValueError(f"not a stream id: {stream_id!r}")
    return int(head)


class MemoryStream(Generic[T]):
    """An in-process stream of ``T``: ids ``"1-0"``, ``"2-0"``…, oldest first.

    With ``maxlen``, keeps the newest ``maxlen`` entries, trimming by at least a tenth
    at a time once over (like ``XADD MAXLEN ~``); ids keep counting, so a reader that
    fell behind the trim resumes at the oldest entry kept. With ``dedupe``, each
    ``append`` names the entry's identity and an identity already in the stream is not
    appended again (like the stores' ``SET NX`` markers); a trimmed entry's identity is
    forgotten with it.
    """

    def __init__(self, maxlen: int | None = None, *, dedupe: bool = False) -> None:
        if maxlen is not None and maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        self.maxlen = maxlen
        self.entries: list[T] = []
        """The kept entries: ``entries[0]`` has id ``f"{trimmed + 1}-0"``."""
        self.trimmed = 0
        """Entries dropped from the front."""
        self._identities: list[Hashable] | None = [] if dedupe else None
        self._seen: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, entry: T, identity: Hashable = None) -> bool:
        """Add ``entry`` at the end; False (nothing added) when ``identity`` is already
        in a deduping stream."""
        identities = self._identities
        if identities is not None:
            if identity in self._seen:
                return False
            self._seen.add(identity)
            identities.append(identity)
        self.entries.append(entry)
        maxlen = self.maxlen
        if maxlen is not None and len(self.entries) > maxlen + max(maxlen // 10, 1):
            self._trim(len(self.entries) - maxlen)
        return True

    def read(self, count: int, after: str = START) -> list[tuple[str, T]]:
        """Up to ``count`` (id, entry) with ids after ``after``, oldest first."""
        start = max(sequence(after), self.trimmed)
        index = start - self.trimmed
        chosen = self.entries[index:index + max(count, 0)]
        return [(f"{start + i + 1}-0", entry) for i, entry in enumerate(chosen)]

    def _trim(self, excess: int) -> None:
        if self._identities is not None:
            self._seen.difference_update(self._identities[:excess])
            del self._identities[:excess]
        del self.entries[:excess]
        self.trimmed += excess
