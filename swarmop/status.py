"""The status contract: what the operator publishes and the TUI reads.

Where it lives (``<prefix>`` defaults to ``swarmop``):

- ``<prefix>/status/services/<name>`` and ``<prefix>/status/nodes/<hostname>``:
  one :class:`ObjectStatus` as JSON, in Consul when configured, and always in
  ``GET /status`` of the operator's HTTP endpoint.
- ``<prefix>/events``: a JSON list of :class:`OperatorEvent`, oldest first,
  bounded to :data:`EVENT_LOG_LIMIT` entries.
- ``<prefix>/operator``: one :class:`OperatorInfo` as JSON.

``GET /status`` returns :class:`StatusSnapshot` as JSON:
``{"operator": {...}, "objects": [{...}, ...], "events": [{...}, ...]}``.

Times are Unix seconds (float, UTC). Decoding is tolerant of unknown keys (a
newer operator may add some) and raises :class:`StatusDecodeError` for
anything that is not the shape below, never another exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeVar

EVENT_LOG_LIMIT = 500

_E = TypeVar("_E", bound=StrEnum)

StatusKind = Literal["service", "node"]
_KINDS: tuple[str, ...] = ("service", "node")
_COLLECTIONS: Mapping[str, str] = {"service": "services", "node": "nodes"}


class Outcome(StrEnum):
    OK = "ok"  # the last handler run finished
    PENDING = "pending"  # waiting for a retry, or not finished yet
    ERROR = "error"  # gave up: permanent error or retries exhausted
    BLOCKED = "blocked"  # the operator will not act (bad desired state, ambiguity)


class EventLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class StatusDecodeError(ValueError):
    """Published status that does not have the documented shape."""


@dataclass(frozen=True)
class DesiredEntry:
    value: Any
    source: str  # "consul" | "label" | "default"


@dataclass(frozen=True)
class ObjectStatus:
    kind: StatusKind
    name: str
    id: str
    last_run: float | None = None
    handler: str | None = None
    outcome: Outcome = Outcome.OK
    message: str = ""
    retries: int = 0
    next_retry: float | None = None
    desired: Mapping[str, DesiredEntry] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "last_run": self.last_run,
            "handler": self.handler,
            "outcome": self.outcome.value,
            "message": self.message,
            "retries": self.retries,
            "next_retry": self.next_retry,
            "desired": {
                name: {"value": entry.value, "source": entry.source}
                for name, entry in self.desired.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Any) -> ObjectStatus:
        obj = _mapping(data, "object status")
        kind = _str(obj, "kind")
        if kind not in _KINDS:
            raise StatusDecodeError(f"object status: kind must be service or node, got {kind!r}")
        desired_raw = _mapping(obj.get("desired", {}), "object status desired")
        desired: dict[str, DesiredEntry] = {}
        for name, entry in desired_raw.items():
            entry_map = _mapping(entry, f"desired field {name!r}")
            desired[str(name)] = DesiredEntry(
                value=entry_map.get("value"), source=_str(entry_map, "source")
            )
        return cls(
            kind="service" if kind == "service" else "node",
            name=_str(obj, "name"),
            id=_str(obj, "id"),
            last_run=_opt_float(obj, "last_run"),
            handler=_opt_str(obj, "handler"),
            outcome=_enum(Outcome, obj.get("outcome", "ok"), "outcome"),
            message=str(obj.get("message") or ""),
            retries=_int(obj, "retries", 0),
            next_retry=_opt_float(obj, "next_retry"),
            desired=desired,
        )


@dataclass(frozen=True)
class OperatorEvent:
    time: float
    kind: str  # "service" | "node" | "operator"
    object: str  # object name, or "" for operator-wide events
    level: EventLevel
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "kind": self.kind,
            "object": self.object,
            "level": self.level.value,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Any) -> OperatorEvent:
        obj = _mapping(data, "event")
        time = _opt_float(obj, "time")
        if time is None:
            raise StatusDecodeError("event: missing time")
        return cls(
            time=time,
            kind=_str(obj, "kind"),
            object=str(obj.get("object") or ""),
            level=_enum(EventLevel, obj.get("level", "info"), "level"),
            message=str(obj.get("message") or ""),
        )


@dataclass(frozen=True)
class OperatorInfo:
    instance: str
    pid: int
    host: str
    started: float
    last_resync: float | None = None
    leader: bool = True
    docker_error: str | None = None  # set while the Docker API is unreachable
    consul_error: str | None = None  # set while Consul is unreachable

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "pid": self.pid,
            "host": self.host,
            "started": self.started,
            "last_resync": self.last_resync,
            "leader": self.leader,
            "docker_error": self.docker_error,
            "consul_error": self.consul_error,
        }

    @classmethod
    def from_dict(cls, data: Any) -> OperatorInfo:
        obj = _mapping(data, "operator info")
        started = _opt_float(obj, "started")
        if started is None:
            raise StatusDecodeError("operator info: missing started")
        return cls(
            instance=_str(obj, "instance"),
            pid=_int(obj, "pid", 0),
            host=_str(obj, "host"),
            started=started,
            last_resync=_opt_float(obj, "last_resync"),
            leader=bool(obj.get("leader", True)),
            docker_error=_opt_str(obj, "docker_error"),
            consul_error=_opt_str(obj, "consul_error"),
        )


@dataclass(frozen=True)
class StatusSnapshot:
    """The body of ``GET /status``."""

    operator: OperatorInfo
    objects: Sequence[ObjectStatus] = ()
    events: Sequence[OperatorEvent] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "operator": self.operator.to_dict(),
            "objects": [status.to_dict() for status in self.objects],
            "events": [event.to_dict() for event in self.events],
        }

    @classmethod
    def from_dict(cls, data: Any) -> StatusSnapshot:
        obj = _mapping(data, "status snapshot")
        return cls(
            operator=OperatorInfo.from_dict(obj.get("operator")),
            objects=tuple(ObjectStatus.from_dict(item) for item in _list(obj, "objects")),
            events=tuple(OperatorEvent.from_dict(item) for item in _list(obj, "events")),
        )


# --- keys -----------------------------------------------------------------


def status_key(prefix: str, kind: StatusKind, name: str) -> str:
    return f"{prefix}/status/{_COLLECTIONS[kind]}/{name}"


def status_prefix(prefix: str) -> str:
    """The folder holding every object status (recurse on it to list them all)."""
    return f"{prefix}/status/"


def events_key(prefix: str) -> str:
    return f"{prefix}/events"


def operator_key(prefix: str) -> str:
    return f"{prefix}/operator"


def member_key(prefix: str, instance: str) -> str:
    """One key per running operator instance, held by its Consul session (HA)."""
    return f"{prefix}/operators/{instance}"


def parse_status_key(prefix: str, key: str) -> tuple[StatusKind, str] | None:
    """(kind, name) of a status key, or None when the key is not one."""
    head = status_prefix(prefix)
    if not key.startswith(head):
        return None
    collection, _, name = key[len(head) :].partition("/")
    if not name or "/" in name:
        return None
    if collection == "services":
        return ("service", name)
    if collection == "nodes":
        return ("node", name)
    return None


# --- JSON codec -----------------------------------------------------------


def encode(value: ObjectStatus | OperatorInfo | StatusSnapshot) -> bytes:
    return json.dumps(value.to_dict(), sort_keys=True, default=_json_default).encode()


def encode_events(events: Sequence[OperatorEvent]) -> bytes:
    bounded = list(events)[-EVENT_LOG_LIMIT:]
    return json.dumps([event.to_dict() for event in bounded], default=_json_default).encode()


def decode_object_status(raw: bytes | str) -> ObjectStatus:
    return ObjectStatus.from_dict(_loads(raw))


def decode_operator_info(raw: bytes | str) -> OperatorInfo:
    return OperatorInfo.from_dict(_loads(raw))


def decode_snapshot(raw: bytes | str) -> StatusSnapshot:
    return StatusSnapshot.from_dict(_loads(raw))


def decode_events(raw: bytes | str) -> list[OperatorEvent]:
    data = _loads(raw)
    if not isinstance(data, list):
        raise StatusDecodeError("event log: expected a JSON list")
    return [OperatorEvent.from_dict(item) for item in data]


# --- helpers --------------------------------------------------------------


def _json_default(value: Any) -> Any:
    # Desired values may be tuples or frozensets of plain values.
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    return str(value)


def _loads(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, TypeError) as error:
        raise StatusDecodeError(f"not valid JSON: {error}") from None


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StatusDecodeError(f"{what}: expected a JSON object")
    return value


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise StatusDecodeError(f"{key}: expected a JSON list")
    return value


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise StatusDecodeError(f"{key}: expected a string")
    return value


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise StatusDecodeError(f"{key}: expected a string or null")
    return value


def _opt_float(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatusDecodeError(f"{key}: expected a number or null")
    return float(value)


def _int(obj: Mapping[str, Any], key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StatusDecodeError(f"{key}: expected an integer")
    return value


def _enum(enum: type[_E], value: Any, what: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise StatusDecodeError(f"{what}: {value!r} is not one of {allowed}") from None
