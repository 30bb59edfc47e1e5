"""Errors a handler raises to steer its retries."""

from __future__ import annotations


class HandlerError(Exception):
    """Base of the errors that mean something to the reactor."""


class TemporaryError(HandlerError):
    """Retry this handler after `delay` seconds (not counted as a crash)."""

    def __init__(self, message: str = "", *, delay: float = 60.0) -> None:
        super().__init__(message)
        if delay < 0:
            raise ValueError(f"TemporaryError delay must be >= 0, got {delay}")
        self.delay = float(delay)


class PermanentError(HandlerError):
    """Give up on this handler for the current change; it is reported, not retried."""


class HandlerTimeoutError(PermanentError):
    """The handler kept failing for longer than its `timeout`."""


class HandlerRetriesError(PermanentError):
    """The handler failed more often than its `retries`."""


class ConfigurationError(ValueError):
    """Settings that cannot work (bad address, unsafe transport, missing file)."""


class BlockedError(PermanentError):
    """The handler will not act on this change on purpose (ambiguous or unsafe desired
    state); the object's status shows `blocked` with this message until it changes."""
