"""`swarmop.availability`: the availability to write on a node, and what it moves (pure).

A drain makes Swarm stop every task on the node and start replicated ones
elsewhere; the log names them first, and warns loudly when one of them is a
single-writer database (it will be stopped and started on another node, with
whatever storage that node has).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .decision import LogLine, Notes, Status


@dataclass(frozen=True)
class NodeTask:
    id: str
    service: str
    slot: int | None = None
    global_mode: bool = False
    role: str | None = None  # the service's swarmop.role
    db_cluster: bool = False

    @property
    def label(self) -> str:
        where = f".{self.slot}" if self.slot is not None else ""
        return f"{self.service}{where} ({self.id[:12]})"

    @property
    def single_writer_db(self) -> bool:
        return self.role == "db" and not self.db_cluster


@dataclass(frozen=True)
class AvailabilityPlan:
    availability: str | None  # write this; None: leave the node as it is
    status: Status
    log: tuple[LogLine, ...] = ()


def plan_availability(
    hostname: str,
    current: str,
    desired: str | None,
    desired_error: str | None,
    tasks_on_node: Sequence[NodeTask],
) -> AvailabilityPlan:
    """`tasks_on_node` are the tasks that should be running on the node now."""
    if desired_error is not None:
        return AvailabilityPlan(None, Status.blocked(f"availability not changed: {desired_error}"))
    if desired is None:
        return AvailabilityPlan(None, Status.ok(f"{current}; availability not managed"))
    if desired == current:
        if desired == "drain" and tasks_on_node:
            names = ", ".join(task.label for task in tasks_on_node)
            return AvailabilityPlan(None, Status.pending(f"draining: still running {names}"))
        return AvailabilityPlan(None, Status.ok(desired))

    notes = Notes()
    notes.info(f"node {hostname}: availability {current} -> {desired}")
    if desired == "drain":
        moved = [task for task in tasks_on_node if not task.global_mode]
        stopped = [task for task in tasks_on_node if task.global_mode]
        if moved:
            notes.info(
                f"drain of {hostname} moves {len(moved)} task(s): "
                + ", ".join(task.label for task in moved)
            )
        else:
            notes.info(f"drain of {hostname} moves no replicated task")
        if stopped:
            notes.info(
                f"drain of {hostname} stops global task(s): "
                + ", ".join(task.label for task in stopped)
            )
        for task in tasks_on_node:
            if task.single_writer_db:
                notes.warning(
                    f"drain of {hostname} moves single-writer database {task.label}: it stops "
                    "here and restarts on another node, with that node's storage"
                )
        return AvailabilityPlan(desired, Status.pending(f"draining {hostname}"), notes.freeze())
    return AvailabilityPlan(desired, Status.ok(f"availability set to {desired}"), notes.freeze())
