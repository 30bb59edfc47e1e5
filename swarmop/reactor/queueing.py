"""One worker per object: changes for one object run in order and coalesce.

`touch(key)` marks the object dirty and starts its worker if none runs. While a
worker processes, further touches only set the dirty flag again, so a burst of
1000 events costs one or two passes. Workers share a limiter (bounded overall
concurrency) and exit when their object has nothing left to do.

`close()` begins shutdown: no pass starts after it (a retry that falls due, a
touch), and workers that only wait for their next retry end at once. What
they waited for is already stored as progress, so a restarted operator
resumes it. `busy()` counts passes in progress (what shutdown waits for) and
touches still to be processed, never workers that only wait for a retry.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from swarmop.reactor.board import about

logger = logging.getLogger("swarmop.queue")

Key = tuple[str, str]
Hint = Mapping[str, Any]
Processor = Callable[[Key, list[Hint]], Awaitable[float | None]]
MAX_HINTS = 64
ERROR_BACKOFF_CAP = 60.0


@dataclass
class _Slot:
    dirty: bool = False
    running: bool = False
    processing: bool = False
    wake_at: float | None = None
    hints: list[Hint] = field(default_factory=list)
    wake: anyio.Event = field(default_factory=anyio.Event)
    failures: int = 0


class ObjectQueue:
    def __init__(
        self,
        task_group: TaskGroup,
        process: Processor,
        limiter: anyio.CapacityLimiter,
        on_error: Callable[[Key, Exception], None] | None = None,
    ) -> None:
        self._tg = task_group
        self._process = process
        self._limiter = limiter
        self._on_error = on_error
        self._slots: dict[Key, _Slot] = {}
        self._closed = False
        self.passes = 0

    def touch(self, key: Key, hint: Hint | None = None) -> None:
        slot = self._slots.setdefault(key, _Slot())
        slot.dirty = True
        if hint is not None and len(slot.hints) < MAX_HINTS:
            slot.hints.append(hint)
        slot.wake.set()
        if not slot.running and not self._closed:
            slot.running = True
            self._tg.start_soon(self._worker, key, name=f"worker {key[0]}/{key[1]}")

    def busy(self) -> int:
        """Objects with a pass in progress or still to run for a touch. A worker that
        only waits for its next retry is not busy, nor, once closed, a touch that
        will never be processed."""
        return sum(
            1
            for slot in self._slots.values()
            if slot.processing or (slot.dirty and not self._closed)
        )

    def close(self) -> None:
        """Start no pass from now on; wake the workers that wait, so they end."""
        self._closed = True
        for slot in self._slots.values():
            slot.wake.set()

    def depth(self) -> tuple[int, int]:
        """(objects waiting or in work, event hints held): bounded by the number of
        objects and MAX_HINTS each, however many events arrive."""
        return len(self._slots), sum(len(slot.hints) for slot in self._slots.values())

    async def _worker(self, key: Key) -> None:
        slot = self._slots[key]
        try:
            while not self._closed:
                if not slot.dirty:
                    if slot.wake_at is None:
                        return
                    delay = slot.wake_at - time.time()
                    if delay > 0:
                        slot.wake = anyio.Event()
                        with anyio.move_on_after(delay):
                            await slot.wake.wait()
                        if not slot.dirty and time.time() < slot.wake_at:
                            continue
                    if self._closed:
                        return
                slot.dirty = False
                slot.processing = True
                hints, slot.hints = slot.hints, []
                async with self._limiter:
                    if self._closed:
                        return  # shutdown began while this pass waited for the limiter
                    try:
                        slot.wake_at = await self._process(key, hints)
                        slot.failures = 0
                    except Exception as error:
                        slot.failures += 1
                        delay = min(ERROR_BACKOFF_CAP, 0.5 * math.pow(2, slot.failures))
                        slot.wake_at = time.time() + delay
                        if self._on_error is not None:
                            self._on_error(key, error)
                        else:
                            logger.warning(
                                "%s/%s: %s; again in %.1fs",
                                *key,
                                error,
                                delay,
                                extra=about(*key),
                            )
                self.passes += 1
                slot.processing = False
        finally:
            slot.running = False
            slot.processing = False
            if not slot.dirty and slot.wake_at is None:
                self._slots.pop(key, None)
