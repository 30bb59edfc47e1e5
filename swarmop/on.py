"""The decorators: ``@swarmop.on.create("service")`` and friends.

Every object decorator takes the same filters:

- ``labels={"name": value | PRESENT | ABSENT | callable}``
- ``when=callable(**kwargs) -> bool``
- ``field="spec.Mode.Replicated.Replicas"`` (dotted path into ``{"spec": ..., "desired": ...}``)
  with optional ``old=`` / ``new=`` (value, PRESENT, ABSENT or callable)

and the retry settings ``retries=`` (None: forever), ``timeout=`` (seconds since
the first attempt; crashes and TemporaryErrors both count towards these two),
``backoff=`` (seconds between crashed attempts), ``id=``
and ``registry=`` (default: the global registry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from swarmop.filters import LabelsFilter, check_field
from swarmop.registry import (
    DEFAULT_BACKOFF,
    RESOURCES,
    Handler,
    HandlerFn,
    Reason,
    Registry,
    Resource,
    WhenFn,
    default_registry,
    handler_id,
)

_UNSET: Any = object()
Decorator = Callable[[HandlerFn], HandlerFn]


def _resource(resource: str) -> Resource:
    if resource == "service":
        return "service"
    if resource == "node":
        return "node"
    raise ValueError(f"unknown resource {resource!r}; expected one of {', '.join(RESOURCES)}")


def _object_decorator(
    reason: Reason,
    resource: str,
    *,
    id: str | None,
    labels: LabelsFilter | None,
    when: WhenFn | None,
    field: str | tuple[str, ...] | None,
    old: Any,
    new: Any,
    retries: int | None,
    timeout: float | None,
    backoff: float,
    registry: Registry | None,
    interval: float | None = None,
    initial_delay: float = 0.0,
) -> Decorator:
    kind = _resource(resource)
    check_field(field)
    if (old is not _UNSET or new is not _UNSET) and field is None:
        raise ValueError("old= and new= need field=")

    def decorator(fn: HandlerFn) -> HandlerFn:
        (registry or default_registry).register(
            Handler(
                id=handler_id(fn, id),
                fn=fn,
                reason=reason,
                resource=kind,
                labels=labels,
                when=when,
                field=field,
                old=None if old is _UNSET else old,
                new=None if new is _UNSET else new,
                has_old=old is not _UNSET,
                has_new=new is not _UNSET,
                retries=retries,
                timeout=timeout,
                backoff=backoff,
                interval=interval,
                initial_delay=initial_delay,
            )
        )
        return fn

    return decorator


def create(
    resource: str,
    *,
    id: str | None = None,
    labels: LabelsFilter | None = None,
    when: WhenFn | None = None,
    field: str | tuple[str, ...] | None = None,
    old: Any = _UNSET,
    new: Any = _UNSET,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float = DEFAULT_BACKOFF,
    registry: Registry | None = None,
) -> Decorator:
    """Runs once when the operator first sees an object (never handled before)."""
    return _object_decorator(Reason.CREATE, resource, **_pack(locals()))


def update(
    resource: str,
    *,
    id: str | None = None,
    labels: LabelsFilter | None = None,
    when: WhenFn | None = None,
    field: str | tuple[str, ...] | None = None,
    old: Any = _UNSET,
    new: Any = _UNSET,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float = DEFAULT_BACKOFF,
    registry: Registry | None = None,
) -> Decorator:
    """Runs when the object's essence (spec or desired state) differs from the last handled."""
    return _object_decorator(Reason.UPDATE, resource, **_pack(locals()))


def delete(
    resource: str,
    *,
    id: str | None = None,
    labels: LabelsFilter | None = None,
    when: WhenFn | None = None,
    field: str | tuple[str, ...] | None = None,
    old: Any = _UNSET,
    new: Any = _UNSET,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float = DEFAULT_BACKOFF,
    registry: Registry | None = None,
) -> Decorator:
    """Runs after the object is gone (Swarm has no finalizers: it cannot block deletion)."""
    return _object_decorator(Reason.DELETE, resource, **_pack(locals()))


def resume(
    resource: str,
    *,
    id: str | None = None,
    labels: LabelsFilter | None = None,
    when: WhenFn | None = None,
    field: str | tuple[str, ...] | None = None,
    old: Any = _UNSET,
    new: Any = _UNSET,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float = DEFAULT_BACKOFF,
    registry: Registry | None = None,
) -> Decorator:
    """Runs once per operator start for each already-handled object."""
    return _object_decorator(Reason.RESUME, resource, **_pack(locals()))


