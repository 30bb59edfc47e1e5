"""Replica planning: drift, rollouts, global services, single-writer dbs, holds."""

from __future__ import annotations

import pytest
from swarmop.handlers.decision import Level, Outcome, Status
from swarmop.handlers.depends_plan import DependencyCheck
from swarmop.handlers.replicas_plan import (
    APPLIED_REPLICAS_LABEL,
    HELD_REPLICAS_LABEL,
    ReplicaFacts,
    ReplicaIntent,
    plan_replicas,
)
from swarmop.handlers.services import replicas_changed

from swarmop.desired import merge_desired

WAITING = DependencyCheck(
    ready=False,
    status=Status.pending("held at 0 replicas until db has a running task"),
    waiting_on=("db",),
    dependencies=("db",),
)
READY_WITH_DB = DependencyCheck(ready=True, dependencies=("db",))
BLOCKED = DependencyCheck(ready=False, status=Status.blocked("depends_on forms a cycle: a -> a"))
MISSING = DependencyCheck(
    ready=False,
    status=Status.blocked("depends_on names no existing service: db; held at 0", recheck=True),
    waiting_on=("db",),
    dependencies=("db",),
    missing=("db",),
)


def facts(spec: int | None = 2, running: int = 2, **kwargs: object) -> ReplicaFacts:
    values: dict[str, object] = {
        "name": "web",
        "mode": "replicated",
        "spec_replicas": spec,
        "running_tasks": running,
    }
    values.update(kwargs)
    return ReplicaFacts(**values)  # type: ignore[arg-type]


def test_unmanaged_service_is_left_alone() -> None:
    plan = plan_replicas(facts(spec=5, running=5), ReplicaIntent())
    assert plan.replicas is None and not plan.writes
    assert plan.status.outcome is Outcome.OK


def test_converged_service_writes_nothing() -> None:
    plan = plan_replicas(facts(spec=3, running=3), ReplicaIntent(desired=3))
    assert not plan.writes
    assert plan.status.outcome is Outcome.OK
    assert plan.status.message == "3/3 replicas running"


@pytest.mark.parametrize("spec", [0, 1, 5, 10])
def test_drift_is_restored(spec: int) -> None:
    plan = plan_replicas(facts(spec=spec, running=spec), ReplicaIntent(desired=3))
    assert plan.replicas == 3
    assert plan.status.outcome is Outcome.PENDING
    assert any(line.level is Level.WARNING and "drift" in line.text for line in plan.log)


def test_first_scale_to_desired() -> None:
    plan = plan_replicas(facts(spec=1, running=1), ReplicaIntent(desired=4))
    assert plan.replicas == 4


@pytest.mark.parametrize("state", ["updating", "rollback_started", "paused", "rollback_paused"])
def test_rollout_in_progress_is_not_drift(state: str) -> None:
    plan = plan_replicas(facts(spec=5, running=3, update_state=state), ReplicaIntent(desired=3))
    assert plan.replicas is None
    assert plan.status.outcome is Outcome.PENDING
    assert state in plan.status.message


@pytest.mark.parametrize("state", ["completed", "rollback_completed", None])
def test_finished_rollout_lets_drift_be_restored(state: str | None) -> None:
    plan = plan_replicas(facts(spec=5, running=5, update_state=state), ReplicaIntent(desired=3))
    assert plan.replicas == 3


def test_rollout_with_matching_spec_is_just_converging() -> None:
    plan = plan_replicas(
        facts(spec=3, running=2, update_state="updating"), ReplicaIntent(desired=3)
    )
    assert plan.replicas is None
    assert plan.status.outcome is Outcome.PENDING
    assert "2/3" in plan.status.message


def test_tasks_still_starting_are_not_drift() -> None:
    plan = plan_replicas(facts(spec=4, running=1), ReplicaIntent(desired=4))
    assert plan.replicas is None
    assert plan.status.outcome is Outcome.PENDING
    assert "converging: 1/4" in plan.status.message


@pytest.mark.parametrize("mode", ["global", "replicated-job", "global-job"])
def test_non_replicated_service_with_replicas_is_an_error_without_write(mode: str) -> None:
    plan = plan_replicas(facts(spec=None, mode=mode), ReplicaIntent(desired=3))
    assert not plan.writes
    assert plan.status.outcome is Outcome.ERROR
    assert mode in plan.status.message


