"""The built-in handlers against the real sandbox swarm and Consul."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import consul
import docker
import pytest
import swarmop.handlers  # registers the built-in handlers on the default registry
from swarmop.handlers.placement_plan import APPLIED_PLACEMENT_LABEL

from swarmop.clients.swarm_write import update_node, update_service
from swarmop.registry import default_registry
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.info import BUSYBOX_IMAGE
from swarmop.sandbox.testing import Tracker, running_tasks, task_node_hostnames, unique, wait_until
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.status import ObjectStatus, Outcome
from swarmop.testing import OperatorRunner

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
assert swarmop.handlers.services  # imported for its registrations


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


def timestamp(text: str) -> datetime:
    """Docker's RFC 3339 time (nanoseconds, trailing zeros trimmed) as a datetime."""
    head, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00")


def all_tasks(api: docker.APIClient, service_id: str) -> list[dict[str, Any]]:
    """Every task Swarm keeps for the service, shut down ones included."""
    return list(api.tasks(filters={"service": service_id}))


def node_events(runner: OperatorRunner, hostname: str) -> list[tuple[str, str]]:
    return [(str(e.level), e.message) for e in runner.snapshot().events if e.object == hostname]


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
    history = {t["ID"] for t in all_tasks(docker_api, service_id)}
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
    # Swarm would replace the task shortly after the write if it were going
    # to: watch it for a while (a dozen listings) instead of once.
    seen: list[list[str]] = []

    def watched() -> bool:
        seen.append([t["ID"] for t in running_tasks(docker_api, service_id)])
        return len(seen) >= 12

    wait_until(watched, timeout=60, interval=0.5, what="a dozen listings of the db's tasks")
    assert all(ids == [task["ID"]] for ids in seen), seen
    assert {t["ID"] for t in all_tasks(docker_api, service_id)} == history, "a task was replaced"


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


def set_availability(
    via: str, api: docker.APIClient, kv: consul.Consul, prefix: str, node: str, *, value: str
) -> None:
    """Desired availability through a label or the Consul key, until the node has it.
    Tests go back to active through the same source, so the tracker's restore is not
    fought."""
    hostname = api.inspect_node(node)["Description"]["Hostname"]
    if via == "label":
        set_node_label(api, node, "swarmop.availability", value)
    else:
        kv.kv.put(f"{prefix}/nodes/{hostname}/availability", value)
    wait_until(
        lambda: api.inspect_node(node)["Spec"]["Availability"] == value,
        timeout=60,
        what=f"{hostname} {value}",
    )


def task_label(service: str, task: dict[str, Any]) -> str:
    """How the drain log names a task (handlers.availability_plan.NodeTask.label)."""
    return f"{service}.{task['Slot']} ({task['ID'][:12]})"


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
    name = unique("drn")
    service_id = tracker.create_service(name, command=SLEEPER, replicas=3)

    def on_node_2() -> list[dict[str, Any]]:
        tasks = running_tasks(docker_api, service_id)
        hosts = task_node_hostnames(docker_api, tasks)
        return [task for task, host in zip(tasks, hosts, strict=True) if host == "node-2"]

    before = wait_until(
        lambda: len(running_tasks(docker_api, service_id)) == 3 and on_node_2(),
        timeout=90,
        what="3 tasks running, one or more on node-2",
    )
    set_availability(via, docker_api, consul_client, prefix, worker, value="drain")
    wait_until(
        lambda: not on_node_2() and len(running_tasks(docker_api, service_id)) == 3,
        timeout=120,
        what="tasks moved off node-2",
    )
    running_now = {t["ID"] for t in running_tasks(docker_api, service_id)}
    assert running_now.isdisjoint(t["ID"] for t in before), "a drained task still runs"
    moves = [m for _, m in node_events(operator, "node-2") if "drain of node-2 moves" in m]
    assert moves, node_events(operator, "node-2")
    for task in before:
        assert task_label(name, task) in moves[-1], (task_label(name, task), moves)
    assert not any("single-writer" in message for _, message in node_events(operator, "node-2")), (
        "no database ran there"
    )
    set_availability(via, docker_api, consul_client, prefix, worker, value="active")


def test_drain_warns_when_it_moves_a_single_writer_db(
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
    operator: OperatorRunner,
) -> None:
    name = unique("ddb")
    service_id = tracker.create_service(
        name,
        command=SLEEPER,
        replicas=1,
        labels={"swarmop.role": "db"},
        constraints=["node.role==worker"],
    )
    (task,) = wait_until(
        lambda: running_tasks(docker_api, service_id),
        timeout=90,
        what="the db running on a worker",
    )
    (hostname,) = task_node_hostnames(docker_api, [task])
    node = node_id(docker_api, hostname)
    tracker.node(node)
    set_availability("label", docker_api, consul_client, prefix, node, value="drain")
    warnings = wait_until(
        lambda: [
            message
            for level, message in node_events(operator, hostname)
            if level == "warning" and "single-writer database" in message
        ],
        timeout=60,
        what=f"a warning about {name} in {hostname}'s event log",
    )
    assert task_label(name, task) in warnings[0], warnings
    # It moves to the other worker, and nothing else warns about it there.
    wait_until(
        lambda: (
            (t := running_tasks(docker_api, service_id))
            and task_node_hostnames(docker_api, t) != [hostname]
        ),
        timeout=120,
        what="the db restarted on the other worker",
    )
    set_availability("label", docker_api, consul_client, prefix, node, value="active")