def field(
    resource: str,
    *,
    field: str | tuple[str, ...],
    id: str | None = None,
    labels: LabelsFilter | None = None,
    when: WhenFn | None = None,
    old: Any = _UNSET,
    new: Any = _UNSET,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float = DEFAULT_BACKOFF,
    registry: Registry | None = None,
) -> Decorator:
    """Runs when one field's value changes (on creation too, from None)."""
    return _object_decorator(Reason.FIELD, resource, **_pack(locals()))


def event(
    resource: str,
    *,
    id: str | None = None,
    labels: LabelsFilter | None = None,
    when: WhenFn | None = None,
    registry: Registry | None = None,
) -> Decorator:
    """Runs for every raw notification about the object; no retries, no progress."""
    return _object_decorator(
        Reason.EVENT,
        resource,
        id=id,
        labels=labels,
        when=when,
        field=None,
        old=_UNSET,
        new=_UNSET,
        retries=0,
        timeout=None,
        backoff=0.0,
        registry=registry,
    )


def timer(
    resource: str,
    *,
    interval: float,
    initial_delay: float = 0.0,
    id: str | None = None,
    labels: LabelsFilter | None = None,
    when: WhenFn | None = None,
    registry: Registry | None = None,
) -> Decorator:
    """Runs every `interval` seconds for each matching object while it exists."""
    if interval <= 0:
        raise ValueError("timer interval must be > 0")
    return _object_decorator(
        Reason.TIMER,
        resource,
        id=id,
        labels=labels,
        when=when,
        field=None,
        old=_UNSET,
        new=_UNSET,
        retries=None,
        timeout=None,
        backoff=0.0,
        registry=registry,
        interval=interval,
        initial_delay=initial_delay,
    )


def daemon(
    resource: str,
    *,
    initial_delay: float = 0.0,
    backoff: float = DEFAULT_BACKOFF,
    id: str | None = None,
    labels: LabelsFilter | None = None,
    when: WhenFn | None = None,
    registry: Registry | None = None,
) -> Decorator:
    """Runs for as long as a matching object exists; restarted after `backoff` if it exits
    with an error. A sync daemon polls ``stopped`` (``stopped.wait(seconds)`` returns True
    when it must end) in a thread of its own; an async daemon is cancelled.

    `when=` is checked on every pass over the object: the daemon starts once it is
    true and is stopped when it turns false."""
    return _object_decorator(
        Reason.DAEMON,
        resource,
        id=id,
        labels=labels,
        when=when,
        field=None,
        old=_UNSET,
        new=_UNSET,
        retries=None,
        timeout=None,
        backoff=backoff,
        registry=registry,
        initial_delay=initial_delay,
    )


def _operator_decorator(
    reason: Reason,
    *,
    id: str | None,
    retries: int | None,
    timeout: float | None,
    backoff: float,
    registry: Registry | None,
) -> Decorator:
    def decorator(fn: HandlerFn) -> HandlerFn:
        (registry or default_registry).register(
            Handler(
                id=handler_id(fn, id),
                fn=fn,
                reason=reason,
                retries=retries,
                timeout=timeout,
                backoff=backoff,
            )
        )
        return fn

    return decorator


def startup(
    *,
    id: str | None = None,
    retries: int | None = None,
    timeout: float | None = None,
    backoff: float = DEFAULT_BACKOFF,
    registry: Registry | None = None,
) -> Decorator:
    """Runs before any object handler; the operator waits for all to succeed."""
    return _operator_decorator(
        Reason.STARTUP, id=id, retries=retries, timeout=timeout, backoff=backoff, registry=registry
    )


def cleanup(
    *, id: str | None = None, timeout: float | None = None, registry: Registry | None = None
) -> Decorator:
    """Runs once at shutdown, after object handlers have stopped."""
    return _operator_decorator(
        Reason.CLEANUP, id=id, retries=0, timeout=timeout, backoff=0.0, registry=registry
    )


def probe(*, id: str | None = None, registry: Registry | None = None) -> Decorator:
    """Its return value is reported by ``GET /healthz`` (an exception makes it unhealthy)."""
    return _operator_decorator(
        Reason.PROBE, id=id, retries=0, timeout=None, backoff=0.0, registry=registry
    )


def _pack(scope: dict[str, Any]) -> dict[str, Any]:
    scope = dict(scope)
    scope.pop("resource")
    return scope


__all__ = [
    "cleanup",
    "create",
    "daemon",
    "delete",
    "event",
    "field",
    "probe",
    "resume",
    "startup",
    "timer",
    "update",
]
