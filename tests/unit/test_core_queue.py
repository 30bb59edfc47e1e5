"""The per-object queue at shutdown: only passes in progress are busy, and no pass
starts once it is closed. Driven with a fake wall clock (the queue's retry times)."""

from __future__ import annotations

import types

import anyio
import pytest

from swarmop.reactor import queueing
from swarmop.reactor.queueing import Hint, Key, ObjectQueue

HANG_GUARD = 30.0  # seconds: only ends a test that would otherwise never finish
KEY: Key = ("service", "web")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(queueing, "time", types.SimpleNamespace(time=lambda: now[0]))
    return now


@pytest.mark.anyio
async def test_a_worker_waiting_for_its_retry_is_not_busy(clock: list[float]) -> None:
    inside = anyio.Event()
    release = anyio.Event()
    passed = anyio.Event()

    async def process(key: Key, hints: list[Hint]) -> float | None:
        inside.set()
        await release.wait()
        passed.set()
        return clock[0] + 3600.0  # a retry an hour from now

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            queue = ObjectQueue(tg, process, anyio.CapacityLimiter(4))
            queue.touch(KEY)
            assert queue.busy() == 1  # touched: its pass is still to run
            await inside.wait()
            assert queue.busy() == 1
            release.set()
            await passed.wait()  # the worker left the pass before this task resumed
            assert queue.busy() == 0
            assert queue.depth() == (1, 0)  # the retry is still scheduled
            queue.close()


@pytest.mark.anyio
async def test_no_pass_starts_once_closed(clock: list[float]) -> None:
    calls: list[Key] = []
    called = anyio.Event()

    async def process(key: Key, hints: list[Hint]) -> float | None:
        calls.append(key)
        called.set()
        return clock[0] + 60.0

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            queue = ObjectQueue(tg, process, anyio.CapacityLimiter(4))
            queue.touch(KEY)
            await called.wait()
            clock[0] += 120.0  # the retry is due...
            queue.close()  # ...but shutdown has begun: the waiting worker just ends
            queue.touch(KEY)  # and a late event starts no worker
            queue.touch(("service", "other"))
        # The task group ended: no worker is left behind.
    assert calls == [KEY]
    assert queue.busy() == 0
