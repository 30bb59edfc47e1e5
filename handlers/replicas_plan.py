"""`swarmop.replicas` and the depends_on hold: which replica count to write (pure).

The spec's replica count is compared with the target (the desired count, or 0
while dependencies are missing and the service has not started yet). A
difference is drift, restored by one write, unless a rolling update is in
progress: Swarm is then busy converging a spec someone just wrote, and writing
into it would fight the rollout. Tasks still starting after a write are
convergence, reported as pending, never a reason to write again.

A single-writer database is the exception to "never fight": two writers on
one data set corrupt it, so a count above 1 is brought back to 1 whoever set
it (Swarm removes the highest slots first: the task that runs stays), and its
updates and rollbacks are made stop-first so a rollout never starts the new
task before the old one is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .decision import Level, LogLine, Notes, Status
from .depends_plan import DependencyCheck

# Bookkeeping label: the replica count a service had when the operator held it
# at 0 for its dependencies, restored when they run (used when the service has
# no `swarmop.replicas` of its own).
HELD_REPLICAS_LABEL = "swarmop-applied.held-replicas"
# Bookkeeping label: the `swarmop.replicas` value the operator last scaled the
# service to. The last handled state lags behind while a cycle is unfinished
# (tasks still starting), so a second change of the label would otherwise look
# like someone scaling the spec by hand.
APPLIED_REPLICAS_LABEL = "swarmop-applied.replicas"

ROLLOUT_STATES = frozenset({"updating", "rollback_started", "paused", "rollback_paused"})
STOP_FIRST = "stop-first"


@dataclass(frozen=True)
class ReplicaFacts:
    """What the cluster says about one service."""

    name: str
    mode: str  # replicated | global | replicated-job | global-job
    spec_replicas: int | None
    update_state: str | None = None
    running_tasks: int = 0
    held_label: str | None = None  # raw value of HELD_REPLICAS_LABEL
    applied_label: str | None = None  # raw value of APPLIED_REPLICAS_LABEL
    update_order: str | None = None  # UpdateConfig.Order (None: not set)
    rollback_order: str | None = None  # RollbackConfig.Order


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
    # The operator has not handled this service to the end yet (no last handled
    # state): tasks it already runs may be the start race depends_on prevents,
    # not a service that ran and lost a dependency.
    first_pass: bool = False
    dependencies: DependencyCheck = field(default_factory=lambda: DependencyCheck(ready=True))


@dataclass(frozen=True)
class ReplicaPlan:
    replicas: int | None  # write this count; None means no write
    status: Status
    log: tuple[LogLine, ...] = ()
    set_labels: dict[str, str] = field(default_factory=dict)
    drop_labels: tuple[str, ...] = ()
    stop_first: bool = False  # set UpdateConfig.Order and RollbackConfig.Order to stop-first

    @property
    def writes(self) -> bool:
        return (
            self.replicas is not None
            or bool(self.set_labels)
            or bool(self.drop_labels)
            or self.stop_first
        )


def parse_held(raw: str | None) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw.strip())


def needs_stop_first(facts: ReplicaFacts) -> bool:
    return facts.update_order != STOP_FIRST or facts.rollback_order != STOP_FIRST


def plan_replicas(facts: ReplicaFacts, intent: ReplicaIntent) -> ReplicaPlan:
    plan = _plan_count(facts, intent)
    if not intent.single_writer_db or facts.mode != "replicated" or not needs_stop_first(facts):
        return plan
    note = LogLine(
        Level.INFO,
        f"single-writer database {facts.name}: updates and rollbacks set to stop-first "
        f"(were {facts.update_order or 'unset'}/{facts.rollback_order or 'unset'}), so a "
        "rolling update never runs two writers",
    )
    return replace(plan, stop_first=True, log=(*plan.log, note))


def _single_writer_cap(facts: ReplicaFacts, intent: ReplicaIntent) -> ReplicaPlan | None:
    """A single-writer database asked for, or scaled to, more than one task."""
    spec = facts.spec_replicas or 0
    asked = intent.desired is not None and intent.desired > 1
    if not asked and spec <= 1:
        return None
    notes = Notes()
    write: int | None = None
    if spec > 1:
        write = 1 if intent.desired is None or asked else intent.desired
        notes.warning(
            f"single-writer database {facts.name} is scaled to {spec} replicas; restoring "
            f"{write}: two writers on one data set corrupt it (Swarm stops the highest slots, "
            "the running task stays)"
        )
    if asked:
        status = Status.error(
            f"refused: single-writer database runs at most 1 task, swarmop.replicas asks "
            f"for {intent.desired}; set swarmop.db.cluster=true for a cluster database"
            + (f"; scaled {spec} -> 1" if write is not None else "")
        )
    else:
        status = Status.pending(
            f"scaling {spec} -> {write} replicas: a single-writer database runs at most 1 task"
        )
    return ReplicaPlan(write, status, notes.freeze())


def _plan_count(facts: ReplicaFacts, intent: ReplicaIntent) -> ReplicaPlan:
    notes = Notes()
    if intent.desired_error is not None:
        return ReplicaPlan(None, Status.blocked(f"replicas not changed: {intent.desired_error}"))
    deps = intent.dependencies
    manages = (
        intent.desired is not None
        or not deps.ready
        or facts.held_label is not None
        or intent.single_writer_db
    )
    if not manages:
        return ReplicaPlan(
            None,
            Status.ok("replicas not managed (no swarmop.replicas)"),
            # swarmop.replicas was removed: so is the record of applying it.
            drop_labels=(APPLIED_REPLICAS_LABEL,) if facts.applied_label is not None else (),
        )

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
        capped = _single_writer_cap(facts, intent)
        if capped is not None:
            return capped
        if intent.desired is None and deps.ready and facts.held_label is None:
            # Only the cap is managed here: the count is the user's.
            return ReplicaPlan(None, Status.ok("single writer: at most 1 task"))

    if not deps.ready and not deps.holds:
        assert deps.status is not None
        return ReplicaPlan(None, deps.status)
    held = parse_held(facts.held_label)
    if (
        not deps.ready
        and facts.running_tasks > 0
        and spec > 0
        and held is None
        and not intent.first_pass
    ):
        # The hold prevents a start race; scaling a running service down because a
        # dependency restarts would turn one outage into two.
        waiting = ", ".join(deps.waiting_on)
        message = (
            f"{waiting} has no running task; {facts.name} already runs "
            f"{facts.running_tasks} task(s) and is not scaled down"
        )
        if deps.missing:
            return ReplicaPlan(
                None,
                Status.blocked(
                    f"depends_on names no existing service: {', '.join(deps.missing)}; " + message,
                    recheck=True,
                ),
            )
        return ReplicaPlan(None, Status.pending(message))

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
    if intent.single_writer_db:
        target = min(target, 1)

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

    if write is not None and deps.ready and intent.desired is not None:
        set_labels[APPLIED_REPLICAS_LABEL] = str(intent.desired)

    if waiting_status is not None:
        status = waiting_status
    elif write is not None:
        status = Status.pending(f"scaling {spec} -> {target} replicas")
    elif facts.running_tasks != target:
        status = Status.pending(f"converging: {facts.running_tasks}/{target} tasks running")
    else:
        status = Status.ok(f"{target}/{target} replicas running")
    return ReplicaPlan(write, status, notes.freeze(), set_labels, drop_labels)
