"""Node availability planning: target, drain impact, database warning."""

from __future__ import annotations

from swarmop.handlers.availability_plan import NodeTask, plan_availability
from swarmop.handlers.decision import Level, Outcome

WEB = NodeTask("a" * 25, "web", slot=1)
DB = NodeTask("b" * 25, "db", slot=1, role="db")
GALERA = NodeTask("c" * 25, "galera", slot=2, role="db", db_cluster=True)
AGENT = NodeTask("d" * 25, "agent", global_mode=True)


def test_unmanaged_node_is_left_alone() -> None:
    plan = plan_availability("node-2", "active", None, None, [WEB])
    assert plan.availability is None
    assert plan.status.outcome is Outcome.OK


def test_invalid_value_blocks() -> None:
    plan = plan_availability("node-2", "active", None, "label availability='off': bad", [WEB])
    assert plan.availability is None
    assert plan.status.outcome is Outcome.BLOCKED


def test_drain_names_the_tasks_it_moves() -> None:
    plan = plan_availability("node-2", "active", "drain", None, [WEB, AGENT])
    assert plan.availability == "drain"
    text = "\n".join(line.text for line in plan.log)
    assert "moves 1 task(s): web.1 (aaaaaaaaaaaa)" in text
    assert "stops global task(s): agent (dddddddddddd)" in text
    assert all(line.level is not Level.WARNING for line in plan.log)


def test_drain_warns_about_a_single_writer_database_only() -> None:
    plan = plan_availability("node-3", "active", "drain", None, [DB, GALERA])
    warnings = [line.text for line in plan.log if line.level is Level.WARNING]
    assert len(warnings) == 1
    assert "single-writer database db.1" in warnings[0]


def test_pause_and_activate_move_nothing() -> None:
    for current, desired in (("active", "pause"), ("drain", "active"), ("pause", "active")):
        plan = plan_availability("node-2", current, desired, None, [DB])
        assert plan.availability == desired
        assert all(line.level is not Level.WARNING for line in plan.log)
        assert plan.status.outcome is Outcome.OK


def test_converged_drain_is_ok_once_empty_and_pending_before() -> None:
    assert plan_availability("n", "drain", "drain", None, []).status.outcome is Outcome.OK
    plan = plan_availability("n", "drain", "drain", None, [WEB])
    assert plan.availability is None
    assert plan.status.outcome is Outcome.PENDING
