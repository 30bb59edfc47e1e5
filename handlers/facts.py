"""From Docker's raw attributes to the plain facts the planners take (pure).

Handlers list services, nodes and tasks through the API and hand the raw
dicts here; nothing in this module talks to a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from swarmop.desired import DesiredState, merge_desired
from swarmop.views import NodeView, ServiceView, TaskView

from .availability_plan import NodeTask
from .placement_plan import NodeFacts, PlacementFacts, TaskPlacement
from .replicas_plan import APPLIED_REPLICAS_LABEL, HELD_REPLICAS_LABEL, ReplicaFacts

Attrs = Mapping[str, Any]


def field_error(desired: DesiredState, field: str) -> str | None:
    """The text of the error that keeps `field` from being acted on, if any."""
    found = [str(error) for error in desired.errors if error.field == field]
    return "; ".join(found) if found else None


def is_live(task: TaskView) -> bool:
    """A task Swarm wants running (it may still be starting)."""
    return task.desired_state == "running"


def is_running(task: TaskView) -> bool:
    return task.desired_state == "running" and task.running


def _order(spec: Mapping[str, Any], section: str) -> str | None:
    value = (spec.get(section) or {}).get("Order")
    return str(value) if value else None


def replica_facts(service: ServiceView, tasks: Iterable[TaskView]) -> ReplicaFacts:
    return ReplicaFacts(
        name=service.name,
        mode=service.mode,
        spec_replicas=service.replicas,
        update_state=service.update_state,
        running_tasks=sum(1 for task in tasks if is_running(task)),
        held_label=service.labels.get(HELD_REPLICAS_LABEL),
        applied_label=service.labels.get(APPLIED_REPLICAS_LABEL),
        update_order=_order(service.spec, "UpdateConfig"),
        rollback_order=_order(service.spec, "RollbackConfig"),
    )


def max_replicas(service: ServiceView) -> int:
    placement = (service.spec.get("TaskTemplate") or {}).get("Placement") or {}
    value = placement.get("MaxReplicas")
    return int(value) if isinstance(value, int) else 0


def placement_facts(service: ServiceView, tasks: Iterable[TaskView]) -> PlacementFacts:
    return PlacementFacts(
        name=service.name,
        mode=service.mode,
        spec_replicas=service.replicas,
        constraints=service.constraints,
        max_replicas=max_replicas(service),
        labels=dict(service.labels),
        tasks=tuple(
            TaskPlacement(task.id, task.node_id, task.slot) for task in tasks if is_live(task)
        ),
    )


def node_facts(node: NodeView) -> NodeFacts:
    attrs = node.attrs
    description = attrs.get("Description") or {}
    platform = description.get("Platform") or {}
    engine = description.get("Engine") or {}
    return NodeFacts(
        id=node.id,
        hostname=node.hostname,
        role=node.role,
        availability=node.availability,
        state=node.state,
        labels=dict(node.labels),
        engine_labels=dict(engine.get("Labels") or {}),
        os=str(platform.get("OS") or ""),
        arch=str(platform.get("Architecture") or ""),
    )


def running_by_service(
    services: Iterable[ServiceView], tasks: Iterable[TaskView]
) -> dict[str, int]:
    """Service name -> number of running tasks (every service present)."""
    names = {service.id: service.name for service in services}
    counts = dict.fromkeys(names.values(), 0)
    for task in tasks:
        name = names.get(task.service_id)
        if name is not None and is_running(task):
            counts[name] += 1
    return counts


def dependency_graph(desired_by_service: Mapping[str, DesiredState]) -> dict[str, tuple[str, ...]]:
    """Service name -> its depends_on (empty when unset or invalid)."""
    return {
        name: tuple(desired.value("depends_on") or ())
        for name, desired in desired_by_service.items()
    }


def labels_only_desired(service: ServiceView) -> DesiredState:
    """Desired state from labels alone, for services whose Consul keys are not at hand."""
    return merge_desired("service", service.labels, {})


def node_tasks(
    node_id: str,
    tasks: Iterable[TaskView],
    services: Sequence[ServiceView],
    desired_by_service: Mapping[str, DesiredState],
) -> list[NodeTask]:
    """The tasks Swarm wants running on `node_id`, with what the drain log needs."""
    by_id = {service.id: service for service in services}
    found: list[NodeTask] = []
    for task in tasks:
        if task.node_id != node_id or not is_live(task):
            continue
        service = by_id.get(task.service_id)
        name = service.name if service is not None else task.service_id[:12]
        desired = desired_by_service.get(name)
        found.append(
            NodeTask(
                id=task.id,
                service=name,
                slot=task.slot,
                global_mode=service is not None and service.mode == "global",
                role=desired.value("role") if desired is not None else None,
                db_cluster=bool(desired.value("db.cluster")) if desired is not None else False,
            )
        )
    return sorted(found, key=lambda task: (task.service, task.slot or 0, task.id))


def task_addresses(tasks: Iterable[TaskView]) -> list[dict[str, list[str]]]:
    """Per running task: network name -> its addresses there."""
    return [task.addresses for task in tasks if is_running(task)]


def network_names(service: ServiceView, names_by_id: Mapping[str, str]) -> list[str]:
    """Names of the networks in the service's spec (IDs resolved through `names_by_id`)."""
    return [names_by_id.get(target, target) for target in service.networks if target]
