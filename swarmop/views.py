"""Typed read-only views over the raw Docker attributes of services, nodes and tasks.

Each view keeps the raw attrs (``view.attrs``) for anything not wrapped here.
A service view can list its tasks through the reader it was built with; task
state is never part of an event (Swarm emits none), so it is read on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TaskLister = Callable[[str], Sequence[Mapping[str, Any]]]


def _get(data: Any, *path: str) -> Any:
    current = data
    for part in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


@dataclass(frozen=True)
class TaskView:
    attrs: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.attrs.get("ID", ""))

    @property
    def service_id(self) -> str:
        return str(self.attrs.get("ServiceID", ""))

    @property
    def node_id(self) -> str | None:
        value = self.attrs.get("NodeID")
        return str(value) if value else None

    @property
    def slot(self) -> int | None:
        value = self.attrs.get("Slot")
        return int(value) if isinstance(value, int) else None

    @property
    def state(self) -> str:
        """Actual state: new, pending, assigned, running, complete, failed, shutdown..."""
        return str(_get(self.attrs, "Status", "State") or "")

    @property
    def desired_state(self) -> str:
        return str(self.attrs.get("DesiredState", ""))

    @property
    def message(self) -> str:
        return str(_get(self.attrs, "Status", "Message") or "")

    @property
    def error(self) -> str:
        return str(_get(self.attrs, "Status", "Err") or "")

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def addresses(self) -> dict[str, list[str]]:
        """Task IPs per network name (CIDR suffix removed)."""
        found: dict[str, list[str]] = {}
        for attachment in self.attrs.get("NetworksAttachments") or []:
            name = str(_get(attachment, "Network", "Spec", "Name") or "")
            ips = [str(addr).split("/", 1)[0] for addr in attachment.get("Addresses") or []]
            if name:
                found.setdefault(name, []).extend(ips)
        return found


@dataclass(frozen=True)
class ServiceView:
    attrs: Mapping[str, Any]
    _list_tasks: TaskLister | None = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return str(self.attrs.get("ID", ""))

    @property
    def name(self) -> str:
        return str(_get(self.attrs, "Spec", "Name") or "")

    @property
    def version(self) -> int:
        return int(_get(self.attrs, "Version", "Index") or 0)

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.attrs.get("Spec") or {}

    @property
    def labels(self) -> Mapping[str, str]:
        return _get(self.attrs, "Spec", "Labels") or {}

    @property
    def mode(self) -> str:
        """'replicated', 'global', or the raw key for job modes."""
        mode = _get(self.attrs, "Spec", "Mode") or {}
        if "Replicated" in mode:
            return "replicated"
        if "Global" in mode:
            return "global"
        return next(iter(mode), "").lower() if mode else "replicated"

    @property
    def replicas(self) -> int | None:
        """Declared replicas of a replicated service; None for other modes."""
        value = _get(self.attrs, "Spec", "Mode", "Replicated", "Replicas")
        return int(value) if value is not None else None

    @property
    def image(self) -> str:
        return str(_get(self.attrs, "Spec", "TaskTemplate", "ContainerSpec", "Image") or "")

    @property
    def constraints(self) -> tuple[str, ...]:
        value = _get(self.attrs, "Spec", "TaskTemplate", "Placement", "Constraints") or []
        return tuple(str(item) for item in value)

    @property
    def networks(self) -> tuple[str, ...]:
        """Network IDs (or names as written) the service's tasks attach to."""
        value = _get(self.attrs, "Spec", "TaskTemplate", "Networks") or []
        return tuple(str(item.get("Target", "")) for item in value if isinstance(item, Mapping))

    @property
    def update_state(self) -> str | None:
        """The rolling update state (updating, completed, paused, ...) if any."""
        value = _get(self.attrs, "UpdateStatus", "State")
        return str(value) if value else None

    def tasks(self) -> list[TaskView]:
        """The service's tasks as listed now (a blocking call to the manager)."""
        if self._list_tasks is None:
            raise RuntimeError("this service view has no task reader")
        return [TaskView(attrs) for attrs in self._list_tasks(self.id)]

    def running_tasks(self) -> list[TaskView]:
        return [task for task in self.tasks() if task.running and task.desired_state == "running"]


@dataclass(frozen=True)
class NodeView:
    attrs: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.attrs.get("ID", ""))

    @property
    def hostname(self) -> str:
        return str(_get(self.attrs, "Description", "Hostname") or "")

    name = hostname

    @property
    def version(self) -> int:
        return int(_get(self.attrs, "Version", "Index") or 0)

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.attrs.get("Spec") or {}

    @property
    def labels(self) -> Mapping[str, str]:
        return _get(self.attrs, "Spec", "Labels") or {}

    @property
    def role(self) -> str:
        return str(_get(self.attrs, "Spec", "Role") or "")

    @property
    def availability(self) -> str:
        return str(_get(self.attrs, "Spec", "Availability") or "")

    @property
    def state(self) -> str:
        """ready, down, unknown, disconnected."""
        return str(_get(self.attrs, "Status", "State") or "")

    @property
    def address(self) -> str:
        return str(_get(self.attrs, "Status", "Addr") or "")

    @property
    def is_leader(self) -> bool:
        return bool(_get(self.attrs, "ManagerStatus", "Leader"))


ObjectView = ServiceView | NodeView


def object_name(kind: str, attrs: Mapping[str, Any]) -> str:
    if kind == "service":
        return str(_get(attrs, "Spec", "Name") or "")
    return str(_get(attrs, "Description", "Hostname") or "")


__all__ = ["NodeView", "ObjectView", "ServiceView", "TaskLister", "TaskView", "object_name"]
