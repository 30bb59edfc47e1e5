"""R31: bursts of changes give few reloads, and the last value always wins."""

from __future__ import annotations

import itertools

import anyio
import pytest

from swarmop.proxy import DebouncedApplier, ReloadDebouncer


def _drive(
    debouncer: ReloadDebouncer[int], changes: list[tuple[float, int]], end: float
) -> list[tuple[float, int]]:
    """Feed (time, value) changes and poll every millisecond of fake time."""
    fired: list[tuple[float, int]] = []
    pending = sorted(changes)
    for tick in range(int(end * 1000) + 1):
        now = tick / 1000
        while pending and pending[0][0] <= now:
            debouncer.submit(pending.pop(0)[1], now)
        value = debouncer.take(now)
        if value is not None:
            fired.append((now, value))
    return fired


def test_hundred_changes_in_a_second_give_one_reload_with_the_last_value() -> None:
    debouncer: ReloadDebouncer[int] = ReloadDebouncer(quiet=0.2, max_delay=2.0)
    fired = _drive(debouncer, [(i * 0.01, i) for i in range(100)], end=5.0)
    assert fired == [(1.19, 99)]


def test_a_change_stream_that_never_pauses_still_applies_every_max_delay() -> None:
    debouncer: ReloadDebouncer[int] = ReloadDebouncer(quiet=0.2, max_delay=2.0)
    fired = _drive(debouncer, [(i * 0.05, i) for i in range(200)], end=12.0)
    times = [when for when, _ in fired]
    # Changes every 50 ms for 10 s: each burst is cut at 2 s after its first change.
    assert times[0] == 2.0
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(2.0 <= gap <= 2.06 for gap in gaps[:-1]), gaps
    assert len(fired) == 5
    assert fired[-1][1] == 199
    assert times[-1] == pytest.approx(10.15, abs=0.002)  # last change 9.95 + quiet


def test_separate_changes_each_apply_after_the_quiet_period() -> None:
    debouncer: ReloadDebouncer[int] = ReloadDebouncer(quiet=0.2, max_delay=2.0)
    fired = _drive(debouncer, [(0.0, 1), (1.0, 2), (3.0, 3)], end=4.0)
    assert fired == [(0.2, 1), (1.2, 2), (3.2, 3)]


def test_nothing_pending_means_no_deadline_and_nothing_to_take() -> None:
    debouncer: ReloadDebouncer[str] = ReloadDebouncer()
    assert debouncer.deadline() is None
    assert debouncer.take(100.0) is None
    debouncer.submit("a", 0.0)
    assert debouncer.take(0.1) is None
    assert debouncer.pending


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="quiet"):
        ReloadDebouncer(quiet=3.0, max_delay=2.0)


def test_applier_coalesces_a_burst_and_applies_the_last_value() -> None:
    applied: list[int] = []
    done = anyio.Event()

    async def apply(value: int) -> None:
        applied.append(value)
        if value == 99:
            done.set()

    async def main() -> None:
        applier: DebouncedApplier[int] = DebouncedApplier(apply, quiet=0.05, max_delay=1.0)
        async with anyio.create_task_group() as group:
            group.start_soon(applier.run)
            for value in range(100):
                applier.submit(value)
            with anyio.fail_after(10):
                await done.wait()
            group.cancel_scope.cancel()
        assert applier.submitted == 100
        assert applier.applied == len(applied)

    anyio.run(main)
    assert applied == [99]


def test_applier_retries_a_failed_apply_with_the_same_value() -> None:
    attempts: list[str] = []
    retried = anyio.Event()

    async def apply(value: str) -> None:
        attempts.append(value)
        if len(attempts) == 2:
            retried.set()
        if len(attempts) == 1:
            raise RuntimeError("consul unreachable")

    async def main() -> None:
        applier: DebouncedApplier[str] = DebouncedApplier(
            apply, quiet=0.01, max_delay=0.1, retry_delay=0.01
        )
        async with anyio.create_task_group() as group:
            group.start_soon(applier.run)
            applier.submit("config-1")
            with anyio.fail_after(10):
                await retried.wait()
            group.cancel_scope.cancel()

    anyio.run(main)
    assert attempts[:2] == ["config-1", "config-1"]
