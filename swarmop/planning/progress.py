"""Stored per-object state: the last handled essence and the progress of a cycle.

A cycle is the set of handlers one change (create, update, resume, delete)
needs. Progress records, per handler, whether it finished, how often it was
retried and until when it waits, so a restarted operator continues an
unfinished cycle and does not repeat finished handlers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class HandlerProgress:
    started: float
    retries: int = 0
    delayed_until: float | None = None
    done: bool = False
    failed: bool = False
    message: str = ""
    blocked: bool = False  # refused on purpose (BlockedError), maybe waiting for a recheck

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "retries": self.retries,
            "delayed_until": self.delayed_until,
            "done": self.done,
            "failed": self.failed,
            "message": self.message,
            "blocked": self.blocked,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HandlerProgress:
        return cls(
            started=float(data["started"]),
            retries=int(data.get("retries", 0)),
            delayed_until=(
                None if data.get("delayed_until") is None else float(data["delayed_until"])
            ),
            done=bool(data.get("done", False)),
            failed=bool(data.get("failed", False)),
            message=str(data.get("message", "")),
            blocked=bool(data.get("blocked", False)),
        )


@dataclass(frozen=True)
class Cycle:
    reason: str  # "create" | "update" | "resume" | "delete"
    target: str  # digest of the essence this cycle works towards
    handlers: dict[str, HandlerProgress] = field(default_factory=dict)
    order: tuple[str, ...] = ()  # handler ids, in registration order

    def pending(self) -> list[str]:
        return [hid for hid in self.order if not self.handlers.get(hid, _NEW).done]

    @property
    def finished(self) -> bool:
        return not self.pending()

    def next_wake(self) -> float | None:
        delays = [
            progress.delayed_until
            for hid in self.pending()
            if (progress := self.handlers.get(hid)) is not None
            and progress.delayed_until is not None
        ]
        return min(delays) if delays else None

    def with_handler(self, hid: str, progress: HandlerProgress) -> Cycle:
        return replace(self, handlers={**self.handlers, hid: progress})

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "target": self.target,
            "order": list(self.order),
            "handlers": {hid: item.to_dict() for hid, item in self.handlers.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cycle:
        return cls(
            reason=str(data["reason"]),
            target=str(data["target"]),
            order=tuple(str(hid) for hid in data.get("order", [])),
            handlers={
                str(hid): HandlerProgress.from_dict(item)
                for hid, item in dict(data.get("handlers", {})).items()
            },
        )


_NEW = HandlerProgress(started=0.0)


@dataclass(frozen=True)
class ObjectState:
    """What the operator remembers about one object between runs."""

    id: str
    last: dict[str, Any] | None = None  # the last fully handled essence
    cycle: Cycle | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "last": self.last,
                "cycle": None if self.cycle is None else self.cycle.to_dict(),
            },
            sort_keys=True,
            default=str,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> ObjectState:
        """Raises ValueError for anything that is not a stored state."""
        try:
            data = json.loads(raw)
            cycle = data.get("cycle")
            last = data.get("last")
            return cls(
                id=str(data["id"]),
                last=last if isinstance(last, dict) else None,
                cycle=None if cycle is None else Cycle.from_dict(cycle),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
            raise ValueError(f"invalid stored object state: {error}") from None


def restart_cycle(
    previous: Cycle | None, reason: str, target: str, order: tuple[str, ...], now: float
) -> Cycle:
    """A new cycle for a newer change. Retry counts and first-start times of handlers
    still unfinished carry over, so a handler failing across changes still reaches its
    retry/timeout limits; finished handlers run again for the new change."""
    handlers: dict[str, HandlerProgress] = {}
    for hid in order:
        old = previous.handlers.get(hid) if previous is not None else None
        if old is not None and not old.done:
            handlers[hid] = replace(old, delayed_until=None, blocked=False)
        else:
            handlers[hid] = HandlerProgress(started=now)
    return Cycle(reason=reason, target=target, handlers=handlers, order=order)


def backoff_delay(base: float, retries: int, cap: float = 300.0) -> float:
    """Exponential backoff from `base` seconds, capped."""
    if base <= 0:
        return 0.0
    return float(min(cap, base * (2 ** max(0, retries - 1))))
