"""Group commit: the writes of many tasks, in batches, one batch in flight at a time.

The decision log and the reward log both answer a caller only once its record is
stored, and both store records in round trips to Redis. Writing each record alone
costs a round trip per record; writing whatever has queued up while the previous
round trip was in flight costs about one round trip per batch, so N concurrent
callers cost about one round trip, not N. With one caller at a time there is
nothing to batch: that caller writes its own record in its own task, with no
hand-over to a flusher task and back (two event-loop wake-ups on the latency of
every request).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")


def _one(item: object) -> int:
    return 1


class GroupCommit(Generic[Item]):
    """Hands the items tasks submit to ``commit`` in batches, one batch at a time.

    An item carries its own way back to its caller (a future, say): ``commit(batch)``
    settles every item of the batch; if it raises, ``fail(batch, exc)`` must. A batch
    holds at least one item and, past the first, items while their ``size`` sums to
    at most ``max_batch``; batches are committed in the order the items were
    submitted.
    """

    def __init__(self, commit: Callable[[list[Item]], Awaitable[None]],
                 fail: Callable[[Sequence[Item], Exception], None], *, max_batch: int,
                 name: str, size: Callable[[Item], int] = _one) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._commit, self._fail, self._size = commit, fail, size
        self.max_batch = max_batch
        self.name = name
        self._pending: list[Item] = []
        self._committing = False
        self._closing = False
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0
        """Batches handed to ``commit``."""

    @property
    def running(self) -> bool:
        """Started and not closing: ``submit`` accepts items."""
        return self._flusher is not None and not self._closing

    def start(self) -> None:
        """Start the flusher task (on the running loop)."""
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name=self.name)

    async def close(self) -> bool:
        """Commit everything submitted so far, then stop the flusher. True for the call
        that closed it, False (at once) for any later one: its owner closes only once."""
        if self._closing:
            return False
        self._closing = True
        self._wakeup.set()
        if self._flusher is not None:
            await self._flusher
        return True

    async def submit(self, item: Item) -> None:
        """Queue ``item``; when nothing is in flight or queued, commit it right here.

        Returns once it is committed or queued: the caller then waits for its item
        to be settled. Cancelling the caller during its own commit leaves only its
        own item unsettled.
        """
        if not self.running:
            raise RuntimeError(f"{self.name} is not running")
        self._pending.append(item)
        if self._committing or len(self._pending) > 1:
            self._wakeup.set()
            return
        try:
            await self._commit_next()
        finally:
            if self._pending or self._closing:
                self._wakeup.set()

    async def _flush_loop(self) -> None:
        while True:
            if self._committing or not self._pending:
                if self._closing and not self._committing and not self._pending:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._commit_next()

    async def _commit_next(self) -> None:
        self._committing = True
        batch = self._take()
        try:
            self.commits += 1
            await self._commit(batch)
        except Exception as exc:  # a caller must never wait forever
            logger.exception("%s: batch of %d failed", self.name, len(batch))
            self._fail(batch, exc)
        finally:
            self._committing = False

    def _take(self) -> list[Item]:
        """Remove and return the oldest items: at least one, up to ``max_batch`` in size."""
        pending, size = self._pending, self._size
        taken, total = 1, size(pending[0])
        while taken < len(pending):
            grown = total + size(pending[taken])
            if grown > self.max_batch:
                break
            total, taken = grown, taken + 1
        batch = pending[:taken]
        del pending[:taken]
        return batch
