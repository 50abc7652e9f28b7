"""The shared wait helpers: they return once the condition holds, and fail after the deadline."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from tests._wait import wait_for, wait_for_async


def test_wait_for_returns_once_the_condition_holds() -> None:
    calls = itertools.count(1)
    took = wait_for(lambda: next(calls) >= 3, 5.0, interval=0.01)
    assert next(calls) == 4  # checked three times, no more
    assert 0.015 <= took < 5.0


def test_wait_for_fails_after_the_deadline_naming_the_latest_state() -> None:
    state = {"seen": 0}

    def never() -> bool:
        state["seen"] += 1
        return False

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"not within 0\.05 s: \{'seen': \d+\}"):
        wait_for(never, 0.05, interval=0.01, message=lambda: state)
    assert time.monotonic() - started >= 0.05
    assert state["seen"] >= 2


def test_wait_for_async_awaits_a_coroutine_condition_and_yields_to_the_loop() -> None:
    async def scenario() -> float:
        flag = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, flag.set)

        async def is_set() -> bool:
            return flag.is_set()

        return await wait_for_async(is_set, 5.0)

    assert 0.04 <= asyncio.run(scenario()) < 5.0


def test_wait_for_async_fails_after_the_deadline() -> None:
    with pytest.raises(AssertionError, match=r"not within 0\.05 s: never$"):
        asyncio.run(wait_for_async(lambda: False, 0.05, message="never"))
