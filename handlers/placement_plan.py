"""`swarmop.placement` and `swarmop.role=db`: constraints to write, and whether
any node can take the service's tasks (pure).

Constraints the operator adds are remembered in a label on the service, so a
later change removes exactly those and never one the user wrote. Swarm itself
keeps a running task whose node still satisfies changed constraints; the plan
only says which tasks would have to move, so the log can warn before it
happens. The operator never moves a database on its own: a placement that no
node satisfies is not applied to a database (its task would be stopped with
nowhere to go), and node labels are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .decision import LogLine, Notes, Status

# Bookkeeping labels live outside `swarmop.`: that namespace is desired state,
# and any name in it that is not a field is reported as a typo.
APPLIED_PLACEMENT_LABEL = "swarmop-applied.placement"
APPLIED_MAX_REPLICAS_LABEL = "swarmop-applied.max-replicas"

_CONSTRAINT = re.compile(r"\s*(?P<key>[A-Za-z0-9._-]+)\s*(?P<op>==|!=)\s*(?P<value>\S.*?)\s*")


@dataclass(frozen=True)
class Constraint:
    key: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value}"


def parse_constraint(text: str) -> Constraint | None:
    """`node.labels.storage == ssd` -> Constraint; None for text Swarm would not accept."""
    match = _CONSTRAINT.fullmatch(text)
    if match is None:
        return None
    return Constraint(match["key"], match["op"], match["value"])


def normalize(text: str) -> str:
    """The form used to compare constraints: `a == b` and `a==b` are the same one."""
    parsed = parse_constraint(text)
    return str(parsed) if parsed is not None else text.strip()


@dataclass(frozen=True)
class NodeFacts:
    id: str
    hostname: str
    role: str = "worker"
    availability: str = "active"
    state: str = "ready"
    labels: Mapping[str, str] = field(default_factory=dict)
    engine_labels: Mapping[str, str] = field(default_factory=dict)
    os: str = "linux"
    arch: str = "x86_64"

    @property
    def schedulable(self) -> bool:
        return self.availability == "active" and self.state == "ready"


def node_value(node: NodeFacts, key: str) -> tuple[bool, str | None]:
    """(known key, the node's value for it); None when a label is not set."""
    lowered = key.lower()
    if lowered.startswith("node.labels."):
        return True, node.labels.get(key[len("node.labels.") :])
    if lowered.startswith("engine.labels."):
        return True, node.engine_labels.get(key[len("engine.labels.") :])
    plain = {
        "node.id": node.id,
        "node.hostname": node.hostname,
        "node.role": node.role,
        "node.platform.os": node.os,
        "node.platform.arch": node.arch,
    }
    if lowered in plain:
        return True, plain[lowered]
    return False, None


def satisfies(node: NodeFacts, constraint: Constraint) -> bool:
    """Swarm's rule: values compare case-insensitively; an unset label equals ''.

    A key this code does not know is taken as satisfied, so the operator never
    calls a service unschedulable on a guess.
    """
    known, value = node_value(node, constraint.key)
    if not known:
        return True
    equal = (value or "").casefold() == constraint.value.casefold()
    return equal if constraint.op == "==" else not equal


def merge_constraints(
    current: Sequence[str], desired: Sequence[str], applied: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(constraints to have, constraints the operator owns afterwards).

    Keeps every constraint the operator did not add, in its order and spelling;
    drops the ones it added earlier that are no longer desired; appends the
    desired ones missing. A desired constraint the user had already written
    stays theirs (it is not recorded as the operator's).
    """
    applied_keys = {normalize(item) for item in applied}
    desired_keys = [normalize(item) for item in desired]
    desired_set = set(desired_keys)
    kept: list[str] = []
    present: set[str] = set()
    for item in current:
        key = normalize(item)
        if key in applied_keys and key not in desired_set:
            continue
        if key in present:
            continue
        kept.append(item)
        present.add(key)
    user_keys = {normalize(item) for item in current} - applied_keys
    owned: list[str] = []
    for key in dict.fromkeys(desired_keys):
        if key not in present:
            kept.append(key)
            present.add(key)
        if key not in user_keys:
            owned.append(key)
    return tuple(kept), tuple(owned)


def parse_applied(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ()
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Schedulability:
    eligible: tuple[str, ...]  # hostnames that satisfy every constraint and take tasks
    reason: str  # why nodes are not eligible; empty when all are


def check_schedulable(constraints: Iterable[str], nodes: Sequence[NodeFacts]) -> Schedulability:
    parsed = [c for c in (parse_constraint(text) for text in constraints) if c is not None]
    eligible: list[str] = []
    reasons: list[str] = []
    for node in sorted(nodes, key=lambda node: node.hostname):
        failing = next((c for c in parsed if not satisfies(node, c)), None)
        if failing is not None:
            _, value = node_value(node, failing.key)
            shown = "not set" if value is None else repr(value)
            reasons.append(f"{node.hostname} fails {failing} ({failing.key} {shown})")
        elif not node.schedulable:
            reasons.append(f"{node.hostname} matches but is {node.availability}/{node.state}")
        else:
            eligible.append(node.hostname)
    return Schedulability(tuple(eligible), "; ".join(reasons))


@dataclass(frozen=True)
class TaskPlacement:
    id: str
    node_id: str | None
    slot: int | None = None


@dataclass(frozen=True)
class PlacementFacts:
    name: str
    mode: str
    spec_replicas: int | None
    constraints: tuple[str, ...] = ()
    max_replicas: int = 0  # Placement.MaxReplicas; 0 means no limit
    labels: Mapping[str, str] = field(default_factory=dict)
    tasks: tuple[TaskPlacement, ...] = ()  # tasks that should be running


@dataclass(frozen=True)
class PlacementIntent:
    placement: tuple[str, ...] | None = None
    placement_error: str | None = None
    role: str | None = None
    db_cluster: bool = False


@dataclass(frozen=True)
class PlacementPlan:
    constraints: tuple[str, ...] | None  # write these constraints; None: leave them
    max_replicas: int | None  # write this MaxReplicas; None: leave it
    status: Status
    log: tuple[LogLine, ...] = ()
    set_labels: dict[str, str] = field(default_factory=dict)
    drop_labels: tuple[str, ...] = ()
    # The constraints to merge in at write time (against the spec read then);
    # None when the plan leaves constraints alone.
    desired_constraints: tuple[str, ...] | None = None

    @property
    def writes(self) -> bool:
        return (
            self.constraints is not None
            or self.max_replicas is not None
            or bool(self.set_labels)
            or bool(self.drop_labels)
        )


def plan_placement(
    facts: PlacementFacts, intent: PlacementIntent, nodes: Sequence[NodeFacts]
) -> PlacementPlan:
    notes = Notes()
    is_db = intent.role == "db"
    single_writer = is_db and not intent.db_cluster
    if intent.placement_error is not None:
        return PlacementPlan(
            None, None, Status.blocked(f"placement not changed: {intent.placement_error}")
        )
    if single_writer and facts.mode not in {"replicated"}:
        return PlacementPlan(
            None,
            None,
            Status.error(
                f"single-writer database {facts.name} is a {facts.mode} service: it must be "
                "replicated with 1 replica (or set swarmop.db.cluster=true)"
            ),
        )

    applied_raw = facts.labels.get(APPLIED_PLACEMENT_LABEL)
    applied = parse_applied(applied_raw)
    merged, owned = merge_constraints(facts.constraints, intent.placement or (), applied)
    new_constraints = merged if merged != facts.constraints else None
    set_labels: dict[str, str] = {}
    drop_labels: list[str] = []
    owned_text = ",".join(owned)
    if owned and owned_text != applied_raw:
        set_labels[APPLIED_PLACEMENT_LABEL] = owned_text
    elif not owned and applied_raw is not None:
        drop_labels.append(APPLIED_PLACEMENT_LABEL)

    new_max: int | None = None
    cluster_db = is_db and intent.db_cluster and facts.mode == "replicated"
    applied_max = facts.labels.get(APPLIED_MAX_REPLICAS_LABEL)
    if cluster_db:
        if facts.max_replicas != 1:
            new_max = 1
            notes.info(f"cluster database {facts.name}: at most one task per node")
        if facts.max_replicas != 1 or applied_max is None:
            set_labels[APPLIED_MAX_REPLICAS_LABEL] = "1"
    elif applied_max is not None:
        # No longer a cluster db: lift only the limit the operator set.
        if facts.max_replicas == 1:
            new_max = 0
        drop_labels.append(APPLIED_MAX_REPLICAS_LABEL)

    schedulable = check_schedulable(merged, nodes)
    if not schedulable.eligible:
        message = f"unschedulable: no node can take {facts.name}'s tasks: {schedulable.reason}"
        if is_db and new_constraints is not None:
            notes.warning(
                f"placement for database {facts.name} not applied: no node satisfies "
                f"{', '.join(merged) or 'it'}; the database stays where it runs"
            )
            return PlacementPlan(None, None, Status.blocked(message, recheck=True), notes.freeze())
        # The fix is a node label or a node coming back: another object, so
        # no change to this service announces it; looked at again.
        status = Status.blocked(message, recheck=True)
    else:
        status = _fit_status(facts, intent, schedulable, cluster_db)

    if new_constraints is not None:
        added = [c for c in merged if normalize(c) not in {normalize(x) for x in facts.constraints}]
        removed = [
            c for c in facts.constraints if normalize(c) not in {normalize(x) for x in merged}
        ]
        notes.info(
            f"placement of {facts.name}: "
            + ", ".join([*(f"+{c}" for c in added), *(f"-{c}" for c in removed)])
        )
        _warn_moves(facts, merged, nodes, is_db, notes)

    touches_constraints = new_constraints is not None or APPLIED_PLACEMENT_LABEL in (
        *set_labels,
        *drop_labels,
    )
    return PlacementPlan(
        new_constraints,
        new_max,
        status,
        notes.freeze(),
        set_labels,
        tuple(drop_labels),
        desired_constraints=tuple(intent.placement or ()) if touches_constraints else None,
    )


def _fit_status(
    facts: PlacementFacts,
    intent: PlacementIntent,
    schedulable: Schedulability,
    cluster_db: bool,
) -> Status:
    where = ", ".join(schedulable.eligible)
    if cluster_db:
        wanted = facts.spec_replicas or 0
        if wanted > len(schedulable.eligible):
            return Status.pending(
                f"cluster database wants {wanted} tasks, one per node, but only "
                f"{len(schedulable.eligible)} node(s) can take one ({where}); "
                f"{wanted - len(schedulable.eligible)} stay pending"
            )
        return Status.ok(f"one task per node on {where}")
    if intent.placement:
        return Status.ok(f"placement {', '.join(intent.placement)}: eligible {where}")
    return Status.ok(f"eligible nodes: {where}")


def _warn_moves(
    facts: PlacementFacts,
    constraints: Sequence[str],
    nodes: Sequence[NodeFacts],
    is_db: bool,
    notes: Notes,
) -> None:
    parsed = [c for c in (parse_constraint(text) for text in constraints) if c is not None]
    by_id = {node.id: node for node in nodes}
    for task in facts.tasks:
        node = by_id.get(task.node_id or "")
        if node is None:
            continue
        if any(not satisfies(node, c) for c in parsed):
            what = "database task" if is_db else "task"
            notes.warning(
                f"{what} {task.id[:12]} of {facts.name} on {node.hostname} does not satisfy "
                "the new placement: Swarm will move it"
            )
