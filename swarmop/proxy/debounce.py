"""Coalesce bursts of config changes into few reloads.

`ReloadDebouncer` is the pure rule on an injected clock: a burst fires once it
has been quiet for `quiet` seconds, or `max_delay` after its first change,
whichever is earlier, and always with the latest value. With the defaults
(200 ms, 2 s, after interlock's 2 s coalescing) 100 changes in one second give
one apply, and a change stream that never pauses still applies every 2 s.
`DebouncedApplier` runs that rule in an anyio task.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")

DEFAULT_QUIET = 0.2
DEFAULT_MAX_DELAY = 2.0
DEFAULT_RETRY_DELAY = 2.0

log = logging.getLogger(__name__)


class ReloadDebouncer(Generic[T]):
    def __init__(self, *, quiet: float = DEFAULT_QUIET, max_delay: float = DEFAULT_MAX_DELAY):
        if quiet < 0 or max_delay < quiet:
            raise ValueError("need 0 <= quiet <= max_delay")
        self.quiet = quiet
        self.max_delay = max_delay
        self._value: T | None = None
        self._pending = False
        self._first = 0.0
        self._last = 0.0

    @property
    def pending(self) -> bool:
        return self._pending

    def submit(self, value: T, now: float) -> None:
        """Record the newest value; it replaces any value not yet taken."""
        if not self._pending:
            self._pending = True
            self._first = now
        self._last = now
        self._value = value

    def deadline(self) -> float | None:
        """When the pending value is due, or None when nothing is pending."""
        if not self._pending:
            return None
        return min(self._last + self.quiet, self._first + self.max_delay)

    def take(self, now: float) -> T | None:
        """The pending value if it is due at `now` (and clear it), else None."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return None
        value = self._value
        self._pending = False
        self._value = None
        return value


class DebouncedApplier(Generic[T]):
    """Calls `apply` with the latest submitted value, debounced.

    `submit` never blocks (call it from the event loop); `run` applies forever.
    A failing `apply` is logged and retried after `retry_delay` with the same
    value unless a newer one arrived meanwhile.
    """

    def __init__(
        self,
        apply: Callable[[T], Awaitable[None]],
        *,
        quiet: float = DEFAULT_QUIET,
        max_delay: float = DEFAULT_MAX_DELAY,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self._apply = apply
        self._debouncer: ReloadDebouncer[T] = ReloadDebouncer(quiet=quiet, max_delay=max_delay)
        self._retry_delay = retry_delay
        self._clock = clock
        self._wake = anyio.Event()
        self.submitted = 0
        self.applied = 0

    def submit(self, value: T) -> None:
        self.submitted += 1
        self._debouncer.submit(value, self._clock())
        self._wake.set()

    async def _wait(self, limit: float | None) -> None:
        if limit is None:
            await self._wake.wait()
        else:
            with anyio.move_on_after(limit):
                await self._wake.wait()
        if self._wake.is_set():
            self._wake = anyio.Event()

    async def run(self) -> None:
        while True:
            deadline = self._debouncer.deadline()
            if deadline is None:
                await self._wait(None)
                continue
            delay = deadline - self._clock()
            if delay > 0:
                await self._wait(delay)
                continue
            value = self._debouncer.take(self._clock())
            if value is None:
                continue
            try:
                await self._apply(value)
                self.applied += 1
            except Exception:
                log.exception("applying proxy config failed; retrying in %.1fs", self._retry_delay)
                await anyio.sleep(self._retry_delay)
                if not self._debouncer.pending:
                    self._debouncer.submit(value, self._clock() - self._debouncer.max_delay)
