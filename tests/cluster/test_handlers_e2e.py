"""The built-in handlers against the real sandbox swarm and Consul."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import consul
import docker
import pytest
import swarmop.handlers  # registers the built-in handlers on the default registry
from swarmop.handlers.placement_plan import APPLIED_PLACEMENT_LABEL

from swarmop.clients.swarm_write import update_node, update_service
from swarmop.registry import default_registry
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, running_tasks, task_node_hostnames, unique, wait_until
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.status import ObjectStatus, Outcome
from swarmop.testing import OperatorRunner

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
assert swarmop.handlers.services  # imported for its registrations


@pytest.fixture
def prefix(tracker: Tracker) -> str:
    name = unique("hop")
    tracker.consul_prefix(name + "/")
    return name


@pytest.fixture
def operator(sandbox: SandboxInfo, prefix: str) -> Iterator[OperatorRunner]:
    settings = Settings(
        docker=resolve_docker(host=sandbox.manager_docker_host, env={}),
        consul=resolve_consul(addr=sandbox.consul_http_addr, env={}),
        prefix=prefix,
        resync_interval=20.0,
    )
    # The event log takes what the process log lets through (`--log-level info`).
    logging.getLogger("swarmop").setLevel(logging.INFO)
    with OperatorRunner(settings, registry=default_registry) as runner:
        yield runner
    assert runner.exception is None


def spec(api: docker.APIClient, service_id: str) -> dict[str, Any]:
    return dict(api.inspect_service(service_id)["Spec"])


def replicas(api: docker.APIClient, service_id: str) -> int:
    return int(spec(api, service_id)["Mode"]["Replicated"]["Replicas"])


def status(runner: OperatorRunner, name: str) -> ObjectStatus | None:
    return runner.board.get(("service", name))


def wait_status(runner: OperatorRunner, name: str, outcome: Outcome, text: str = "") -> None:
    def matches() -> bool:
        found = status(runner, name)
        return found is not None and found.outcome is outcome and text in found.message

    wait_until(
        matches, timeout=60, what=f"{name} status {outcome} with {text!r}: {status(runner, name)}"
    )


def scale_by_hand(api: docker.APIClient, service_id: str, count: int) -> None:
    def scale(spec: dict[str, Any]) -> None:
        spec["Mode"]["Replicated"]["Replicas"] = count

    update_service(api, service_id, scale)


def set_labels(api: docker.APIClient, service_id: str, **labels: str | None) -> None:
    def change(spec: dict[str, Any]) -> None:
        current = spec.setdefault("Labels", {})
        for name, value in labels.items():
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value

    update_service(api, service_id, change)


def node_id(api: docker.APIClient, hostname: str) -> str:
    return next(n["ID"] for n in api.nodes() if n["Description"]["Hostname"] == hostname)


def set_node_label(api: docker.APIClient, node: str, name: str, value: str | None) -> None:
    def change(spec: dict[str, Any]) -> None:
        labels = spec.setdefault("Labels", {})
        if value is None:
            labels.pop(name, None)
        else:
            labels[name] = value

    update_node(api, node, change)


def test_drift_is_restored(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    service_id = tracker.create_service(
        command=SLEEPER, replicas=1, labels={"swarmop.replicas": "2"}
    )
    wait_until(lambda: replicas(docker_api, service_id) == 2, timeout=60, what="scaled to 2")
    scale_by_hand(docker_api, service_id, 4)
    wait_until(lambda: replicas(docker_api, service_id) == 2, timeout=60, what="drift restored")
    wait_until(
        lambda: len(running_tasks(docker_api, service_id)) == 2, timeout=90, what="2 running"
    )
    wait_status(operator, spec(docker_api, service_id)["Name"], Outcome.OK, "2/2 replicas running")


def test_rolling_update_that_also_scales_is_not_fought_then_drift_is_restored(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    """R14/R8: someone rolls a new env and scales 3 -> 2 in one write. While Swarm
    rolls the tasks the operator leaves the count alone (a spec write mid-rollout
    would also clear Swarm's UpdateStatus); once the rollout has completed it
    restores 3, and the other writer's env survives."""
    name = unique("roll")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=3, labels={"swarmop.replicas": "3"}, env=["ROUND=1"]
    )

    def slow_rollout(spec: dict[str, Any]) -> None:
        spec["UpdateConfig"] = {
            "Parallelism": 1,
            "Delay": 2_000_000_000,
            "Order": "stop-first",
            "FailureAction": "pause",
        }

    update_service(docker_api, service_id, slow_rollout)
    wait_status(operator, name, Outcome.OK, "3/3 replicas running")

    def roll_and_scale(spec: dict[str, Any]) -> None:
        spec["TaskTemplate"]["ContainerSpec"]["Env"] = ["ROUND=2"]
        spec["Mode"]["Replicated"]["Replicas"] = 2

    update_service(docker_api, service_id, roll_and_scale)
    states: list[str | None] = []
    counts_during_rollout: set[int] = set()
    messages: set[str] = set()

    def rollout_over() -> bool:
        attrs = docker_api.inspect_service(service_id)
        state = (attrs.get("UpdateStatus") or {}).get("State")
        states.append(state)
        if state == "updating":
            counts_during_rollout.add(attrs["Spec"]["Mode"]["Replicated"]["Replicas"])
            found = status(operator, name)
            if found is not None:
                messages.add(found.message)
        return state not in (None, "updating")

    wait_until(rollout_over, timeout=120, interval=0.1, what="the rollout to end")
    assert counts_during_rollout == {2}, "the operator wrote replicas into the rollout"
    assert states[-1] == "completed", states
    assert any("rolling update" in message for message in messages), messages
    wait_until(lambda: replicas(docker_api, service_id) == 3, timeout=60, what="3 restored")
    assert spec(docker_api, service_id)["TaskTemplate"]["ContainerSpec"]["Env"] == ["ROUND=2"]
    wait_status(operator, name, Outcome.OK, "3/3 replicas running")


