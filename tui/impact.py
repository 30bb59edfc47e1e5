"""What a node availability change would do, shown before it is confirmed."""

from __future__ import annotations

from dataclasses import dataclass

from swarmop.tui.model import OPERATOR_STALE_AFTER, ClusterSnapshot, NodeRecord, TaskRecord

OPERATOR_MISSING = "operator not running: desired state recorded, not applied"


@dataclass(frozen=True)
class Impact:
    node: str
    availability: str
    moving: tuple[TaskRecord, ...]
    warnings: tuple[str, ...]
    summary: str


def availability_impact(
    snapshot: ClusterSnapshot,
    node: NodeRecord,
    availability: str,
    now: float,
    *,
    stale_after: float = OPERATOR_STALE_AFTER,
) -> Impact:
    tasks = tuple(sorted(snapshot.tasks_on(node.id), key=lambda t: (t.service_name, t.slot or 0)))
    warnings: list[str] = []
    if availability == "drain":
        moving = tasks
        summary = (
            f"{len(moving)} task(s) on {node.hostname} would stop and be rescheduled elsewhere"
            if moving
            else f"no task runs on {node.hostname}: nothing moves"
        )
        for task in moving:
            service = snapshot.services.get(task.service_id)
            if service is not None and service.single_writer_db:
                warnings.append(
                    f"{service.name} is a single-writer database (swarmop.role=db): "
                    "draining moves it and it is unavailable while it restarts elsewhere"
                )
            if service is not None and service.mode == "global":
                warnings.append(f"{service.name} is global: its task here stops, none replaces it")
    elif availability == "pause":
        moving = ()
        summary = f"tasks on {node.hostname} keep running; no new task is scheduled there"
    else:
        moving = ()
        summary = f"{node.hostname} accepts new tasks; running tasks do not move back by themselves"
    if node.role == "manager" and availability == "drain":
        warnings.append(
            f"{node.hostname} is a manager: draining keeps it managing, only tasks leave"
        )
    if snapshot.operator is None or not snapshot.operator.seen_recently(now, stale_after):
        warnings.append(OPERATOR_MISSING)
    return Impact(
        node=node.hostname,
        availability=availability,
        moving=moving,
        warnings=tuple(dict.fromkeys(warnings)),
        summary=summary,
    )