def test_replicas_on_a_global_service_is_rejected(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    name = unique("glob")
    created = docker_api.create_service(
        docker.types.TaskTemplate(
            container_spec=docker.types.ContainerSpec(BUSYBOX_IMAGE, command=SLEEPER)
        ),
        name=name,
        mode=docker.types.ServiceMode("global"),
        labels={"swarmop.replicas": "3"},
    )
    service_id = tracker.service(created["ID"])
    wait_status(operator, name, Outcome.ERROR, "swarmop.replicas rejected")
    found = status(operator, name)
    assert found is not None
    assert f"{name} is a global service" in found.message
    assert "only replicated services have a replica count" in found.message
    mode = spec(docker_api, service_id)["Mode"]
    assert "Global" in mode and "Replicated" not in mode


def test_single_writer_db_scaled_by_hand_is_brought_back_to_one(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    name = unique("swdb")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=1, labels={"swarmop.role": "db"}
    )
    wait_until(
        lambda: all(
            (spec(docker_api, service_id).get(section) or {}).get("Order") == "stop-first"
            for section in ("UpdateConfig", "RollbackConfig")
        ),
        timeout=60,
        what="updates and rollbacks made stop-first",
    )
    (original,) = wait_until(
        lambda: running_tasks(docker_api, service_id), timeout=90, what="the db running"
    )
    wait_status(operator, name, Outcome.OK)
    version = docker_api.inspect_service(service_id)["Version"]["Index"]
    # The full spec with only the count changed, as `docker service scale` does.
    # (docker-py's Service.scale() sends the spec back with the daemon's
    # defaults filled in, which changes the task template and replaces every
    # task by itself.)
    scale_by_hand(docker_api, service_id, 3)
    wait_until(
        lambda: (
            docker_api.inspect_service(service_id)["Version"]["Index"] > version + 1
            and replicas(docker_api, service_id) == 1
        ),
        timeout=60,
        what="the hand scale to 3 undone",
    )
    wait_until(
        lambda: (
            len(running_tasks(docker_api, service_id)) == 1
            and all(
                t["ID"] == original["ID"] or t["DesiredState"] != "running"
                for t in all_tasks(docker_api, service_id)
            )
        ),
        timeout=90,
        what="only the original task left running",
    )
    assert [t["ID"] for t in running_tasks(docker_api, service_id)] == [original["ID"]]
    events = [e for e in operator.snapshot().events if e.object == name]
    assert any(
        str(e.level) == "warning" and "scaled to 3" in e.message and "restoring 1" in e.message
        for e in events
    ), [e.message for e in events]
    wait_status(operator, name, Outcome.OK)


def test_wordpress_like_stack(
    docker_api: docker.APIClient, tracker: Tracker, operator: OperatorRunner
) -> None:
    """The seed's start race: web x2 is created first, depending on a db that does
    not exist yet. Its tasks may come up before the operator looks; it is held at
    0 (blocked, re-checked) while db is absent, and released once db runs."""
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
    wait_status(operator, web, Outcome.BLOCKED, f"no existing service: {db}; held at 0")
    wait_until(
        lambda: replicas(docker_api, web_id) == 0 and not running_tasks(docker_api, web_id),
        timeout=90,
        what="web held at 0 running tasks",
    )
    # Held, not merely caught at 0: it stays there through the next re-check.
    found = status(operator, web)
    assert found is not None and found.last_run is not None
    held_since = found.last_run
    counts: list[int] = []

    def rechecked() -> bool:
        counts.append(len(running_tasks(docker_api, web_id)) + replicas(docker_api, web_id))
        again = status(operator, web)
        return again is not None and (again.last_run or 0) > held_since

    wait_until(rechecked, timeout=90, what="web looked at again while db is absent")
    assert set(counts) == {0}, counts
    wait_status(operator, web, Outcome.BLOCKED, f"no existing service: {db}")

    db_id = tracker.create_service(
        db, command=SLEEPER, replicas=1, labels={"swarmop.role": "db"}, networks=[net]
    )
    (db_task,) = wait_until(lambda: running_tasks(docker_api, db_id), timeout=90, what="db runs")
    web_tasks = wait_until(
        lambda: (t := running_tasks(docker_api, web_id)) and len(t) == 2 and t,
        timeout=120,
        what="web x2",
    )
    db_running_since = timestamp(db_task["Status"]["Timestamp"])
    assert all(timestamp(t["CreatedAt"]) > db_running_since for t in web_tasks), (
        "a web task was started before db ran"
    )
    wait_status(operator, web, Outcome.OK, f"proxy: {web}.local/ -> 2 task(s)")
    wait_status(operator, web, Outcome.OK, "2/2 replicas running")
