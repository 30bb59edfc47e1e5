"""The service handler: replicas, depends_on and database placement, in one pass.

One handler per service keeps one status per service and one versioned write
per change: the plans are computed from what was just listed, and applied to
the spec read again inside `cluster.update_service` (see spec_edit).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import swarmop
from swarmop.desired import DesiredState
from swarmop.proxy.model import VirtualHost
from swarmop.proxy.validate import is_proxied, vhost_from_desired

from . import facts as f
from .decision import Outcome, Status
from .depends_plan import DependencyCheck, check_dependencies
from .placement_plan import (
    APPLIED_MAX_REPLICAS_LABEL,
    APPLIED_PLACEMENT_LABEL,
    PlacementIntent,
    PlacementPlan,
    plan_placement,
)
from .proxy_plan import addresses_by_network, excluded_message
from .replicas_plan import (
    APPLIED_REPLICAS_LABEL,
    HELD_REPLICAS_LABEL,
    ReplicaIntent,
    ReplicaPlan,
    plan_replicas,
)
from .report import combine, emit, raise_for
from .spec_edit import ServiceEdit, edit_service_spec

# How soon a pending service is looked at again (tasks have no events).
RECHECK_SECONDS = float(os.environ.get("SWARMOP_RECHECK_SECONDS", "3"))

MANAGED_FIELDS = ("replicas", "placement", "role", "depends_on", "proxy.host")
BOOKKEEPING_LABELS = (
    HELD_REPLICAS_LABEL,
    APPLIED_REPLICAS_LABEL,
    APPLIED_PLACEMENT_LABEL,
    APPLIED_MAX_REPLICAS_LABEL,
)


def is_managed(desired: DesiredState, labels: Mapping[str, str], **_: Any) -> bool:
    """Services that declare something this handler owns, or still carry its bookkeeping."""
    return (
        any(desired.explicit(name) for name in MANAGED_FIELDS)
        or any(error.field in MANAGED_FIELDS for error in desired.errors)
        or any(name in labels for name in BOOKKEEPING_LABELS)
    )


def _dependencies(
    service: swarmop.ServiceView, desired: DesiredState, cluster: Any
) -> DependencyCheck:
    wanted = tuple(desired.value("depends_on") or ())
    if not wanted:
        return DependencyCheck(ready=True)
    services = cluster.services()
    desired_by_name = {
        other.name: (
            desired
            if other.id == service.id
            else cluster.desired("service", other.name, other.labels)
        )
        for other in services
    }
    graph = f.dependency_graph(desired_by_name)
    by_name = {other.name: other for other in services}
    running = {name: len(by_name[name].running_tasks()) for name in wanted if name in by_name}
    return check_dependencies(service.name, graph, running)


def replicas_changed(desired: DesiredState, old: Any, applied: str | None = None) -> bool:
    """Whether `replicas` differs from what the operator last applied: the value in
    its bookkeeping label when it has scaled the service, else the last handled
    essence (True when there is neither)."""
    if applied is not None and applied.strip().isdigit():
        return bool(int(applied.strip()) != desired.value("replicas"))
    if not isinstance(old, Mapping):
        return True
    before = old.get("desired")
    if not isinstance(before, Mapping):
        return True
    return bool(before.get("replicas") != desired.value("replicas"))


def plan_service(
    service: swarmop.ServiceView,
    desired: DesiredState,
    cluster: Any,
    tasks: list[swarmop.TaskView],
    old: Any = None,
) -> tuple[ReplicaPlan, PlacementPlan | None]:
    role = desired.value("role")
    single_writer = role == "db" and not desired.value("db.cluster", False)
    facts = f.replica_facts(service, tasks)
    replica_plan = plan_replicas(
        facts,
        ReplicaIntent(
            desired=desired.value("replicas"),
            desired_error=f.field_error(desired, "replicas"),
            single_writer_db=single_writer,
            desired_changed=replicas_changed(desired, old, facts.applied_label),
            first_pass=old is None,
            dependencies=_dependencies(service, desired, cluster),
        ),
    )
    placement_plan: PlacementPlan | None = None
    labels = service.labels
    if (
        desired.explicit("placement")
        or desired.errored("placement")
        or role == "db"
        or APPLIED_PLACEMENT_LABEL in labels
        or APPLIED_MAX_REPLICAS_LABEL in labels
    ):
        nodes = [f.node_facts(node) for node in cluster.nodes()]
        placement_plan = plan_placement(
            f.placement_facts(service, tasks),
            PlacementIntent(
                placement=desired.value("placement"),
                placement_error=f.field_error(desired, "placement"),
                role=role,
                db_cluster=bool(desired.value("db.cluster", False)),
            ),
            nodes,
        )
    return replica_plan, placement_plan


def service_edit(replica_plan: ReplicaPlan, placement_plan: PlacementPlan | None) -> ServiceEdit:
    """One edit for both plans, so a change costs one versioned write."""
    set_labels = dict(replica_plan.set_labels)
    drop_labels = list(replica_plan.drop_labels)
    placement: tuple[str, ...] | None = None
    max_replicas: int | None = None
    if placement_plan is not None:
        set_labels.update(placement_plan.set_labels)
        drop_labels.extend(placement_plan.drop_labels)
        max_replicas = placement_plan.max_replicas
        placement = placement_plan.desired_constraints
    return ServiceEdit(
        replicas=replica_plan.replicas,
        placement=placement,
        max_replicas=max_replicas,
        set_labels=set_labels,
        drop_labels=tuple(drop_labels),
        stop_first=replica_plan.stop_first,
    )


def proxy_status(
    service: swarmop.ServiceView,
    desired: DesiredState,
    tasks: list[swarmop.TaskView],
    cluster: Any,
) -> Status | None:
    """This service's own proxy settings, checked as the proxy checks them.

    Host + path conflicts between services are found by the proxy daemon,
    which sees them all, and reported by it on each service's status.
    """
    if not is_proxied(desired):
        return None
    names = {str(net["Id"]): str(net["Name"]) for net in cluster.api.networks()}
    result = vhost_from_desired(
        service.name,
        desired,
        addresses_by_network(f.network_names(service, names), f.task_addresses(tasks)),
    )
    if not isinstance(result, VirtualHost):
        return Status.blocked(excluded_message(result))
    if not result.addresses:
        return Status.pending(f"proxy: {result.host}{result.path} has no running task")
    return Status.ok(f"proxy: {result.host}{result.path} -> {len(result.addresses)} task(s)")


@swarmop.on.resume("service", id="swarmop.services/resume", when=is_managed)
@swarmop.on.create("service", id="swarmop.services/create", when=is_managed)
@swarmop.on.update("service", id="swarmop.services/update", when=is_managed)
def reconcile_service(
    service: swarmop.ServiceView,
    desired: DesiredState,
    cluster: Any,
    logger: logging.Logger,
    old: Any = None,
    **_: Any,
) -> str:
    tasks = service.tasks()
    replica_plan, placement_plan = plan_service(service, desired, cluster, tasks, old)
    edit = service_edit(replica_plan, placement_plan)
    emit(logger, replica_plan.log)
    if placement_plan is not None:
        emit(logger, placement_plan.log)
    if edit:
        # Refused (NotLeaderError, retried) unless this instance leads.
        result = cluster.update_service(service.id, lambda spec: edit_service_spec(spec, edit))
        if result.conflicts:
            logger.info("spec written after %d concurrent change(s)", result.conflicts)
    statuses: list[Status] = [replica_plan.status]
    if placement_plan is not None:
        statuses.append(placement_plan.status)
    proxied = proxy_status(service, desired, tasks, cluster)
    if proxied is not None:
        statuses.append(proxied)
    status = combine(statuses)
    if edit and status.outcome is Outcome.OK:
        # Written now: look again once Swarm has acted on it.
        status = Status.pending(status.message or "spec written, converging")
    return raise_for(status, recheck=RECHECK_SECONDS)
