"""The status board: per-object status and the operator's own event log, in memory.

Handlers' loggers write here from worker threads, so every access is locked.

An object's status is the reactor's own (the outcome of its change handlers)
combined with reports that timers and daemons make about it
(`cluster.report`): the worst outcome wins and every message is shown.
The publisher (reactor.publisher) copies what changed to Consul; the HTTP
endpoint serves a snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from dataclasses import replace
from typing import Any

from swarmop.status import (
    EVENT_LOG_LIMIT,
    EventLevel,
    ObjectStatus,
    OperatorEvent,
    OperatorInfo,
    Outcome,
    StatusKind,
    StatusSnapshot,
)

Key = tuple[StatusKind, str]

_LEVELS = {
    logging.DEBUG: EventLevel.DEBUG,
    logging.INFO: EventLevel.INFO,
    logging.WARNING: EventLevel.WARNING,
    logging.ERROR: EventLevel.ERROR,
    logging.CRITICAL: EventLevel.ERROR,
}

logger = logging.getLogger("swarmop.operator")

OBJECT_FIELD = "object"
"""The log record attribute naming the object a record is about ("service/web")."""


def about(kind: str, name: str) -> dict[str, str]:
    """`extra=` for a log record about an object (the JSON log's `object` field)."""
    return {OBJECT_FIELD: f"{kind}/{name}"}


_SEVERITY = {Outcome.OK: 0, Outcome.PENDING: 1, Outcome.BLOCKED: 2, Outcome.ERROR: 3}
MESSAGE_LIMIT = 2000


def combine_reports(base: ObjectStatus, reports: dict[str, tuple[Outcome, str]]) -> ObjectStatus:
    """The published status: the reactor's own, made worse and longer by the reports."""
    if not reports:
        return base
    outcome = max(
        [base.outcome, *(item[0] for item in reports.values())], key=_SEVERITY.__getitem__
    )
    # Most severe first, so a status cut to MESSAGE_LIMIT still names the problem.
    ranked = sorted(
        [(base.outcome, base.message), *reports.values()], key=lambda item: -_SEVERITY[item[0]]
    )
    texts = [text for _, text in ranked]
    message = "; ".join(dict.fromkeys(text for text in texts if text))[:MESSAGE_LIMIT]
    return replace(base, outcome=outcome, message=message)


class StatusBoard:
    def __init__(self, info: OperatorInfo) -> None:
        self._lock = threading.Lock()
        self._info = info
        self._objects: dict[Key, ObjectStatus] = {}  # as published
        self._base: dict[Key, ObjectStatus] = {}  # the reactor's own
        self._reports: dict[Key, dict[str, tuple[Outcome, str]]] = {}
        self._events: deque[OperatorEvent] = deque(maxlen=EVENT_LOG_LIMIT)
        self._events_by_level: Counter[EventLevel] = Counter()
        self._dirty: set[Key] = set()
        self._removed: set[Key] = set()
        self._events_dirty = False
        self._info_dirty = True
        self.changed = threading.Event()
        self.ready = False

    # --- writers ------------------------------------------------------

    def set_status(self, status: ObjectStatus) -> None:
        """The reactor's status of an object (reports are combined into it)."""
        key: Key = (status.kind, status.name)
        with self._lock:
            self._base[key] = status
            self._refresh(key)

    def report(
        self, kind: StatusKind, name: str, source: str, outcome: Outcome, message: str
    ) -> None:
        """A timer's or daemon's finding about an object; ok without a message clears it."""
        key: Key = (kind, name)
        withdrawing = outcome is Outcome.OK and not message
        with self._lock:
            if withdrawing and key not in self._reports:
                # Nothing to withdraw; above all, never resurrect a removed object.
                return
            reports = self._reports.setdefault(key, {})
            if withdrawing:
                reports.pop(source, None)
            else:
                reports[source] = (outcome, message[:MESSAGE_LIMIT])
            if not reports:
                del self._reports[key]
            if key not in self._base:
                # Not processed yet (or unknown): a status of its own until it is.
                self._base[key] = ObjectStatus(kind=kind, name=name, id="")
            self._refresh(key)

    def _refresh(self, key: Key) -> None:
        """Under the lock: recompute what is published for `key`."""
        status = combine_reports(self._base[key], self._reports.get(key, {}))
        if self._objects.get(key) == status:
            return
        self._objects[key] = status
        self._dirty.add(key)
        self._removed.discard(key)
        self.changed.set()

    def remove(self, key: Key) -> None:
        with self._lock:
            self._base.pop(key, None)
            self._reports.pop(key, None)
            if self._objects.pop(key, None) is None:
                return
            self._dirty.discard(key)
            self._removed.add(key)
        self.changed.set()

    def republish_all(self) -> None:
        """Have the publisher send everything again, not only what changed: Consul
        came back from an outage and may have lost it (a dev agent starts empty)."""
        with self._lock:
            self._dirty.update(self._objects)
            self._events_dirty = True
            self._info_dirty = True
        self.changed.set()

    def record(self, kind: str, name: str, level: int, message: str) -> None:
        """An entry in the operator's event log (and the process log)."""
        extra = about(kind, name) if name else None
        logger.log(level, "%s%s", f"[{kind} {name}] " if name else "", message, extra=extra)
        event = OperatorEvent(
            time=time.time(),
            kind=kind,
            object=name,
            level=_LEVELS.get(level, EventLevel.INFO),
            message=message[:2000],
        )
        with self._lock:
            self._events.append(event)
            self._events_by_level[event.level] += 1
            self._events_dirty = True
        self.changed.set()

    def update_info(self, **changes: Any) -> None:
        with self._lock:
            data = self._info.to_dict() | changes
            self._info = OperatorInfo.from_dict(data)
            self._info_dirty = True
        self.changed.set()

    # --- readers ------------------------------------------------------

    def get(self, key: Key) -> ObjectStatus | None:
        """The status as published."""
        with self._lock:
            return self._objects.get(key)

    def base(self, key: Key) -> ObjectStatus | None:
        """The reactor's own status, without reports."""
        with self._lock:
            return self._base.get(key)

    @property
    def info(self) -> OperatorInfo:
        with self._lock:
            return self._info

    def events_by_level(self) -> dict[EventLevel, int]:
        """Event-log entries since start, including those the bounded log dropped."""
        with self._lock:
            return dict(self._events_by_level)

    def snapshot(self) -> StatusSnapshot:
        with self._lock:
            return StatusSnapshot(
                operator=self._info,
                objects=tuple(self._objects[key] for key in sorted(self._objects)),
                events=tuple(self._events),
            )

    def take_changes(
        self,
    ) -> tuple[list[ObjectStatus], list[Key], list[OperatorEvent] | None, OperatorInfo | None]:
        """What changed since the last call: statuses, removed keys, the event log, info."""
        with self._lock:
            statuses = [self._objects[key] for key in self._dirty if key in self._objects]
            removed = list(self._removed)
            events = list(self._events) if self._events_dirty else None
            info = self._info if self._info_dirty else None
            self._dirty.clear()
            self._removed.clear()
            self._events_dirty = False
            self._info_dirty = False
            self.changed.clear()
        return statuses, removed, events, info

    def restore_changes(self, statuses: list[ObjectStatus], removed: list[Key]) -> None:
        """Mark again what could not be published, so the next round retries it."""
        with self._lock:
            for status in statuses:
                self._dirty.add((status.kind, status.name))
            self._removed.update(removed)
            self._events_dirty = True
            self._info_dirty = True
        # The publisher waits for `changed`: without it the retry would wait for
        # the next, unrelated change.
        self.changed.set()


class ObjectLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The `logger` kwarg: messages go to the process log and the object's event log."""

    def __init__(self, board: StatusBoard, kind: str, name: str) -> None:
        super().__init__(logging.getLogger(f"swarmop.{kind}"), about(kind, name))
        self._board = board
        self._kind = kind
        self._name = name

    def isEnabledFor(self, level: int) -> bool:
        # INFO and above always reach the event log, whatever the process log level
        # (the board passes them on to the process log, which filters as configured).
        return level >= logging.INFO or self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = f"{msg} {args!r}"  # a bad format string still reaches the log
        self._board.record(self._kind, self._name, level, text)