def test_consul_key_beats_label(
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
    operator: OperatorRunner,
) -> None:
    name = unique("kv")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=1, labels={"swarmop.replicas": "1"}
    )
    consul_client.kv.put(f"{prefix}/services/{name}/replicas", "3")
    wait_until(lambda: replicas(docker_api, service_id) == 3, timeout=60, what="key applied")


def test_depends_on_holds_web_until_db_runs(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    db = unique("db")
    web = unique("web")
    web_id = tracker.create_service(
        web,
        command=SLEEPER,
        replicas=0,
        labels={"swarmop.replicas": "2", "swarmop.depends_on": db},
    )
    # The dependency does not exist yet: blocked, not acted on, looked at again.
    wait_status(operator, web, Outcome.BLOCKED, "no existing service")
    db_id = tracker.create_service(db, command=SLEEPER, replicas=0, labels={"swarmop.role": "db"})
    wait_status(operator, web, Outcome.PENDING, "held at 0")
    assert replicas(docker_api, web_id) == 0
    scale_by_hand(docker_api, db_id, 1)
    wait_until(lambda: replicas(docker_api, web_id) == 2, timeout=90, what="web released")
    wait_until(lambda: len(running_tasks(docker_api, web_id)) == 2, timeout=90, what="web runs")
    wait_status(operator, web, Outcome.OK, "2/2 replicas running")


def test_depends_on_cycle_is_blocked(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    a, b = unique("a"), unique("b")
    tracker.create_service(a, command=SLEEPER, replicas=1, labels={"swarmop.depends_on": b})
    b_id = tracker.create_service(b, command=SLEEPER, replicas=1, labels={"swarmop.depends_on": a})
    wait_status(operator, b, Outcome.BLOCKED, "cycle")
    assert replicas(docker_api, b_id) == 1


def test_single_writer_db_refuses_scale_above_one(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    name = unique("sdb")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=1, labels={"swarmop.role": "db", "swarmop.replicas": "1"}
    )
    wait_status(operator, name, Outcome.OK)
    set_labels(docker_api, service_id, **{"swarmop.replicas": "3"})
    wait_status(operator, name, Outcome.ERROR, "at most 1")
    assert replicas(docker_api, service_id) == 1


def test_cluster_db_scales_1_3_1_with_one_task_per_node(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    name = unique("galera")
    service_id = tracker.create_service(
        name,
        command=SLEEPER,
        replicas=1,
        labels={"swarmop.role": "db", "swarmop.db.cluster": "true", "swarmop.replicas": "1"},
    )
    wait_until(
        lambda: spec(docker_api, service_id)["TaskTemplate"]["Placement"].get("MaxReplicas") == 1,
        timeout=60,
        what="MaxReplicas=1",
    )
    set_labels(docker_api, service_id, **{"swarmop.replicas": "3"})
    wait_until(
        lambda: len(running_tasks(docker_api, service_id)) == 3, timeout=120, what="3 running"
    )
    hosts = task_node_hostnames(docker_api, running_tasks(docker_api, service_id))
    assert len(set(hosts)) == 3, hosts
    set_labels(docker_api, service_id, **{"swarmop.replicas": "1"})
    wait_until(
        lambda: len(running_tasks(docker_api, service_id)) == 1, timeout=120, what="back to 1"
    )


def test_placement_change_keeps_task_and_user_constraints(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    ssd = node_id(docker_api, "node-3")
    tracker.node(ssd)
    set_node_label(docker_api, ssd, "storage", "ssd")
    set_node_label(docker_api, ssd, "rack", "r1")
    name = unique("pdb")
    service_id = tracker.create_service(
        name,
        command=SLEEPER,
        replicas=1,
        labels={"swarmop.role": "db", "swarmop.placement": "node.labels.storage==ssd"},
        constraints=["node.role!=manager"],
    )
    wait_until(
        lambda: APPLIED_PLACEMENT_LABEL in (spec(docker_api, service_id).get("Labels") or {}),
        timeout=60,
        what="placement applied",
    )
    wait_until(lambda: len(running_tasks(docker_api, service_id)) == 1, timeout=90, what="db up")
    (task,) = running_tasks(docker_api, service_id)
    assert task_node_hostnames(docker_api, [task]) == ["node-3"]
    # A constraint the running node still satisfies: Swarm keeps the task.
    set_labels(
        docker_api,
        service_id,
        **{"swarmop.placement": "node.labels.storage==ssd,node.labels.rack==r1"},
    )
    wait_until(
        lambda: (
            "node.labels.rack==r1"
            in spec(docker_api, service_id)["TaskTemplate"]["Placement"]["Constraints"]
        ),
        timeout=60,
        what="new constraint written",
    )
    constraints = spec(docker_api, service_id)["TaskTemplate"]["Placement"]["Constraints"]
    assert "node.role!=manager" in constraints
    wait_status(operator, name, Outcome.OK)
    assert [t["ID"] for t in running_tasks(docker_api, service_id)] == [task["ID"]]


def test_unsatisfiable_placement_is_reported_and_db_not_moved(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    name = unique("udb")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=1, labels={"swarmop.role": "db"}
    )
    wait_until(lambda: len(running_tasks(docker_api, service_id)) == 1, timeout=90, what="db up")
    before = [t["ID"] for t in running_tasks(docker_api, service_id)]
    set_labels(docker_api, service_id, **{"swarmop.placement": "node.labels.storage==nvme"})
    wait_status(operator, name, Outcome.BLOCKED, "unschedulable")
    found = status(operator, name)
    assert found is not None and "node.labels.storage==nvme" in found.message
    assert "node.labels.storage==nvme" not in (
        spec(docker_api, service_id)["TaskTemplate"].get("Placement") or {}
    ).get("Constraints", [])
    assert [t["ID"] for t in running_tasks(docker_api, service_id)] == before


def _tasks_on(api: docker.APIClient, service_id: str, hostname: str) -> int:
    return task_node_hostnames(api, running_tasks(api, service_id)).count(hostname)


@pytest.mark.parametrize("via", ["label", "consul"])
def test_drain_moves_tasks(  # noqa: PLR0917
    via: str,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
    operator: OperatorRunner,
) -> None:
    worker = node_id(docker_api, "node-2")
    tracker.node(worker)
    service_id = tracker.create_service(command=SLEEPER, replicas=3)
    wait_until(
        lambda: _tasks_on(docker_api, service_id, "node-2") >= 1,
        timeout=90,
        what="a task on node-2",
    )
    if via == "label":
        set_node_label(docker_api, worker, "swarmop.availability", "drain")
    else:
        consul_client.kv.put(f"{prefix}/nodes/node-2/availability", "drain")
    wait_until(
        lambda: docker_api.inspect_node(worker)["Spec"]["Availability"] == "drain",
        timeout=60,
        what="node-2 drained",
    )
    wait_until(
        lambda: (
            _tasks_on(docker_api, service_id, "node-2") == 0
            and len(running_tasks(docker_api, service_id)) == 3
        ),
        timeout=120,
        what="tasks moved off node-2",
    )
    events = [e.message for e in operator.snapshot().events if e.object == "node-2"]
    assert any("moves" in message for message in events), events
    # Back to active through the same source, so the tracker's restore is not fought.
    if via == "label":
        set_node_label(docker_api, worker, "swarmop.availability", "active")
    else:
        consul_client.kv.put(f"{prefix}/nodes/node-2/availability", "active")
    wait_until(
        lambda: docker_api.inspect_node(worker)["Spec"]["Availability"] == "active",
        timeout=60,
        what="node-2 active again",
    )


def test_wordpress_like_stack(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    """The seed: web x2 depends on db; both created at once, web waits for db."""
    net = tracker.create_network()
    db, web = unique("wpdb"), unique("wp")
    web_id = tracker.create_service(
        web,
        replicas=2,
        labels={
            "swarmop.replicas": "2",
            "swarmop.depends_on": db,
            "swarmop.proxy.host": f"{web}.local",
            "swarmop.proxy.port": "8080",
        },
        networks=[net],
    )
    db_id = tracker.create_service(
        db, command=SLEEPER, replicas=1, labels={"swarmop.role": "db"}, networks=[net]
    )
    wait_until(lambda: len(running_tasks(docker_api, db_id)) == 1, timeout=90, what="db runs")
    wait_until(lambda: len(running_tasks(docker_api, web_id)) == 2, timeout=120, what="web x2")
    wait_status(operator, web, Outcome.OK, f"proxy: {web}.local/ -> 2 task(s)")
    wait_status(operator, web, Outcome.OK, "2/2 replicas running")
