"""The operator image, built without a registry, runs as a Swarm service and reconciles.

The image is built from the machine's Python and a local wheelhouse
(`swarmop.sandbox.operator_image`), loaded into every node, and started on the
manager with the Docker socket mounted and Consul at the sandbox's in-swarm
address. A service labelled `swarmop.replicas=2` is then scaled by it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import consul
import docker
import docker.types
import pytest

from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.operator_image import OPERATOR_IMAGE, build_operator_image
from swarmop.sandbox.testing import Tracker, unique
from swarmop.sandbox.tools import find_tools

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def operator_image(sandbox: SandboxInfo) -> str:
    timings = build_operator_image(sandbox, Path(find_tools().busybox))
    print("operator image:", " ".join(f"{key}={value:.1f}" for key, value in timings.items()))
    return OPERATOR_IMAGE


def socket_path(docker_host: str) -> str:
    assert docker_host.startswith("unix://")
    return docker_host[len("unix://") :]


def test_operator_service_scales_a_labelled_service_from_inside_the_swarm(
    *,
    sandbox: SandboxInfo,
    operator_image: str,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    wait_until: Any,
) -> None:
    prefix = tracker.consul_prefix(unique("opimg"))
    operator = docker.types.TaskTemplate(
        container_spec=docker.types.ContainerSpec(
            operator_image,
            args=["--http", "0.0.0.0:8080", "--prefix", prefix, "--instance-id", "in-swarm"],
            env=[f"CONSUL_HTTP_ADDR={sandbox.consul_addr_in_swarm}"],
            user="root",
            mounts=[
                docker.types.Mount(
                    "/var/run/docker.sock",
                    socket_path(sandbox.manager_docker_host),
                    type="bind",
                )
            ],
        ),
        placement=docker.types.Placement(constraints=["node.role==manager"]),
        restart_policy=docker.types.RestartPolicy(condition="any", delay=2_000_000_000),
    )
    created = docker_api.create_service(
        operator,
        name=unique("operator"),
        mode=docker.types.ServiceMode("replicated", replicas=1),
    )
    tracker.service(created["ID"])

    def operator_leads() -> bool:
        _index, item = consul_client.kv.get(f"{prefix}/operator")
        return bool(item) and json.loads(item["Value"]).get("instance") == "in-swarm"

    wait_until(operator_leads, timeout=90, what="the operator in the swarm to lead and publish")

    service = tracker.create_service(labels={"swarmop.replicas": "2"}, command=["sleep", "1d"])

    def replicas() -> int:
        spec = docker_api.inspect_service(service)["Spec"]
        return int(spec["Mode"]["Replicated"]["Replicas"])

    wait_until(lambda: replicas() == 2, timeout=60, what="the operator to scale to 2 replicas")

    def healthy() -> bool:
        tasks = docker_api.tasks(filters={"service": created["ID"], "desired-state": "running"})
        for task in tasks:
            container = (task.get("Status") or {}).get("ContainerStatus") or {}
            if container.get("ContainerID"):
                state = docker_api.inspect_container(container["ContainerID"])["State"]
                return (state.get("Health") or {}).get("Status") == "healthy"
        return False

    wait_until(healthy, timeout=90, what="the container's HEALTHCHECK on /healthz to pass")
