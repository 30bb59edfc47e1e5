"""Hand a plan's log lines and status to the operator.

Log lines go to the object's logger (its event log). A status that is not ok
becomes the error that gives the published status its outcome: pending
retries after `recheck` seconds (task state has no events, so it must be
looked at again), blocked and error are reported until the object changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import swarmop

from .decision import Level, LogLine, Outcome, Status

_LEVELS = {
    Level.DEBUG: logging.DEBUG,
    Level.INFO: logging.INFO,
    Level.WARNING: logging.WARNING,
    Level.ERROR: logging.ERROR,
}


def emit(logger: logging.Logger | logging.LoggerAdapter, lines: Iterable[LogLine]) -> None:  # type: ignore[type-arg]
    for line in lines:
        logger.log(_LEVELS[line.level], "%s", line.text)


def raise_for(status: Status, *, recheck: float) -> None:
    """Return for ok; raise the error whose outcome matches the status otherwise."""
    if status.outcome is Outcome.OK:
        return
    if status.outcome is Outcome.PENDING:
        raise swarmop.TemporaryError(status.message, delay=recheck)
    if status.outcome is Outcome.BLOCKED:
        if status.recheck:
            # The fix may come from another object: retried, so shown as pending
            # with the reason (BlockedError would wait for this object to change).
            raise swarmop.TemporaryError(f"blocked: {status.message}", delay=recheck * 5)
        raise swarmop.BlockedError(status.message)
    raise swarmop.PermanentError(status.message)


def combine(statuses: Iterable[Status]) -> Status:
    """One status for the object: the worst outcome, every non-ok message."""
    ranked = {Outcome.OK: 0, Outcome.PENDING: 1, Outcome.BLOCKED: 2, Outcome.ERROR: 3}
    items = list(statuses)
    if not items:
        return Status.ok("")
    worst = max(items, key=lambda status: ranked[status.outcome])
    if worst.outcome is Outcome.OK:
        return Status.ok("; ".join(status.message for status in items if status.message))
    messages = [status.message for status in items if status.outcome is not Outcome.OK]
    # Most severe first, so a truncated status still names the real problem.
    messages.sort(key=lambda text: -max(ranked[s.outcome] for s in items if s.message == text))
    recheck = any(status.recheck for status in items if status.outcome is worst.outcome)
    return Status(worst.outcome, "; ".join(dict.fromkeys(messages)), recheck)
