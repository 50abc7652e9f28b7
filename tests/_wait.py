"""Wait for a condition, not for a time: poll it until it holds, with a deadline.

    took = wait_for(lambda: store.flushed, 5.0, message="store never flushed")
    await wait_for_async(lambda: learner.offset == last)
    await wait_for_async(lease.try_acquire)      # a coroutine function works too

Both return the seconds the condition took (for tests that bound a delay) and raise
``AssertionError`` naming ``message`` (a string, or a callable for the latest state)
when it did not hold within ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_INTERVAL_S = 0.01

Message = str | Callable[[], object]


def wait_for(predicate: Callable[[], object], timeout: float = DEFAULT_TIMEOUT_S, *,
             interval: float = DEFAULT_INTERVAL_S, message: Message = "") -> float:
    """Seconds until ``predicate()`` was truthy; AssertionError after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(_failure(timeout, message))
        time.sleep(interval)
    return time.monotonic() - started


async def wait_for_async(predicate: Callable[[], object | Awaitable[object]],
                         timeout: float = DEFAULT_TIMEOUT_S, *,
                         interval: float = DEFAULT_INTERVAL_S, message: Message = "") -> float:
    """``wait_for`` inside an event loop: sleeps yield to it; ``predicate`` may be async."""
    started = time.monotonic()
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(_failure(timeout, message))
        await asyncio.sleep(interval)


def _failure(timeout: float, message: Message) -> str:
    detail = message() if callable(message) else message
    return f"not within {timeout} s" + (f": {detail}" if detail else "")
