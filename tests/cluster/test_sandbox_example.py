"""`swarmop sandbox up --example` deploys the seeds' example: web with 2 running
backends, db on the one node labelled storage=ssd, nginx, and the `swarmop.*`
labels the operator reads. Idempotent: a second `up --example` changes nothing.

Runs on a sandbox of its own (`<session sandbox>-example`): the example's fixed
service names and nginx's host port 80 must not meet the session's tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import pytest

from swarmop.sandbox import NGINX_IMAGE, Sandbox
from swarmop.sandbox.testing import run_swarmop, running_tasks, task_node_hostnames, wait_until

pytestmark = pytest.mark.cluster

WEB_LABELS = {
    "swarmop.replicas": "2",
    "swarmop.proxy.host": "test.local",
    "swarmop.proxy.port": "8080",
    "swarmop.proxy.network": "swarmop-example",
}
DB_LABELS = {"swarmop.role": "db", "swarmop.placement": "node.labels.storage==ssd"}


def _service(api: docker.APIClient, name: str) -> dict[str, Any]:
    (found,) = [s for s in api.services(filters={"name": name}) if s["Spec"]["Name"] == name]
    return found


def _running(api: docker.APIClient, name: str, count: int) -> list[dict[str, Any]]:
    service_id = _service(api, name)["ID"]
    return wait_until(
        lambda: (tasks := running_tasks(api, service_id)) and len(tasks) == count and tasks,
        timeout=120,
        what=f"{count} running task(s) of {name}",
    )


def test_up_example_deploys_web_db_on_ssd_and_nginx_with_their_labels(
    side_sandbox: Callable[[str], Sandbox],
) -> None:
    example = side_sandbox("example")
    result = run_swarmop("sandbox", "up", "--name", example.name, "--example")
    assert result.returncode == 0, result.stdout + result.stderr
    info = example.info()
    assert info is not None
    api = docker.APIClient(base_url=info.manager_docker_host, version="1.41", timeout=60)
    try:
        ssd_nodes = [
            node["Description"]["Hostname"]
            for node in api.nodes()
            if (node["Spec"].get("Labels") or {}).get("storage") == "ssd"
        ]
        assert ssd_nodes == ["node-3"]
        network = api.inspect_network("swarmop-example")
        assert network["Driver"] == "overlay" and network["Attachable"] is True

        web = _service(api, "web")
        assert web["Spec"]["Labels"] == WEB_LABELS
        assert web["Spec"]["Mode"]["Replicated"]["Replicas"] == 2
        assert len(_running(api, "web", 2)) == 2

        db = _service(api, "db")
        assert db["Spec"]["Labels"] == DB_LABELS
        placement = db["Spec"]["TaskTemplate"]["Placement"]["Constraints"]
        assert placement == ["node.labels.storage==ssd"]
        assert task_node_hostnames(api, _running(api, "db", 1)) == ["node-3"]

        nginx = _service(api, "nginx")
        assert nginx["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == NGINX_IMAGE
        (port,) = nginx["Spec"]["EndpointSpec"]["Ports"]
        assert (port["PublishedPort"], port["PublishMode"]) == (80, "host")
        _running(api, "nginx", 1)

        for name in ("web", "db", "nginx"):
            attached = _service(api, name)["Spec"]["TaskTemplate"]["Networks"]
            assert [n["Target"] for n in attached] == [network["Id"]]

        status = run_swarmop("sandbox", "status", "--name", example.name)
        assert status.returncode == 0, status.stdout
        for line in ("  web      2/2 running", "  db       1/1 running", "  nginx    1/1 running"):
            assert line in status.stdout.splitlines(), status.stdout

        versions = {n: _service(api, n)["Version"]["Index"] for n in ("web", "db", "nginx")}
        again = run_swarmop("sandbox", "up", "--name", example.name, "--example")
        assert again.returncode == 0, again.stderr
        assert {n: _service(api, n)["Version"]["Index"] for n in versions} == versions
    finally:
        api.close()

    down = run_swarmop("sandbox", "down", "--name", example.name)
    assert down.returncode == 0, down.stderr
    assert not example.leftovers(), example.leftovers()