def test_global_service_without_replicas_is_fine() -> None:
    plan = plan_replicas(facts(spec=None, mode="global"), ReplicaIntent())
    assert plan.status.outcome is Outcome.OK


def test_invalid_desired_value_blocks_without_write() -> None:
    plan = plan_replicas(
        facts(spec=2), ReplicaIntent(desired_error="label replicas='x': not a number")
    )
    assert not plan.writes
    assert plan.status.outcome is Outcome.BLOCKED
    assert "replicas='x'" in plan.status.message


def single_writer(spec: int, running: int, **kwargs: object) -> ReplicaFacts:
    """A single-writer database whose updates are already stop-first."""
    return facts(
        spec=spec, running=running, update_order="stop-first", rollback_order="stop-first", **kwargs
    )


@pytest.mark.parametrize("desired", [2, 3, 10])
def test_single_writer_db_refuses_more_than_one(desired: int) -> None:
    plan = plan_replicas(
        single_writer(spec=1, running=1), ReplicaIntent(desired=desired, single_writer_db=True)
    )
    assert not plan.writes
    assert plan.status.outcome is Outcome.ERROR
    assert "at most 1" in plan.status.message


@pytest.mark.parametrize("desired", [None, 1])
def test_single_writer_db_scaled_by_hand_is_brought_back_to_one(desired: int | None) -> None:
    plan = plan_replicas(
        single_writer(spec=3, running=3), ReplicaIntent(desired=desired, single_writer_db=True)
    )
    assert plan.replicas == 1
    assert plan.status.outcome is Outcome.PENDING
    assert "3 -> 1" in plan.status.message and "at most 1 task" in plan.status.message
    (line,) = plan.log
    assert line.level is Level.WARNING and "scaled to 3" in line.text


def test_single_writer_db_scaled_by_hand_to_desired_zero_goes_to_zero() -> None:
    plan = plan_replicas(
        single_writer(spec=2, running=2), ReplicaIntent(desired=0, single_writer_db=True)
    )
    assert plan.replicas == 0


def test_single_writer_db_asked_and_scaled_above_one_is_refused_and_capped() -> None:
    plan = plan_replicas(
        single_writer(spec=3, running=3), ReplicaIntent(desired=3, single_writer_db=True)
    )
    assert plan.replicas == 1
    assert plan.status.outcome is Outcome.ERROR
    assert "asks for 3" in plan.status.message and "scaled 3 -> 1" in plan.status.message


def test_single_writer_db_is_capped_even_during_a_rollout() -> None:
    # A rollout is normally left alone; two writers are worse than a spec
    # write into it.
    plan = plan_replicas(
        single_writer(spec=2, running=2, update_state="updating"),
        ReplicaIntent(desired=1, single_writer_db=True),
    )
    assert plan.replicas == 1


def test_single_writer_db_released_by_depends_on_gets_at_most_one() -> None:
    plan = plan_replicas(
        single_writer(spec=0, running=0, held_label="3"),
        ReplicaIntent(single_writer_db=True, dependencies=READY_WITH_DB),
    )
    assert plan.replicas == 1


def test_single_writer_db_without_replicas_at_one_is_left_alone() -> None:
    plan = plan_replicas(single_writer(spec=1, running=1), ReplicaIntent(single_writer_db=True))
    assert not plan.writes
    assert plan.status.outcome is Outcome.OK


@pytest.mark.parametrize(
    ("update", "rollback"),
    [(None, None), ("start-first", "stop-first"), ("stop-first", "start-first")],
)
def test_single_writer_db_updates_are_made_stop_first(
    update: str | None, rollback: str | None
) -> None:
    plan = plan_replicas(
        facts(spec=1, running=1, update_order=update, rollback_order=rollback),
        ReplicaIntent(desired=1, single_writer_db=True),
    )
    assert plan.stop_first and plan.writes
    assert plan.replicas is None
    assert any("stop-first" in line.text for line in plan.log)


