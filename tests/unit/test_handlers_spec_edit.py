"""Applying a plan to a fresh spec keeps every field the operator does not own."""

from __future__ import annotations

import copy
from typing import Any

from swarmop.handlers.placement_plan import APPLIED_MAX_REPLICAS_LABEL, APPLIED_PLACEMENT_LABEL
from swarmop.handlers.replicas_plan import HELD_REPLICAS_LABEL
from swarmop.handlers.spec_edit import ServiceEdit, edit_service_spec

from swarmop.desired import merge_desired


def spec() -> dict[str, Any]:
    return {
        "Name": "db",
        "Labels": {"owner": "team", "swarmop.role": "db"},
        "Mode": {"Replicated": {"Replicas": 5}},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "busybox", "Env": ["A=1"]},
            "Placement": {"Constraints": ["node.role!=manager"]},
        },
        "EndpointSpec": {"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]},
    }


def test_empty_edit_changes_nothing() -> None:
    original = spec()
    edited = copy.deepcopy(original)
    assert not ServiceEdit()
    assert edit_service_spec(edited, ServiceEdit()) is False
    assert edited == original


def test_replicas_only_touch_the_count() -> None:
    edited = spec()
    assert edit_service_spec(edited, ServiceEdit(replicas=2))
    expected = spec()
    expected["Mode"]["Replicated"]["Replicas"] = 2
    assert edited == expected


def test_replicas_never_turn_a_global_service_replicated() -> None:
    edited = spec()
    edited["Mode"] = {"Global": {}}
    before = copy.deepcopy(edited)
    assert edit_service_spec(edited, ServiceEdit(replicas=2)) is False
    assert edited == before


def test_constraints_merge_against_the_fresh_spec() -> None:
    edited = spec()
    # Someone added a constraint after the plan was made: it must survive.
    edited["TaskTemplate"]["Placement"]["Constraints"].append("node.labels.zone==a")
    assert edit_service_spec(edited, ServiceEdit(placement=("node.labels.storage==ssd",)))
    assert edited["TaskTemplate"]["Placement"]["Constraints"] == [
        "node.role!=manager",
        "node.labels.zone==a",
        "node.labels.storage==ssd",
    ]
    assert edited["Labels"][APPLIED_PLACEMENT_LABEL] == "node.labels.storage==ssd"
    assert edited["Labels"]["owner"] == "team"
    assert edited["EndpointSpec"] == spec()["EndpointSpec"]
    # Applying again is a no-op.
    assert edit_service_spec(edited, ServiceEdit(placement=("node.labels.storage==ssd",))) is False


def test_removing_placement_drops_only_the_operators_constraints() -> None:
    edited = spec()
    edit_service_spec(edited, ServiceEdit(placement=("node.labels.storage==ssd",)))
    assert edit_service_spec(edited, ServiceEdit(placement=()))
    assert edited["TaskTemplate"]["Placement"]["Constraints"] == ["node.role!=manager"]
    assert APPLIED_PLACEMENT_LABEL not in edited["Labels"]


def test_max_replicas_set_and_lifted() -> None:
    edited = spec()
    assert edit_service_spec(edited, ServiceEdit(max_replicas=1))
    assert edited["TaskTemplate"]["Placement"]["MaxReplicas"] == 1
    assert edited["TaskTemplate"]["Placement"]["Constraints"] == ["node.role!=manager"]
    assert edit_service_spec(edited, ServiceEdit(max_replicas=0))
    assert "MaxReplicas" not in edited["TaskTemplate"]["Placement"]


def test_labels_set_and_dropped() -> None:
    edited = spec()
    assert edit_service_spec(edited, ServiceEdit(replicas=0, set_labels={HELD_REPLICAS_LABEL: "5"}))
    assert edited["Labels"][HELD_REPLICAS_LABEL] == "5"
    assert edit_service_spec(edited, ServiceEdit(replicas=5, drop_labels=(HELD_REPLICAS_LABEL,)))
    assert edited == spec()


def test_spec_without_labels_or_placement_stays_without() -> None:
    edited = {"Name": "x", "Mode": {"Replicated": {"Replicas": 1}}, "TaskTemplate": {}}
    assert edit_service_spec(edited, ServiceEdit(max_replicas=0, drop_labels=("a",))) is False
    assert edited == {"Name": "x", "Mode": {"Replicated": {"Replicas": 1}}, "TaskTemplate": {}}


def test_bookkeeping_labels_are_not_desired_state_typos() -> None:
    labels = {
        APPLIED_PLACEMENT_LABEL: "node.labels.storage==ssd",
        APPLIED_MAX_REPLICAS_LABEL: "1",
        HELD_REPLICAS_LABEL: "2",
    }
    assert merge_desired("service", labels, {}).errors == ()


def test_stop_first_sets_both_orders_and_keeps_the_rest_of_the_update_config() -> None:
    edited = spec()
    edited["UpdateConfig"] = {"Parallelism": 1, "Order": "start-first", "FailureAction": "pause"}
    assert edit_service_spec(edited, ServiceEdit(stop_first=True))
    assert edited["UpdateConfig"] == {
        "Parallelism": 1,
        "Order": "stop-first",
        "FailureAction": "pause",
    }
    assert edited["RollbackConfig"] == {"Order": "stop-first"}
    expected = spec()
    for name in ("UpdateConfig", "RollbackConfig"):
        expected[name] = edited[name]
    assert edited == expected
    # Already stop-first: nothing to write.
    assert edit_service_spec(edited, ServiceEdit(stop_first=True)) is False
