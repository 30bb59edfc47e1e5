"""`swarmop sandbox up/env/status` on the running session sandbox: `up` on a healthy
sandbox changes nothing and refuses another node count; `env` points real
clients at it; `status` exits 0 when it is up and 1 when it is down."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

import consul
import docker
import pytest

from swarmop.sandbox import BUSYBOX_IMAGE, NGINX_IMAGE, Sandbox, SandboxInfo
from swarmop.sandbox.layout import SandboxLayout
from swarmop.sandbox.testing import Tracker, run_swarmop, unique
from swarmop.sandbox.tools import find_tools

pytestmark = pytest.mark.cluster


def _fingerprint(
    control: Sandbox, docker_api: docker.APIClient, node_clients: dict[str, docker.DockerClient]
) -> dict[str, Any]:
    """Everything a rebuild would change: the swarm, the daemons, the images, the state."""
    return {
        "swarm": docker_api.inspect_swarm()["ID"],
        "nodes": sorted(node["ID"] for node in docker_api.nodes()),
        "dockerd pids": {name: control.dockerd_pid(name) for name in node_clients},
        "consul pid": control.consul_pid(),
        "images": {
            name: (client.images.get(BUSYBOX_IMAGE).id, client.images.get(NGINX_IMAGE).id)
            for name, client in node_clients.items()
        },
        "state file": SandboxLayout.for_name(control.name).state_file.read_text(),
    }


def test_up_on_a_healthy_sandbox_changes_nothing(
    sandbox_control: Sandbox,
    docker_api: docker.APIClient,
    node_clients: dict[str, docker.DockerClient],
) -> None:
    before = _fingerprint(sandbox_control, docker_api, node_clients)
    assert all(before["dockerd pids"].values()) and before["consul pid"]

    result = run_swarmop("sandbox", "up", "--name", sandbox_control.name)
    assert result.returncode == 0, result.stderr
    assert f"sandbox {sandbox_control.name!r} is up (3 nodes" in result.stdout
    assert _fingerprint(sandbox_control, docker_api, node_clients) == before

    sandbox_control.up(nodes=3)
    sandbox_control.up()
    assert _fingerprint(sandbox_control, docker_api, node_clients) == before


def test_up_with_another_node_count_refuses_and_keeps_the_sandbox(
    sandbox_control: Sandbox,
    docker_api: docker.APIClient,
    node_clients: dict[str, docker.DockerClient],
) -> None:
    before = _fingerprint(sandbox_control, docker_api, node_clients)
    name = sandbox_control.name

    result = run_swarmop("sandbox", "up", "--name", name, "--nodes", "2")
    assert result.returncode == 1
    assert f"sandbox {name!r} is up with 3 nodes, not 2; it is left as it is" in result.stderr
    assert f"swarmop sandbox up --name {name} --nodes 2 --recreate" in result.stderr
    assert f"swarmop sandbox down --name {name}" in result.stderr
    assert _fingerprint(sandbox_control, docker_api, node_clients) == before
    assert sandbox_control.problems() == []


def test_env_lines_reach_the_docker_daemon_and_consul(
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
) -> None:
    key = tracker.consul_key(f"swarmop-test/{unique('env')}")
    value = unique("value")
    consul_client.kv.put(key, value)
    docker_cli = shutil.which("docker")
    assert docker_cli, "the docker CLI is missing: run `make setup` (docker.io)"
    # The shell starts with nothing pointing anywhere: only the eval'ed lines do.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DOCKER_HOST", "CONSUL_HTTP_ADDR", "SWARMOP_SANDBOX")
    }
    env["SWARMOP_CLI"] = f"{sys.executable} -m swarmop sandbox env --name {sandbox.name}"
    script = (
        'eval "$($SWARMOP_CLI)" || exit 9\n'
        'echo "sandbox=$SWARMOP_SANDBOX"\n'
        f"{docker_cli} info --format 'node={{{{.Swarm.NodeID}}}}'\n"
        f"{find_tools().consul} kv get {key} | sed 's/^/kv=/'\n"
    )
    result = subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"sandbox={sandbox.name}" in lines
    assert f"node={docker_api.info()['Swarm']['NodeID']}" in lines
    assert f"kv={value}" in lines


def test_status_exits_0_when_up_and_1_when_down(sandbox: SandboxInfo) -> None:
    up = run_swarmop("sandbox", "status", "--name", sandbox.name)
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.startswith(f"sandbox {sandbox.name!r}: up ")
    for hostname in ("node-1", "node-2", "node-3"):
        assert f"  {hostname} " in up.stdout
    assert "(leader elected)" in up.stdout

    never = unique("never")
    down = run_swarmop("sandbox", "status", "--name", never)
    assert down.returncode == 1
    assert (
        down.stdout.strip()
        == f"sandbox {never!r} is down (run `swarmop sandbox up --name {never}`)"
    )
