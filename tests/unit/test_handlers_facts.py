"""From raw Docker attributes to planner facts."""

from __future__ import annotations

from typing import Any

from swarmop.handlers.facts import (
    dependency_graph,
    field_error,
    network_names,
    node_facts,
    node_tasks,
    placement_facts,
    replica_facts,
    running_by_service,
    task_addresses,
)

from swarmop.desired import merge_desired
from swarmop.views import NodeView, ServiceView, TaskView


def service_attrs(
    name: str, sid: str, *, replicas: int | None = 2, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    mode: dict[str, Any] = (
        {"Replicated": {"Replicas": replicas}} if replicas is not None else {"Global": {}}
    )
    return {
        "ID": sid,
        "Version": {"Index": 11},
        "Spec": {
            "Name": name,
            "Labels": labels or {},
            "Mode": mode,
            "TaskTemplate": {
                "ContainerSpec": {"Image": "web"},
                "Placement": {"Constraints": ["node.role!=manager"], "MaxReplicas": 1},
                "Networks": [{"Target": "net1"}],
            },
        },
        "UpdateStatus": {"State": "updating"},
    }


def task(
    tid: str,
    sid: str,
    node: str,
    *,
    state: str = "running",
    desired: str = "running",
    ip: str = "10.0.1.5/24",
) -> TaskView:
    return TaskView(
        {
            "ID": tid,
            "ServiceID": sid,
            "NodeID": node,
            "Slot": 1,
            "DesiredState": desired,
            "Status": {"State": state},
            "NetworksAttachments": [
                {"Network": {"ID": "net1", "Spec": {"Name": "front"}}, "Addresses": [ip]}
            ],
        }
    )


WEB = ServiceView(service_attrs("web", "s1", labels={"swarmop-applied.held-replicas": "2"}))
AGENT = ServiceView(service_attrs("agent", "s2", replicas=None))
TASKS = [
    task("t1", "s1", "n1"),
    task("t2", "s1", "n2", state="starting"),
    task("t3", "s1", "n2", state="shutdown", desired="shutdown"),
    task("t4", "s2", "n2"),
]


def test_replica_facts() -> None:
    facts = replica_facts(WEB, TASKS[:3])
    assert facts.name == "web" and facts.mode == "replicated"
    assert facts.spec_replicas == 2
    assert facts.running_tasks == 1
    assert facts.update_state == "updating"
    assert facts.held_label == "2"


def test_placement_facts_list_only_live_tasks() -> None:
    facts = placement_facts(WEB, TASKS[:3])
    assert facts.constraints == ("node.role!=manager",)
    assert facts.max_replicas == 1
    assert [t.id for t in facts.tasks] == ["t1", "t2"]


def test_node_facts() -> None:
    node = NodeView(
        {
            "ID": "n3",
            "Description": {
                "Hostname": "node-3",
                "Platform": {"OS": "linux", "Architecture": "x86_64"},
                "Engine": {"Labels": {"zone": "a"}},
            },
            "Spec": {"Role": "worker", "Availability": "active", "Labels": {"storage": "ssd"}},
            "Status": {"State": "ready"},
        }
    )
    facts = node_facts(node)
    assert (facts.hostname, facts.role, facts.availability, facts.state) == (
        "node-3",
        "worker",
        "active",
        "ready",
    )
    assert facts.labels == {"storage": "ssd"} and facts.engine_labels == {"zone": "a"}
    assert facts.schedulable


def test_running_by_service_counts_every_service() -> None:
    assert running_by_service([WEB, AGENT], TASKS) == {"web": 1, "agent": 1}
    assert running_by_service([WEB], []) == {"web": 0}


def test_dependency_graph_and_field_error() -> None:
    good = merge_desired("service", {"swarmop.depends_on": "db, cache"}, {})
    bad = merge_desired("service", {"swarmop.depends_on": "d b;"}, {})
    assert dependency_graph({"web": good, "x": bad}) == {"web": ("db", "cache"), "x": ()}
    assert field_error(good, "depends_on") is None
    assert "depends_on" in (field_error(bad, "depends_on") or "")


def test_node_tasks_carry_role_and_mode() -> None:
    desired = {"web": merge_desired("service", {"swarmop.role": "db"}, {})}
    found = node_tasks("n2", TASKS, [WEB, AGENT], desired)
    assert [(t.service, t.global_mode, t.single_writer_db) for t in found] == [
        ("agent", True, False),
        ("web", False, True),
    ]


def test_task_addresses_and_network_names() -> None:
    assert task_addresses(TASKS) == [{"front": ["10.0.1.5"]}, {"front": ["10.0.1.5"]}]
    assert network_names(WEB, {"net1": "front"}) == ["front"]
