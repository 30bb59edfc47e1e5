"""Table rows as plain cells, the filter language, and row diffing.

Pure: a view turns records into `Row`s keyed by Swarm ID; `diff_rows` says
which rows to add, update (and which cells) or remove, so tables are updated
in place and never rebuilt wholesale.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from swarmop.tui.model import (
    EventRecord,
    NodeRecord,
    ServiceRecord,
    TaskRecord,
)

R = TypeVar("R")

DRIFT = "bold red"
PENDING = "yellow"
OK = "green"
DIM = "dim"


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""
    sort: float | None = None  # overrides the natural order of `text` (e.g. event times)

    def sort_key(self) -> tuple[int, float, tuple[tuple[int, int | str], ...]]:
        if self.sort is not None:
            return (0, self.sort, ())
        return (1, 0.0, natural_key(self.text))


Row = tuple[Cell, ...]


@dataclass(frozen=True)
class Column(Generic[R]):
    key: str
    label: str
    render: Callable[[R, float], Cell]


@dataclass(frozen=True)
class RowDiff:
    added: tuple[str, ...]
    changed: Mapping[str, tuple[int, ...]]  # row key -> indexes of cells that changed
    removed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


def diff_rows(shown: Mapping[str, Row], wanted: Mapping[str, Row]) -> RowDiff:
    added = tuple(key for key in wanted if key not in shown)
    removed = tuple(key for key in shown if key not in wanted)
    changed: dict[str, tuple[int, ...]] = {}
    for key, row in wanted.items():
        old = shown.get(key)
        if old is None or old == row:
            continue
        if len(old) != len(row):
            changed[key] = tuple(range(len(row)))
        else:
            changed[key] = tuple(i for i, (a, b) in enumerate(zip(old, row, strict=True)) if a != b)
    return RowDiff(added=added, changed=changed, removed=removed)


# --- filter ---------------------------------------------------------------


def row_matches(query: str, labels: Iterable[str], row: Row) -> bool:
    """`web kind:service` : every word must match; `col:text` looks only in that column.

    Matching is a case-insensitive substring test. A column name may be any
    prefix of a column's label, so `obj:web` finds `object`.
    """
    words = query.split()
    if not words:
        return True
    names = [label.lower() for label in labels]
    texts = [cell.text.lower() for cell in row]
    for word in words:
        column, sep, needle = word.lower().partition(":")
        if sep and column:
            picked = [t for name, t in zip(names, texts, strict=False) if name.startswith(column)]
            if not picked or not any(needle in text for text in picked):
                return False
        elif not any(word.lower() in text for text in texts):
            return False
    return True


# --- sorting --------------------------------------------------------------

_NUMBER = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort `web-10` after `web-9` and `12/12` after `2/2`."""
    parts = _NUMBER.split(text.lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


# --- cells ----------------------------------------------------------------


def age(seconds: float | None, now: float) -> str:
    if seconds is None:
        return "-"
    delta = max(0, int(now - seconds))
    if delta < 60:
        return f"{delta}s"
    if delta < 3600:
        return f"{delta // 60}m"
    if delta < 86400:
        return f"{delta // 3600}h"
    return f"{delta // 86400}d"


def clock(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%H:%M:%S")


def _reconcile_cell(outcome: str | None, message: str, retries: int) -> Cell:
    if outcome is None:
        return Cell("-", DIM)
    text = outcome
    if retries:
        text += f" r{retries}"
    if message and outcome != "ok":
        text += f": {message}"
    style = {"ok": OK, "pending": PENDING}.get(outcome, DRIFT)
    return Cell(text, style)


def scale_converged(service: ServiceRecord, target: int) -> bool:
    return bool(service.spec_replicas == target and service.running == target)


def service_replicas_cell(service: ServiceRecord, scaling_to: int | None) -> Cell:
    if service.spec_replicas is None:
        return Cell(f"{service.running} (global)")
    text = f"{service.running}/{service.spec_replicas}"
    if scaling_to is not None and not scale_converged(service, scaling_to):
        return Cell(f"{text} -> {scaling_to}", PENDING)
    if service.drift:
        return Cell(text, DRIFT)
    if service.converging:
        return Cell(text, PENDING)
    return Cell(text)


def desired_cell(wanted_drift: bool, description: str) -> Cell:
    return Cell(description, DRIFT if wanted_drift else "")


NODE_COLUMNS: tuple[Column[NodeRecord], ...] = (
    Column("hostname", "hostname", lambda n, _: Cell(n.hostname, "bold")),
    Column("role", "role", lambda n, _: Cell(n.role)),
    Column("manager", "manager", lambda n, _: Cell(n.manager_status or "-")),
    Column(
        "availability",
        "availability",
        lambda n, _: Cell(n.availability, DRIFT if n.drift else ""),
    ),
    Column(
        "desired",
        "desired avail (source)",
        lambda n, _: desired_cell(n.drift, n.desired_availability.describe()),
    ),
    Column("state", "state", lambda n, _: Cell(n.state, "" if n.state == "ready" else DRIFT)),
    Column("address", "address", lambda n, _: Cell(n.address)),
    Column("engine", "engine", lambda n, _: Cell(n.engine)),
    Column("tasks", "tasks", lambda n, _: Cell(str(n.running_tasks))),
    Column(
        "labels",
        "labels",
        lambda n, _: Cell(",".join(f"{k}={v}" for k, v in n.labels) or "-"),
    ),
    Column(
        "reconcile",
        "reconcile",
        lambda n, _: _reconcile_cell(
            n.reconcile.outcome if n.reconcile else None,
            n.reconcile.message if n.reconcile else "",
            n.reconcile.retries if n.reconcile else 0,
        ),
    ),
)


def service_columns(
    scaling: Mapping[str, int],
) -> tuple[Column[ServiceRecord], ...]:
    return (
        Column("name", "name", lambda s, _: Cell(s.name, "bold")),
        Column("mode", "mode", lambda s, _: Cell(s.mode)),
        Column(
            "replicas",
            "running/spec",
            lambda s, _: service_replicas_cell(s, scaling.get(s.id)),
        ),
        Column(
            "desired",
            "desired (source)",
            lambda s, _: desired_cell(s.drift, s.desired_replicas.describe()),
        ),
        Column("image", "image", lambda s, _: Cell(s.image)),
        Column("placement", "placement", lambda s, _: Cell(",".join(s.placement) or "-")),
        Column("proxy", "proxy host", lambda s, _: Cell(s.proxy_host or "-")),
        Column(
            "reconcile",
            "reconcile",
            lambda s, _: _reconcile_cell(
                s.reconcile.outcome if s.reconcile else None,
                (s.reconcile.message if s.reconcile else "") or (s.desired_replicas.error or ""),
                s.reconcile.retries if s.reconcile else 0,
            ),
        ),
    )


def _task_state_style(task: TaskRecord) -> str:
    if task.state == "running":
        return OK
    if task.state in {"failed", "rejected", "orphaned"}:
        return DRIFT
    if task.desired_state == "running":
        return PENDING
    return DIM


TASK_COLUMNS: tuple[Column[TaskRecord], ...] = (
    Column("id", "task", lambda t, _: Cell(t.id[:12])),
    Column("slot", "slot", lambda t, _: Cell("-" if t.slot is None else str(t.slot))),
    Column("node", "node", lambda t, _: Cell(t.node_name or "-")),
    Column("state", "state", lambda t, _: Cell(t.state, _task_state_style(t))),
    Column("desired", "desired state", lambda t, _: Cell(t.desired_state)),
    Column("address", "address", lambda t, _: Cell(t.address or "-")),
    Column("error", "error", lambda t, _: Cell(t.error, DRIFT if t.error else "")),
    Column(
        "age",
        "age",
        lambda t, now: Cell(age(t.timestamp, now), sort=-(t.timestamp or 0.0)),
    ),
)


def _event_style(event: EventRecord) -> str:
    if event.action in {"error", "remove"}:
        return DRIFT
    if event.action == "warning":
        return PENDING
    return ""


EVENT_COLUMNS: tuple[Column[EventRecord], ...] = (
    Column("time", "time", lambda e, _: Cell(clock(e.time), sort=e.time)),
    Column(
        "origin", "origin", lambda e, _: Cell(e.origin, "cyan" if e.origin == "operator" else "")
    ),
    Column("kind", "kind", lambda e, _: Cell(e.kind)),
    Column("action", "action", lambda e, _: Cell(e.action, _event_style(e))),
    Column("object", "object", lambda e, _: Cell(e.object or "-")),
    Column("message", "message", lambda e, _: Cell(e.message)),
)


def render_rows(
    records: Mapping[str, R],
    columns: tuple[Column[R], ...],
    query: str = "",
    now: float | None = None,
) -> dict[str, Row]:
    """The visible rows of a view: records rendered, then filtered."""
    moment = time.time() if now is None else now
    labels = [column.label for column in columns]
    rows: dict[str, Row] = {}
    for key, record in records.items():
        row = tuple(column.render(record, moment) for column in columns)
        if row_matches(query, labels, row):
            rows[key] = row
    return rows
