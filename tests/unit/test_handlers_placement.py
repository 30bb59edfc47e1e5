"""Placement planning: constraint merge, db rules, schedulability."""

from __future__ import annotations

import pytest
from swarmop.handlers.decision import Level, Outcome
from swarmop.handlers.placement_plan import (
    APPLIED_MAX_REPLICAS_LABEL,
    APPLIED_PLACEMENT_LABEL,
    NodeFacts,
    PlacementFacts,
    PlacementIntent,
    TaskPlacement,
    check_schedulable,
    merge_constraints,
    normalize,
    parse_constraint,
    plan_placement,
    satisfies,
)

NODES = (
    NodeFacts("id1", "node-1", role="manager"),
    NodeFacts("id2", "node-2", labels={"storage": "hdd"}),
    NodeFacts("id3", "node-3", labels={"storage": "ssd"}),
)


def facts(constraints: tuple[str, ...] = (), **kwargs: object) -> PlacementFacts:
    values: dict[str, object] = {
        "name": "db",
        "mode": "replicated",
        "spec_replicas": 1,
        "constraints": constraints,
    }
    values.update(kwargs)
    return PlacementFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("node.labels.storage==ssd", "node.labels.storage==ssd"),
        ("node.labels.storage == ssd", "node.labels.storage==ssd"),
        ("  node.role!=manager ", "node.role!=manager"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_parse_rejects_other_operators() -> None:
    assert parse_constraint("node.labels.a>=3") is None
    assert parse_constraint("garbage") is None


@pytest.mark.parametrize(
    ("constraint", "node", "expected"),
    [
        ("node.labels.storage==ssd", NODES[2], True),
        ("node.labels.storage==SSD", NODES[2], True),  # Swarm compares values case-insensitively
        ("node.labels.storage==ssd", NODES[1], False),
        ("node.labels.storage==ssd", NODES[0], False),  # unset label
        ("node.labels.storage!=ssd", NODES[0], True),  # unset label differs
        ("node.role==manager", NODES[0], True),
        ("node.role!=manager", NODES[0], False),
        ("node.hostname==node-2", NODES[1], True),
        ("node.id==id3", NODES[2], True),
        ("node.platform.os==linux", NODES[0], True),
        ("engine.labels.zone==a", NODES[0], False),
        ("node.ip==10.0.0.1", NODES[0], True),  # unknown key: never a false 'unschedulable'
    ],
)
def test_satisfies(constraint: str, node: NodeFacts, expected: bool) -> None:
    parsed = parse_constraint(constraint)
    assert parsed is not None
    assert satisfies(node, parsed) is expected


def test_merge_adds_without_dropping_user_constraints() -> None:
    merged, owned = merge_constraints(["node.role!=manager"], ["node.labels.storage==ssd"], [])
    assert merged == ("node.role!=manager", "node.labels.storage==ssd")
    assert owned == ("node.labels.storage==ssd",)


def test_merge_replaces_only_what_it_added() -> None:
    merged, owned = merge_constraints(
        ["node.role!=manager", "node.labels.storage==ssd"],
        ["node.labels.storage==nvme"],
        ["node.labels.storage==ssd"],
    )
    assert merged == ("node.role!=manager", "node.labels.storage==nvme")
    assert owned == ("node.labels.storage==nvme",)


def test_merge_removing_desired_keeps_user_ones() -> None:
    merged, owned = merge_constraints(
        ["node.role != manager", "node.labels.storage==ssd"], [], ["node.labels.storage==ssd"]
    )
    assert merged == ("node.role != manager",)
    assert owned == ()


def test_merge_desired_that_user_already_wrote_stays_the_users() -> None:
    merged, owned = merge_constraints(
        ["node.labels.storage == ssd"], ["node.labels.storage==ssd"], []
    )
    assert merged == ("node.labels.storage == ssd",)  # spelling kept, no duplicate
    assert owned == ()
    # ...and removing it from desired later does not remove the user's constraint.
    merged, owned = merge_constraints(merged, [], owned)
    assert merged == ("node.labels.storage == ssd",)


def test_merge_is_idempotent() -> None:
    first, owned = merge_constraints(["node.role!=manager"], ["node.labels.a==b"], [])
    second, owned_again = merge_constraints(first, ["node.labels.a==b"], owned)
    assert second == first and owned_again == owned


def test_plan_writes_constraints_and_remembers_them() -> None:
    plan = plan_placement(
        facts(("node.role!=manager",), mode="replicated"),
        PlacementIntent(placement=("node.labels.storage==ssd",), role="db"),
        NODES,
    )
    assert plan.constraints == ("node.role!=manager", "node.labels.storage==ssd")
    assert plan.set_labels == {APPLIED_PLACEMENT_LABEL: "node.labels.storage==ssd"}
    assert plan.status.outcome is Outcome.OK
    assert "node-3" in plan.status.message


def test_plan_converged_writes_nothing() -> None:
    plan = plan_placement(
        facts(
            ("node.labels.storage==ssd",),
            labels={APPLIED_PLACEMENT_LABEL: "node.labels.storage==ssd"},
        ),
        PlacementIntent(placement=("node.labels.storage==ssd",), role="db"),
        NODES,
    )
    assert not plan.writes
    assert plan.status.outcome is Outcome.OK


def test_plan_removes_its_constraints_and_label_when_unset() -> None:
    plan = plan_placement(
        facts(
            ("node.role!=manager", "node.labels.storage==ssd"),
            labels={APPLIED_PLACEMENT_LABEL: "node.labels.storage==ssd"},
        ),
        PlacementIntent(),
        NODES,
    )
    assert plan.constraints == ("node.role!=manager",)
    assert plan.drop_labels == (APPLIED_PLACEMENT_LABEL,)


def test_unschedulable_reports_each_node_and_the_failing_constraint() -> None:
    result = check_schedulable(["node.labels.storage==nvme"], NODES)
    assert result.eligible == ()
    assert "node-1 fails node.labels.storage==nvme (node.labels.storage not set)" in result.reason
    assert "node-2 fails node.labels.storage==nvme (node.labels.storage 'hdd')" in result.reason
    assert "node-3" in result.reason


def test_matching_node_that_is_drained_is_not_eligible() -> None:
    nodes = (
        *NODES[:2],
        NodeFacts("id3", "node-3", availability="drain", labels={"storage": "ssd"}),
    )
    result = check_schedulable(["node.labels.storage==ssd"], nodes)
    assert result.eligible == ()
    assert "node-3 matches but is drain/ready" in result.reason


def test_unsatisfiable_placement_not_applied_to_a_database() -> None:
    plan = plan_placement(
        facts(
            ("node.labels.storage==ssd",),
            labels={APPLIED_PLACEMENT_LABEL: "node.labels.storage==ssd"},
        ),
        PlacementIntent(placement=("node.labels.storage==nvme",), role="db"),
        NODES,
    )
    assert not plan.writes
    assert plan.status.outcome is Outcome.BLOCKED
    assert plan.status.recheck  # a node label (another object) is the fix
    assert plan.status.message.startswith("unschedulable:")
    assert any(line.level is Level.WARNING and "not applied" in line.text for line in plan.log)


def test_unsatisfiable_placement_on_plain_service_is_applied_and_reported() -> None:
    plan = plan_placement(
        facts(name="web"),
        PlacementIntent(placement=("node.labels.storage==nvme",)),
        NODES,
    )
    assert plan.constraints == ("node.labels.storage==nvme",)
    assert plan.status.outcome is Outcome.BLOCKED
    assert plan.status.recheck
    assert "unschedulable" in plan.status.message


def test_node_losing_its_label_makes_applied_db_unschedulable_without_write() -> None:
    nodes = (NODES[0], NODES[1], NodeFacts("id3", "node-3"))
    plan = plan_placement(
        facts(
            ("node.labels.storage==ssd",),
            labels={APPLIED_PLACEMENT_LABEL: "node.labels.storage==ssd"},
        ),
        PlacementIntent(placement=("node.labels.storage==ssd",), role="db"),
        nodes,
    )
    assert not plan.writes  # never relabel a node, never move the db
    assert plan.status.outcome is Outcome.BLOCKED
    assert "node-3 fails node.labels.storage==ssd" in plan.status.message


def test_constraint_change_warns_about_tasks_that_must_move() -> None:
    plan = plan_placement(
        facts(tasks=(TaskPlacement("t" * 25, "id2", 1),)),
        PlacementIntent(placement=("node.labels.storage==ssd",), role="db"),
        NODES,
    )
    assert plan.constraints is not None
    warnings = [line.text for line in plan.log if line.level is Level.WARNING]
    assert any("database task" in text and "node-2" in text for text in warnings)


def test_constraint_change_with_task_on_satisfying_node_warns_nothing() -> None:
    plan = plan_placement(
        facts(tasks=(TaskPlacement("t1", "id3", 1),)),
        PlacementIntent(placement=("node.labels.storage==ssd",), role="db"),
        NODES,
    )
    assert plan.constraints is not None
    assert all(line.level is not Level.WARNING for line in plan.log)


def test_cluster_db_gets_one_task_per_node() -> None:
    plan = plan_placement(
        facts(spec_replicas=3), PlacementIntent(role="db", db_cluster=True), NODES
    )
    assert plan.max_replicas == 1
    assert plan.set_labels == {APPLIED_MAX_REPLICAS_LABEL: "1"}
    assert plan.status.outcome is Outcome.OK


def test_cluster_db_with_limit_in_place_writes_nothing() -> None:
    plan = plan_placement(
        facts(spec_replicas=3, max_replicas=1, labels={APPLIED_MAX_REPLICAS_LABEL: "1"}),
        PlacementIntent(role="db", db_cluster=True),
        NODES,
    )
    assert not plan.writes


def test_cluster_db_wider_than_eligible_nodes_is_pending() -> None:
    plan = plan_placement(
        facts(
            ("node.role!=manager",),
            spec_replicas=3,
            max_replicas=1,
            labels={APPLIED_MAX_REPLICAS_LABEL: "1"},
        ),
        PlacementIntent(role="db", db_cluster=True),
        NODES,
    )
    assert plan.status.outcome is Outcome.PENDING
    assert "only 2 node(s)" in plan.status.message


def test_leaving_cluster_mode_lifts_only_the_operators_limit() -> None:
    plan = plan_placement(
        facts(max_replicas=1, labels={APPLIED_MAX_REPLICAS_LABEL: "1"}),
        PlacementIntent(role="db", db_cluster=False),
        NODES,
    )
    assert plan.max_replicas == 0
    assert APPLIED_MAX_REPLICAS_LABEL in plan.drop_labels
    # A user's own MaxReplicas (no operator label) is never touched.
    plan = plan_placement(facts(max_replicas=2), PlacementIntent(), NODES)
    assert plan.max_replicas is None


def test_global_single_writer_db_is_an_error() -> None:
    plan = plan_placement(
        facts(mode="global", spec_replicas=None), PlacementIntent(role="db"), NODES
    )
    assert plan.status.outcome is Outcome.ERROR
    assert not plan.writes


def test_invalid_placement_blocks_without_write() -> None:
    plan = plan_placement(
        facts(("node.labels.a==b",)),
        PlacementIntent(placement_error="label placement='x': bad"),
        NODES,
    )
    assert not plan.writes
    assert plan.status.outcome is Outcome.BLOCKED
