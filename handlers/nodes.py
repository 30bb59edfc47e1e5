"""The node handler: `swarmop.availability` drives the node's availability."""

from __future__ import annotations

import logging
from typing import Any

import swarmop
from swarmop.desired import DesiredState

from . import facts as f
from .availability_plan import plan_availability
from .report import emit, raise_for
from .services import RECHECK_SECONDS


def manages_availability(desired: DesiredState, **_: Any) -> bool:
    return desired.explicit("availability") or desired.errored("availability")


@swarmop.on.resume("node", id="swarmop.nodes/resume", when=manages_availability)
@swarmop.on.create("node", id="swarmop.nodes/create", when=manages_availability)
@swarmop.on.update("node", id="swarmop.nodes/update", when=manages_availability)
def reconcile_node(
    node: swarmop.NodeView,
    desired: DesiredState,
    cluster: Any,
    logger: logging.Logger,
    **_: Any,
) -> str:
    tasks = [
        swarmop.TaskView(attrs)
        for attrs in cluster.api.tasks(filters={"node": node.id, "desired-state": "running"})
    ]
    services = cluster.services() if tasks else []
    desired_by_name = {
        service.name: cluster.desired("service", service.name, service.labels)
        for service in services
    }
    plan = plan_availability(
        node.hostname,
        node.availability,
        desired.value("availability"),
        f.field_error(desired, "availability"),
        f.node_tasks(node.id, tasks, services, desired_by_name),
    )
    emit(logger, plan.log)
    if plan.availability is not None:
        target = plan.availability

        def set_availability(spec: dict[str, Any]) -> bool:
            if spec.get("Availability") == target:
                return False
            spec["Availability"] = target
            return True

        # Refused (NotLeaderError, retried) unless this instance leads.
        cluster.update_node(node.id, set_availability)
    return raise_for(plan.status, recheck=RECHECK_SECONDS)
