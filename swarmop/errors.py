"""Errors a handler raises to steer its retries."""

from __future__ import annotations


class HandlerError(Exception):
    """Base of the errors that mean something to the reactor. A handler whose
    `retries` or `timeout` run out is not given an error of its own: its status
    says `retries exhausted: ...` or `timed out: ...` (docs/api.md)."""


class TemporaryError(HandlerError):
    """Retry this handler after `delay` seconds (instead of the crash backoff); like a
    crash, each retry counts towards the handler's `retries` and `timeout`."""

    def __init__(self, message: str = "", *, delay: float = 60.0) -> None:
        super().__init__(message)
        if delay < 0:
            raise ValueError(f"TemporaryError delay must be >= 0, got {delay}")
        self.delay = float(delay)


class PermanentError(HandlerError):
    """Give up on this handler for the current change; it is reported, not retried."""


class ConfigurationError(ValueError):
    """Settings that cannot work (bad address, unsafe transport, missing file)."""


class BlockedError(PermanentError):
    """The handler will not act on this change on purpose (ambiguous or unsafe desired
    state); the object's status shows `blocked` with this message.

    Without `recheck` it stays blocked until the object changes. With `recheck=seconds`
    the handler runs again after that long (status `blocked` meanwhile): for a block
    that another object's state can lift, e.g. depends_on on a service that does not
    exist yet, which brings no event on this object.
    """

    def __init__(self, message: str = "", *, recheck: float | None = None) -> None:
        super().__init__(message)
        if recheck is not None and recheck < 0:
            raise ValueError(f"BlockedError recheck must be >= 0, got {recheck}")
        self.recheck = None if recheck is None else float(recheck)
