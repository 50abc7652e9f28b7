"""Stopping background tasks within a bound, so a shutdown always ends.

One ``task.cancel()`` and an unbounded ``await task`` can wait forever: a cancel
can be lost (on Python 3.11, ``asyncio.wait_for`` drops a cancel that arrives as
the awaited result does, and redis-py and our own waits use it), and a task
stuck in a call that ignores cancellation never ends. :func:`stop_tasks` cancels
again while a task runs and gives up at a deadline; :func:`run_bounded` awaits
one call for at most a while.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any

logger = logging.getLogger(__name__)

RECANCEL_S = 0.25
"""How often a task that is still running is cancelled again."""


async def stop_tasks(tasks: Iterable[asyncio.Future[Any]],
                     timeout_s: float) -> set[asyncio.Future[Any]]:
    """Cancel ``tasks`` and wait until they end or ``timeout_s`` passes; returns the
    ones still running (logged). An exception a task ended with is logged, not raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = set(tasks)
    while pending:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_S, remaining))
    for task in set(tasks) - pending:
        if not task.cancelled() and task.exception() is not None:
            logger.error("%r failed as it stopped", task, exc_info=task.exception())
    for task in pending:
        logger.warning("%r did not stop within %g s; left behind", task, timeout_s)
    return pending


async def run_bounded(call: Awaitable[Any], timeout_s: float) -> bool:
    """Await ``call`` for at most ``timeout_s``: True when it ended (its exception, if
    it raised one, propagates), False when it was stopped (see :func:`stop_tasks`)."""
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        await stop_tasks({task}, RECANCEL_S)
        return False
    task.result()
    return True
