"""What a planning function hands back: an outcome, a message, log lines.

Plain data, so planning stays pure and the handler modules only translate a
decision into API calls (a spec write, a status, log records).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """Same values as the published status outcomes (`swarmop.status.Outcome`)."""

    OK = "ok"  # actual matches desired, or the write that makes it so is issued
    PENDING = "pending"  # waiting for something that resolves itself (a rollout, a task)
    BLOCKED = "blocked"  # the operator will not act until the user changes something
    ERROR = "error"  # the desired state is refused (would break a rule)


class Level(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class LogLine:
    level: Level
    text: str


@dataclass(frozen=True)
class Status:
    outcome: Outcome
    message: str
    # Blocked on something outside this object (a service that does not exist
    # yet, another service's depends_on): look again later, since no change to
    # this object will announce the fix.
    recheck: bool = False

    @classmethod
    def ok(cls, message: str) -> Status:
        return cls(Outcome.OK, message)

    @classmethod
    def pending(cls, message: str) -> Status:
        return cls(Outcome.PENDING, message)

    @classmethod
    def blocked(cls, message: str, *, recheck: bool = False) -> Status:
        return cls(Outcome.BLOCKED, message, recheck)

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Outcome.ERROR, message)


@dataclass(frozen=True)
class Notes:
    """Log lines collected while planning, in order."""

    lines: list[LogLine] = field(default_factory=list)

    def info(self, text: str) -> None:
        self.lines.append(LogLine(Level.INFO, text))

    def warning(self, text: str) -> None:
        self.lines.append(LogLine(Level.WARNING, text))

    def error(self, text: str) -> None:
        self.lines.append(LogLine(Level.ERROR, text))

    def freeze(self) -> tuple[LogLine, ...]:
        return tuple(self.lines)


def worst(statuses: list[Status]) -> Status | None:
    """The status that most needs attention: error > blocked > pending > ok."""
    rank = {Outcome.ERROR: 3, Outcome.BLOCKED: 2, Outcome.PENDING: 1, Outcome.OK: 0}
    return max(statuses, key=lambda status: rank[status.outcome], default=None)
