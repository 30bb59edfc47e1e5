"""`swarmop.replicas` and the depends_on hold: which replica count to write (pure).

The spec's replica count is compared with the target (the desired count, or 0
while dependencies are missing and the service has not started yet). A
difference is drift, restored by one write, unless a rolling update is in
progress: Swarm is then busy converging a spec someone just wrote, and writing
into it would fight the rollout. Tasks still starting after a write are
convergence, reported as pending, never a reason to write again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .decision import LogLine, Notes, Status
from .depends_plan import DependencyCheck

# Bookkeeping label: the replica count a service had when the operator held it
# at 0 for its dependencies, restored when they run (used when the service has
# no `swarmop.replicas` of its own).
HELD_REPLICAS_LABEL = "swarmop-applied.held-replicas"

ROLLOUT_STATES = frozenset({"updating", "rollback_started", "paused", "rollback_paused"})


@dataclass(frozen=True)
class ReplicaFacts:
    """What the cluster says about one service."""

    name: str
    mode: str  # replicated | global | replicated-job | global-job
    spec_replicas: int | None
    update_state: str | None = None
    running_tasks: int = 0
    held_label: str | None = None  # raw value of HELD_REPLICAS_LABEL


@dataclass(frozen=True)
class ReplicaIntent:
    """What the user asked for."""

    desired: int | None = None  # None: swarmop.replicas not set
    desired_error: str | None = None  # the field's error, when its value is invalid
    single_writer_db: bool = False
    # The desired count itself changed since the last handled state (or the
    # service is new to the operator): a spec that differs is then the user's
    # new wish being applied, not drift.
    desired_changed: bool = False
    dependencies: DependencyCheck = field(default_factory=lambda: DependencyCheck(ready=True))


@dataclass(frozen=True)
class ReplicaPlan:
    replicas: int | None  # write this count; None means no write
    status: Status
    log: tuple[LogLine, ...] = ()
    set_labels: dict[str, str] = field(default_factory=dict)
    drop_labels: tuple[str, ...] = ()

    @property
    def writes(self) -> bool:
        return self.replicas is not None or bool(self.set_labels) or bool(self.drop_labels)


def parse_held(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


def plan_replicas(facts: ReplicaFacts, intent: ReplicaIntent) -> ReplicaPlan:
    notes = Notes()
    if intent.desired_error is not None:
        return ReplicaPlan(None, Status.blocked(f"replicas not changed: {intent.desired_error}"))
    deps = intent.dependencies
    manages = intent.desired is not None or not deps.ready or facts.held_label is not None
    if not manages:
        return ReplicaPlan(None, Status.ok("replicas not managed (no swarmop.replicas)"))

    if facts.mode != "replicated":
        if intent.desired is None and deps.ready:
            return ReplicaPlan(None, Status.ok(f"{facts.mode} service: replicas not managed"))
        what = "swarmop.replicas" if intent.desired is not None else "depends_on hold"
        return ReplicaPlan(
            None,
            Status.error(
                f"{what} rejected: {facts.name} is a {facts.mode} service; only replicated "
                "services have a replica count"
            ),
        )
    spec = facts.spec_replicas or 0

    if intent.single_writer_db:
        if intent.desired is not None and intent.desired > 1:
            return ReplicaPlan(
                None,
                Status.error(
                    f"refused: single-writer database runs at most 1 task, swarmop.replicas asks "
                    f"for {intent.desired}; set swarmop.db.cluster=true for a cluster database"
                ),
            )
        if spec > 1:
            return ReplicaPlan(
                None,
                Status.error(
                    f"refused: single-writer database is scaled to {spec} replicas; it must run "
                    "at most 1 task (the operator does not rewrite it, scale it back to 1)"
                ),
            )

    if deps.blocked:
        assert deps.status is not None
        return ReplicaPlan(None, deps.status)
    held = parse_held(facts.held_label)
    if not deps.ready and facts.running_tasks > 0 and spec > 0 and held is None:
        # The hold prevents a start race; scaling a running service down because a
        # dependency restarts would turn one outage into two.
        return ReplicaPlan(
            None,
            Status.pending(
                f"{', '.join(deps.waiting_on)} has no running task; {facts.name} already runs "
                f"{facts.running_tasks} task(s) and is not scaled down"
            ),
        )

    set_labels: dict[str, str] = {}
    drop_labels: tuple[str, ...] = ()
    if not deps.ready:
        target = 0
        if intent.desired is None and spec > 0 and held is None:
            # Remember the count to bring back once dependencies run.
            set_labels[HELD_REPLICAS_LABEL] = str(spec)
        waiting_status = deps.status or Status.pending("held at 0 replicas for dependencies")
    else:
        if intent.desired is not None:
            target = intent.desired
        elif held is not None:
            target = held
        else:
            target = spec
        if facts.held_label is not None:
            drop_labels = (HELD_REPLICAS_LABEL,)
        waiting_status = None

    rollout = facts.update_state in ROLLOUT_STATES
    if spec != target and rollout and deps.ready:
        return ReplicaPlan(
            None,
            Status.pending(
                f"rolling update {facts.update_state}: replicas {spec}, desired {target}; "
                "restored after it ends"
            ),
        )

    write: int | None = None
    if spec != target:
        write = target
        if not deps.ready:
            notes.info(
                f"holding {facts.name} at 0 replicas (was {spec}) until "
                f"{', '.join(deps.waiting_on)} has a running task"
            )
        elif facts.held_label is not None and intent.desired is None:
            notes.info(f"dependencies of {facts.name} run: restoring {target} replicas")
        elif spec == 0 and deps.dependencies:
            notes.info(
                f"dependencies of {facts.name} run ({', '.join(deps.dependencies)}): "
                f"scaling to {target} replicas"
            )
        elif intent.desired_changed and intent.desired is not None:
            notes.info(f"swarmop.replicas of {facts.name} is {target}: scaling {spec} -> {target}")
        else:
            notes.warning(
                f"replica drift on {facts.name}: spec has {spec}, desired {target}; restoring"
            )

    if waiting_status is not None:
        status = waiting_status
    elif write is not None:
        status = Status.pending(f"scaling {spec} -> {target} replicas")
    elif facts.running_tasks != target:
        status = Status.pending(f"converging: {facts.running_tasks}/{target} tasks running")
    else:
        status = Status.ok(f"{target}/{target} replicas running")
    return ReplicaPlan(write, status, notes.freeze(), set_labels, drop_labels)
