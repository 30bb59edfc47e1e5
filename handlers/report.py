"""Hand a plan's log lines and status to the operator.

Log lines go to the object's logger (its event log). An ok status is the
handler's return value (the core shows it as the ok message); any other status
becomes the error that gives the published status its outcome: pending
retries after `recheck` seconds (task state has no events, so it must be
looked at again); blocked waits for the object to change, or is re-checked
when the fix can come from another object; error is reported until the
object changes.
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


# A block lifted by another object (a service created, a node labelled) brings
# no event on this one; looking every few intervals is soon enough for a fix
# made by hand, and keeps a blocked service from costing a pass every interval.
BLOCKED_RECHECK_FACTOR = 5


def raise_for(status: Status, *, recheck: float) -> str:
    """The ok message for an ok status (the handler returns it); otherwise raise
    the error whose outcome matches the status."""
    if status.outcome is Outcome.OK:
        return status.message
    if status.outcome is Outcome.PENDING:
        raise swarmop.TemporaryError(status.message, delay=recheck)
    if status.outcome is Outcome.BLOCKED:
        if status.recheck:
            raise swarmop.BlockedError(status.message, recheck=recheck * BLOCKED_RECHECK_FACTOR)
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
    # Blocked by something only this object's next change can fix still looks
    # again when a part of it is waiting for tasks, so that part's message
    # does not go stale.
    recheck = any(status.recheck for status in items if status.outcome is worst.outcome) or (
        worst.outcome is Outcome.BLOCKED
        and any(status.outcome is Outcome.PENDING for status in items)
    )
    return Status(worst.outcome, "; ".join(dict.fromkeys(messages)), recheck)
