"""The write gate: checked right before every mutating call the operator makes.

`LeaderGate.before_write(object_id, version)` is the `before_write` hook of
`swarmop.clients.swarm_write`; it raises `NotLeaderError` unless this instance
holds the lock *and* its lease (monotonic) has not run out, so a leader that
lost Consul, or was paused past its TTL, stops writing on its own even before
its election loop notices. Every allowed or refused write is logged on the
`swarmop.ha.writes` logger with the instance, session, lock index and version,
so a history of mutating calls can be checked for overlapping writers.

`writing()` counts writes in flight: a resigning leader closes the gate, waits
for them, and only then releases the lock.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from swarmop.errors import TemporaryError
from swarmop.ha.lease import Lease

write_log = logging.getLogger("swarmop.ha.writes")


class NotLeaderError(TemporaryError):
    """This instance is not (or no longer) the leader: the write was not sent."""

    def __init__(self, message: str = "not the leader") -> None:
        super().__init__(message, delay=1.0)


@dataclass(frozen=True)
class Term:
    """One leadership: the Consul session that holds the lock and the lock's index."""

    session: str
    lock_index: int
    """Consul's LockIndex of the key (starts at 1 again once the key was deleted)."""
    index: int = 0
    """The key's ModifyIndex when acquired: a Raft index, so it grows with every term."""


class WriteGate(Protocol):
    def allows(self) -> bool: ...
    def before_write(self, object_id: str, version: int) -> None: ...
    def writing(self) -> contextlib.AbstractContextManager[None]: ...


class OpenGate:
    """No election (single instance): every write is allowed."""

    def allows(self) -> bool:
        return True

    def before_write(self, object_id: str, version: int) -> None:
        return None

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        yield


OPEN_GATE = OpenGate()


class LeaderGate:
    """Thread-safe: writes run in worker threads, the election loop in the event loop."""

    def __init__(self, instance: str, lease: Lease) -> None:
        self.instance = instance
        self.lease = lease
        self._lock = threading.Condition()
        self._term: Term | None = None
        self._closed = False
        self._in_flight = 0
        self.refused = 0
        self.allowed = 0

    # --- election side ------------------------------------------------

    def elect(self, term: Term) -> None:
        with self._lock:
            self._term = term

    def demote(self) -> None:
        with self._lock:
            self._term = None
        self.lease.expire()

    def close(self) -> None:
        """Refuse every write from now on (shutting down)."""
        with self._lock:
            self._closed = True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no write is in flight; False when `timeout` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    # --- write side ---------------------------------------------------

    @property
    def term(self) -> Term | None:
        """The current term while the lease is valid, else None."""
        with self._lock:
            if self._closed or self._term is None or not self.lease.valid():
                return None
            return self._term

    @property
    def held_term(self) -> Term | None:
        """The term this instance believes it holds, even when the lease ran out."""
        with self._lock:
            return self._term

    def allows(self) -> bool:
        return self.term is not None

    def check(self, what: str, *, level: int = logging.INFO) -> Term:
        term = self.term
        if term is None:
            with self._lock:
                self.refused += 1
                reason = "closing" if self._closed else "no valid lease"
                held = self._term
            write_log.warning(
                "write refused instance=%s session=%s term=%s %s (%s)",
                self.instance,
                held.session if held else "-",
                held.index if held else "-",
                what,
                reason,
            )
            raise NotLeaderError(f"{what}: not the leader ({reason})")
        with self._lock:
            self.allowed += 1
        write_log.log(
            level,
            "write allowed instance=%s session=%s term=%d %s",
            self.instance,
            term.session,
            term.index,
            what,
        )
        return term

    def before_write(self, object_id: str, version: int) -> None:
        self.check(f"object={object_id} version={version}")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()