def test_stop_first_is_not_written_again_or_for_other_services() -> None:
    assert not plan_replicas(
        single_writer(spec=1, running=1), ReplicaIntent(desired=1, single_writer_db=True)
    ).stop_first
    assert not plan_replicas(
        facts(spec=1, running=1, update_order="start-first"), ReplicaIntent(desired=1)
    ).stop_first


@pytest.mark.parametrize("desired", [0, 1])
def test_single_writer_db_may_run_zero_or_one(desired: int) -> None:
    plan = plan_replicas(
        single_writer(spec=1, running=1), ReplicaIntent(desired=desired, single_writer_db=True)
    )
    assert plan.status.outcome is not Outcome.ERROR
    assert plan.replicas == (None if desired == 1 else 0)


def test_held_at_zero_while_dependency_missing() -> None:
    plan = plan_replicas(facts(spec=2, running=0), ReplicaIntent(desired=2, dependencies=WAITING))
    assert plan.replicas == 0
    assert plan.status.outcome is Outcome.PENDING
    assert "db" in plan.status.message
    assert not plan.set_labels  # the desired count is known: nothing to remember
    assert any("holding web at 0" in line.text for line in plan.log)


def test_held_service_without_replicas_remembers_its_count() -> None:
    plan = plan_replicas(facts(spec=2, running=0), ReplicaIntent(dependencies=WAITING))
    assert plan.replicas == 0
    assert plan.set_labels == {HELD_REPLICAS_LABEL: "2"}


def test_already_held_writes_nothing() -> None:
    plan = plan_replicas(
        facts(spec=0, running=0, held_label="2"), ReplicaIntent(dependencies=WAITING)
    )
    assert not plan.writes
    assert plan.status.outcome is Outcome.PENDING


def test_released_to_desired_once_dependencies_run() -> None:
    plan = plan_replicas(
        facts(spec=0, running=0), ReplicaIntent(desired=2, dependencies=READY_WITH_DB)
    )
    assert plan.replicas == 2
    assert any("dependencies of web run" in line.text for line in plan.log)
    assert all(line.level is not Level.WARNING for line in plan.log)


def test_released_to_remembered_count_and_label_dropped() -> None:
    plan = plan_replicas(
        facts(spec=0, running=0, held_label="3"), ReplicaIntent(dependencies=READY_WITH_DB)
    )
    assert plan.replicas == 3
    assert plan.drop_labels == (HELD_REPLICAS_LABEL,)


def test_desired_beats_remembered_count_on_release() -> None:
    plan = plan_replicas(
        facts(spec=0, running=0, held_label="3"),
        ReplicaIntent(desired=5, dependencies=READY_WITH_DB),
    )
    assert plan.replicas == 5
    assert plan.drop_labels == (HELD_REPLICAS_LABEL,)


def test_hold_is_applied_even_during_a_rollout() -> None:
    # Starting a service before its database is the race depends_on prevents.
    plan = plan_replicas(
        facts(spec=2, running=0, update_state="updating"),
        ReplicaIntent(desired=2, dependencies=WAITING),
    )
    assert plan.replicas == 0


def test_running_service_is_not_scaled_down_when_a_dependency_stops() -> None:
    plan = plan_replicas(facts(spec=2, running=2), ReplicaIntent(desired=2, dependencies=WAITING))
    assert not plan.writes
    assert plan.status.outcome is Outcome.PENDING
    assert "not scaled down" in plan.status.message


def test_first_pass_holds_tasks_that_started_in_the_race() -> None:
    # web was created with 2 replicas; its tasks came up before the operator
    # first handled it, while db was not running: that is the start race.
    plan = plan_replicas(
        facts(spec=2, running=2),
        ReplicaIntent(desired=2, dependencies=WAITING, first_pass=True),
    )
    assert plan.replicas == 0
    assert plan.status.outcome is Outcome.PENDING


def test_missing_dependency_holds_a_new_service_at_zero() -> None:
    plan = plan_replicas(
        facts(spec=2, running=1),
        ReplicaIntent(desired=2, dependencies=MISSING, first_pass=True),
    )
    assert plan.replicas == 0
    assert plan.status.outcome is Outcome.BLOCKED and plan.status.recheck
    assert "no existing service: db" in plan.status.message


