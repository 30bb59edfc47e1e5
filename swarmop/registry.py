"""The handler registry: what the decorators record and the reactor looks up."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from swarmop.filters import LabelsFilter, ValueFilter

Resource = Literal["service", "node"]
RESOURCES: tuple[Resource, ...] = ("service", "node")
HandlerFn = Callable[..., Any]
WhenFn = Callable[..., bool]


class Reason(StrEnum):
    """Why a handler runs; also the `reason` keyword argument."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RESUME = "resume"
    FIELD = "field"
    EVENT = "event"
    TIMER = "timer"
    DAEMON = "daemon"
    STARTUP = "startup"
    CLEANUP = "cleanup"
    PROBE = "probe"


CHANGE_REASONS = (Reason.CREATE, Reason.UPDATE, Reason.DELETE, Reason.RESUME, Reason.FIELD)
OPERATOR_REASONS = (Reason.STARTUP, Reason.CLEANUP, Reason.PROBE)

DEFAULT_BACKOFF = 15.0


@dataclass(frozen=True)
class Handler:
    id: str
    fn: HandlerFn
    reason: Reason
    resource: Resource | None = None
    labels: LabelsFilter | None = None
    when: WhenFn | None = None
    field: str | tuple[str, ...] | None = None
    old: ValueFilter = None
    new: ValueFilter = None
    has_old: bool = False
    has_new: bool = False
    retries: int | None = None
    timeout: float | None = None
    backoff: float = DEFAULT_BACKOFF
    interval: float | None = None
    initial_delay: float = 0.0

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


class Registry:
    """Handlers in registration order. Thread-safe: modules may load from any thread."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()

    def register(self, handler: Handler) -> Handler:
        if handler.resource is not None and handler.resource not in RESOURCES:
            raise ValueError(
                f"unknown resource {handler.resource!r}; expected one of {', '.join(RESOURCES)}"
            )
        if handler.retries is not None and handler.retries < 0:
            raise ValueError("retries must be >= 0")
        if handler.timeout is not None and handler.timeout <= 0:
            raise ValueError("timeout must be > 0")
        if handler.backoff < 0:
            raise ValueError("backoff must be >= 0")
        with self._lock:
            if any(
                existing.id == handler.id and existing.resource == handler.resource
                for existing in self._handlers
            ):
                raise ValueError(
                    f"a handler with id {handler.id!r} is already registered for "
                    f"{handler.resource or 'the operator'}; pass id= to tell them apart"
                )
            self._handlers.append(handler)
        return handler

    def all(self) -> list[Handler]:
        with self._lock:
            return list(self._handlers)

    def select(self, reasons: Iterable[Reason], resource: Resource | None = None) -> list[Handler]:
        wanted = set(reasons)
        return [
            handler
            for handler in self.all()
            if handler.reason in wanted and (resource is None or handler.resource == resource)
        ]

    def resources(self) -> set[Resource]:
        return {handler.resource for handler in self.all() if handler.resource is not None}

    def clear(self) -> None:
        with self._lock:
            self._handlers.clear()


default_registry = Registry()


def handler_id(fn: HandlerFn, explicit: str | None) -> str:
    if explicit:
        return explicit
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn)))


__all__ = [
    "CHANGE_REASONS",
    "OPERATOR_REASONS",
    "RESOURCES",
    "Handler",
    "HandlerFn",
    "Reason",
    "Registry",
    "Resource",
    "default_registry",
    "handler_id",
]
