"""The sandbox is a real swarm: scheduling, constraints, drain, overlay traffic, Consul."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import consul
import docker
import pytest

from swarmop.clients.swarm_write import update_node
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import (
    Tracker,
    http_get_from_container,
    running_tasks,
    task_ips,
    task_node_hostnames,
    unique,
    wait_until,
)

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
# How long a blocking query must stay unanswered before the write, to show it
# waits for one (a plain read answers at once).
BLOCKING_PROOF_SECONDS = 3.0


def _node_id(api: docker.APIClient, hostname: str) -> str:
    for node in api.nodes():
        if node["Description"]["Hostname"] == hostname:
            return str(node["ID"])
    raise AssertionError(f"no node {hostname}")


def test_three_nodes_ready_with_distinct_hostnames(docker_api: docker.APIClient) -> None:
    nodes = docker_api.nodes()
    hostnames = sorted(node["Description"]["Hostname"] for node in nodes)
    assert hostnames == ["node-1", "node-2", "node-3"]
    assert all(node["Status"]["State"] == "ready" for node in nodes)
    managers = [n["Description"]["Hostname"] for n in nodes if n["Spec"]["Role"] == "manager"]
    assert managers == ["node-1"]


def test_replicas_spread_over_the_nodes(docker_api: docker.APIClient, tracker: Tracker) -> None:
    service = tracker.create_service(command=SLEEPER, replicas=4)
    tasks = wait_until(
        lambda: (t := running_tasks(docker_api, service)) and len(t) == 4 and t,
        timeout=90,
        what="4 running tasks",
    )
    per_node = Counter(task_node_hostnames(docker_api, tasks))
    assert set(per_node) == {"node-1", "node-2", "node-3"}, per_node


def test_constrained_service_lands_on_the_labelled_node(
    docker_api: docker.APIClient, tracker: Tracker
) -> None:
    node_id = tracker.node(_node_id(docker_api, "node-2"))

    def label_ssd(spec: dict[str, Any]) -> bool:
        spec.setdefault("Labels", {})["storage"] = "ssd"
        return True

    update_node(docker_api, node_id, label_ssd)
    service = tracker.create_service(
        command=SLEEPER, replicas=2, constraints=["node.labels.storage==ssd"]
    )
    tasks = wait_until(
        lambda: (t := running_tasks(docker_api, service)) and len(t) == 2 and t,
        timeout=90,
        what="2 running tasks of the constrained service",
    )
    assert task_node_hostnames(docker_api, tasks) == ["node-2", "node-2"]


def test_drain_moves_tasks_away_and_activate_works(
    docker_api: docker.APIClient, tracker: Tracker
) -> None:
    service = tracker.create_service(command=SLEEPER, replicas=3)
    wait_until(
        lambda: (
            "node-3" in task_node_hostnames(docker_api, running_tasks(docker_api, service))
            and len(running_tasks(docker_api, service)) == 3
        ),
        timeout=90,
        what="3 running tasks, one on node-3",
    )
    node_id = tracker.node(_node_id(docker_api, "node-3"))

    def availability(value: str) -> Any:
        def mutate(spec: dict[str, Any]) -> bool:
            spec["Availability"] = value
            return True

        return mutate

    update_node(docker_api, node_id, availability("drain"))

    def drained() -> list[str] | bool:
        hosts = task_node_hostnames(docker_api, running_tasks(docker_api, service))
        return len(hosts) == 3 and "node-3" not in hosts and hosts

    wait_until(drained, timeout=90, what="3 running tasks, none on drained node-3")
    update_node(docker_api, node_id, availability("active"))
    assert docker_api.inspect_node(node_id)["Spec"]["Availability"] == "active"
    # An active node takes new tasks again: a service pinned to it runs.
    pinned = tracker.create_service(command=SLEEPER, constraints=["node.hostname==node-3"])
    wait_until(
        lambda: running_tasks(docker_api, pinned),
        timeout=90,
        what="a task on re-activated node-3",
    )


def test_http_from_overlay_reaches_every_web_task_by_ip(
    docker_api: docker.APIClient,
    tracker: Tracker,
    node_clients: dict[str, docker.DockerClient],
) -> None:
    network = tracker.create_network()
    network_id = docker_api.inspect_network(network)["Id"]
    # Backends only on the workers, the client on node-1: every request crosses nodes.
    service = tracker.create_service(
        replicas=2, networks=[network], constraints=["node.role==worker"]
    )
    tasks = wait_until(
        lambda: (t := running_tasks(docker_api, service)) and len(t) == 2 and t,
        timeout=90,
        what="2 running web tasks",
    )
    assert sorted(task_node_hostnames(docker_api, tasks)) == ["node-2", "node-3"]
    container_hostnames = set()
    for task in tasks:
        (ip,) = task_ips(task, network_id)
        response = wait_until(
            lambda ip=ip: (
                (
                    r := http_get_from_container(
                        node_clients["node-1"], f"{ip}:8080", network=network
                    )
                )
                and "200 OK" in r
                and r
            ),
            timeout=60,
            what=f"HTTP 200 from web task {ip} across the overlay",
        )
        container_hostnames.add(response.strip().splitlines()[-1])
    # index.html names the container: two tasks, two different answers.
    assert len(container_hostnames) == 2, container_hostnames


def test_consul_key_write_wakes_a_blocking_query(
    consul_client: consul.Consul, tracker: Tracker
) -> None:
    key = tracker.consul_key(f"swarmop-test/{unique('smoke')}")
    consul_client.kv.put(key, "before")
    index, item = consul_client.kv.get(key)
    assert item["Value"] == b"before"
    written = threading.Event()
    seen: dict[str, Any] = {}

    def block() -> None:
        seen["index"], seen["item"] = consul_client.kv.get(key, index=index, wait="60s")
        seen["after_write"] = written.is_set()

    waiter = threading.Thread(target=block, daemon=True)
    waiter.start()
    # A read that does not block answers in milliseconds, with the old value:
    # this one must still be waiting seconds later, with nothing written.
    waiter.join(timeout=BLOCKING_PROOF_SECONDS)
    assert waiter.is_alive(), f"the query returned without a write: {seen}"
    written.set()
    consul_client.kv.put(key, "after")
    waiter.join(timeout=30)
    assert not waiter.is_alive(), "the write did not wake the blocking query"
    assert seen["after_write"], "the query returned before the write"
    assert seen["item"]["Value"] == b"after"
    assert int(seen["index"]) > int(index)


def test_consul_reachable_from_a_container_on_a_worker(
    sandbox: SandboxInfo,
    consul_client: consul.Consul,
    tracker: Tracker,
    node_clients: dict[str, docker.DockerClient],
) -> None:
    key = tracker.consul_key(f"swarmop-test/{unique('from-swarm')}")
    value = unique("value")
    consul_client.kv.put(key, value)
    response = http_get_from_container(
        node_clients["node-3"], sandbox.consul_addr_in_swarm, path=f"/v1/kv/{key}?raw"
    )
    assert "200 OK" in response, response
    assert response.rstrip().endswith(value), response