def test_missing_dependency_keeps_a_held_service_at_zero() -> None:
    plan = plan_replicas(facts(spec=0, running=0), ReplicaIntent(desired=2, dependencies=MISSING))
    assert not plan.writes
    assert plan.status.outcome is Outcome.BLOCKED and plan.status.recheck


def test_missing_dependency_does_not_scale_down_a_service_that_ran() -> None:
    plan = plan_replicas(facts(spec=2, running=2), ReplicaIntent(desired=2, dependencies=MISSING))
    assert not plan.writes
    assert plan.status.outcome is Outcome.BLOCKED and plan.status.recheck
    assert "no existing service: db" in plan.status.message
    assert "not scaled down" in plan.status.message


def test_held_service_stays_held_even_if_a_task_lingers() -> None:
    plan = plan_replicas(
        facts(spec=0, running=1, held_label="2"), ReplicaIntent(dependencies=WAITING)
    )
    assert not plan.writes
    assert plan.status.outcome is Outcome.PENDING


def test_a_dependency_cycle_leaves_replicas_alone() -> None:
    plan = plan_replicas(facts(spec=2, running=2), ReplicaIntent(desired=4, dependencies=BLOCKED))
    assert not plan.writes
    assert plan.status.outcome is Outcome.BLOCKED


def test_garbage_held_label_is_ignored_on_release() -> None:
    plan = plan_replicas(
        facts(spec=0, running=0, held_label="lots"), ReplicaIntent(dependencies=READY_WITH_DB)
    )
    assert plan.replicas is None
    assert plan.drop_labels == (HELD_REPLICAS_LABEL,)


def test_changed_desired_count_is_applied_not_called_drift() -> None:
    plan = plan_replicas(facts(spec=2, running=2), ReplicaIntent(desired=4, desired_changed=True))
    assert plan.replicas == 4
    assert not any("drift" in line.text for line in plan.log)
    assert any(line.level is Level.INFO and "2 -> 4" in line.text for line in plan.log)


def test_replicas_changed_compares_with_the_last_handled_essence() -> None:
    desired = merge_desired("service", {"swarmop.replicas": "4"}, {})
    assert replicas_changed(desired, None)
    assert replicas_changed(desired, {"spec": {}, "desired": {"replicas": 2}})
    assert not replicas_changed(desired, {"spec": {}, "desired": {"replicas": 4}})


def test_replicas_changed_prefers_what_the_operator_applied() -> None:
    desired = merge_desired("service", {"swarmop.replicas": "1"}, {})
    # The last handled state still says 1 (its cycle never finished), but the
    # operator has since scaled to 3: a change back to 1 is a new wish.
    stale = {"spec": {}, "desired": {"replicas": 1}}
    assert replicas_changed(desired, stale, applied="3")
    assert not replicas_changed(desired, {"spec": {}, "desired": {"replicas": 3}}, applied="1")
    assert not replicas_changed(desired, stale, applied="garbage")  # falls back to the essence


def test_a_scale_to_the_desired_count_records_it() -> None:
    plan = plan_replicas(facts(spec=1, running=1), ReplicaIntent(desired=3, desired_changed=True))
    assert plan.replicas == 3
    assert plan.set_labels == {APPLIED_REPLICAS_LABEL: "3"}


def test_a_converged_service_does_not_write_the_record_alone() -> None:
    plan = plan_replicas(facts(spec=3, running=3), ReplicaIntent(desired=3))
    assert not plan.writes


def test_the_record_goes_when_replicas_is_no_longer_managed() -> None:
    plan = plan_replicas(facts(spec=3, running=3, applied_label="3"), ReplicaIntent())
    assert plan.replicas is None
    assert plan.drop_labels == (APPLIED_REPLICAS_LABEL,)


def test_held_service_does_not_record_a_count_it_did_not_apply() -> None:
    waiting = DependencyCheck(
        ready=False,
        status=Status.pending("waiting for db"),
        waiting_on=("db",),
        dependencies=("db",),
    )
    plan = plan_replicas(
        facts(spec=2, running=0), ReplicaIntent(desired=2, dependencies=waiting, first_pass=True)
    )
    assert plan.replicas == 0
    assert APPLIED_REPLICAS_LABEL not in plan.set_labels
