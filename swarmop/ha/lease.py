"""The leader's lease, measured on the monotonic clock only.

Consul resets a session's TTL timer when a renew *arrives*; we take the time
right *before sending* the renew, so our deadline is never later than the
server's. Consul may invalidate a session up to twice its TTL late, never
early (the session has no health checks), so `sent + ttl - margin` is a point
before which no other instance can hold the lock. The margin covers clock-rate
differences and the time between a write's check and its arrival.

Wall-clock time is never used: a clock jump (NTP, a paused VM, a skewed host)
must not extend or cut the lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class Lease:
    def __init__(self, ttl: float, margin: float, clock: Clock = time.monotonic) -> None:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be > 0, got {ttl}")
        if not 0 <= margin < ttl:
            raise ValueError(f"lease margin must be in [0, ttl), got {margin}")
        self.ttl = float(ttl)
        self.margin = float(margin)
        self._clock = clock
        self._sent: float | None = None

    @property
    def clock(self) -> Clock:
        return self._clock

    def renewed(self, sent_at: float) -> None:
        """A renew (or the create/acquire) sent at `sent_at` succeeded."""
        if self._sent is None or sent_at > self._sent:
            self._sent = sent_at

    def expire(self) -> None:
        self._sent = None

    @property
    def valid_until(self) -> float | None:
        if self._sent is None:
            return None
        return self._sent + self.ttl - self.margin

    def valid(self) -> bool:
        until = self.valid_until
        return until is not None and self._clock() < until

    def remaining(self) -> float:
        until = self.valid_until
        return 0.0 if until is None else max(0.0, until - self._clock())

    def renew_due_in(self) -> float:
        """Seconds until the next renew: every third of the TTL after the last one."""
        if self._sent is None:
            return 0.0
        return max(0.0, self._sent + self.ttl / 3 - self._clock())
