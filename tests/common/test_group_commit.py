"""GroupCommit: batches in submission order, one in flight, the lone caller writes itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from common.storage.group_commit import GroupCommit
from tests._wait import wait_for_async

Item = tuple[int, "asyncio.Future[str]"]


class Recorder:
    """A commit that takes ``delay`` per batch and records who ran each batch."""

    def __init__(self, delay: float = 0.01, fail_on: int | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.batches: list[list[int]] = []
        self.tasks: list[str] = []
        self.failed: list[tuple[list[int], str]] = []

    async def commit(self, batch: list[Item]) -> None:
        self.batches.append([n for n, _ in batch])
        task = asyncio.current_task()
        self.tasks.append(task.get_name() if task else "?")
        await asyncio.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in self.batches[-1]:
            raise RuntimeError("disk on fire")
        for n, future in batch:
            future.set_result(f"ok {n}")

    def fail(self, batch: Sequence[Item], exc: Exception) -> None:
        self.failed.append(([n for n, _ in batch], str(exc)))
        for _, future in batch:
            future.set_exception(exc)


async def submit(group: GroupCommit[Item], n: int) -> str:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    await group.submit((n, future))
    return await future


def test_a_lone_caller_commits_in_its_own_task() -> None:
    async def scenario() -> Recorder:
        recorder = Recorder()
        group = GroupCommit(recorder.commit, recorder.fail, max_batch=10, name="flusher")
        group.start()
        for n in range(3):
            assert await asyncio.create_task(submit(group, n), name=f"caller-{n}") == f"ok {n}"
        await group.close()
        return recorder

    recorder = asyncio.run(scenario())
    assert recorder.batches == [[0], [1], [2]]
    assert recorder.tasks == ["caller-0", "caller-1", "caller-2"]


def test_callers_queued_behind_a_write_share_batches_in_order() -> None:
    async def scenario() -> tuple[Recorder, list[str]]:
        recorder = Recorder()
        group = GroupCommit(recorder.commit, recorder.fail, max_batch=10, name="flusher")
        group.start()
        answers = await asyncio.gather(*(submit(group, n) for n in range(25)))
        await group.close()
        return recorder, answers

    recorder, answers = asyncio.run(scenario())
    assert answers == [f"ok {n}" for n in range(25)]
    assert recorder.batches == [[0], list(range(1, 11)), list(range(11, 21)),
                                list(range(21, 25))]
    assert recorder.tasks[1:] == ["flusher"] * 3


def test_sizes_bound_a_batch_but_an_oversized_item_still_goes_alone() -> None:
    async def scenario() -> Recorder:
        recorder = Recorder()
        group = GroupCommit(recorder.commit, recorder.fail, max_batch=10, name="flusher",
                            size=lambda item: item[0])
        group.start()
        await asyncio.gather(*(submit(group, n) for n in (1, 4, 5, 2, 30, 3)))
        await group.close()
        return recorder

    assert asyncio.run(scenario()).batches == [[1], [4, 5], [2], [30], [3]]


def test_a_failing_commit_fails_its_batch_only(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[Recorder, list[str | BaseException]]:
        recorder = Recorder(fail_on=3)
        group = GroupCommit(recorder.commit, recorder.fail, max_batch=3, name="flusher")
        group.start()
        answers = await asyncio.gather(*(submit(group, n) for n in range(7)),
                                       return_exceptions=True)
        await group.close()
        return recorder, answers

    recorder, answers = asyncio.run(scenario())
    assert recorder.batches == [[0], [1, 2, 3], [4, 5, 6]]
    assert recorder.failed == [([1, 2, 3], "disk on fire")]
    assert [str(a) for a in answers] == ["ok 0", "disk on fire", "disk on fire",
                                          "disk on fire", "ok 4", "ok 5", "ok 6"]
    assert "flusher: batch of 3 failed" in caplog.text


def test_close_commits_what_is_queued_and_refuses_more() -> None:
    async def scenario() -> tuple[Recorder, list[str]]:
        recorder = Recorder()
        group = GroupCommit(recorder.commit, recorder.fail, max_batch=100, name="flusher")
        group.start()
        callers = [asyncio.create_task(submit(group, n)) for n in range(5)]
        await asyncio.sleep(0)  # all submitted; the first is writing
        await group.close()
        with pytest.raises(RuntimeError, match="flusher is not running"):
            await submit(group, 99)
        return recorder, [caller.result() for caller in callers]

    recorder, answers = asyncio.run(scenario())
    assert answers == [f"ok {n}" for n in range(5)]
    assert recorder.batches == [[0], [1, 2, 3, 4]]


def test_a_cancelled_lone_caller_does_not_stall_the_others() -> None:
    async def scenario() -> list[str]:
        recorder = Recorder(delay=0.05)
        group = GroupCommit(recorder.commit, recorder.fail, max_batch=10, name="flusher")
        group.start()
        lone = asyncio.create_task(submit(group, 0))
        await wait_for_async(lambda: recorder.batches == [[0]])  # in flight, in its own task
        others = [asyncio.create_task(submit(group, n)) for n in (1, 2)]
        await asyncio.sleep(0)
        lone.cancel()
        answers = await asyncio.wait_for(asyncio.gather(*others), 2)
        await group.close()
        return answers

    assert asyncio.run(scenario()) == ["ok 1", "ok 2"]


def test_max_batch_must_be_positive() -> None:
    async def commit(batch: list[int]) -> None:
        return None

    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(commit, lambda batch, exc: None, max_batch=0, name="x")
