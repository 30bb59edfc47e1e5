"""`swarmop images`: the stack file's nginx and example-app images, made for a real swarm.

The command runs as a user runs it (a subprocess, one `-H` per node) and
imports both images into every sandbox node under a tag of this test. Then
they do their job as Swarm services: the app image's web backend answers with
its hostname, and the nginx image's agent takes a config published in Consul,
installs it and reports it live, so nginx serves the web task.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import consul
import docker
import docker.errors
import pytest

from swarmop.desired import merge_desired
from swarmop.proxy import ProxyServiceInput, plan_proxy, publish_config, read_agent_status
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.stack_images import stack_image_tags
from swarmop.sandbox.testing import (
    Tracker,
    http_get_from_container,
    running_tasks,
    task_ips,
    unique,
    wait_until,
)

pytestmark = pytest.mark.cluster
TAG = "stack-images-test"


def swarmop_images(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swarmop", "images", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def remove_test_images(node_clients: dict[str, docker.DockerClient]) -> None:
    """So the import certainly happens. Left behind afterwards: the tracker removes the
    services using them only after the test; the next run removes them first."""
    for client in node_clients.values():
        for tag in stack_image_tags(TAG):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag)


def test_built_into_every_node_and_serving_as_swarm_services(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    node_clients: dict[str, docker.DockerClient],
) -> None:
    remove_test_images(node_clients)
    hosts = [arg for node in sandbox.nodes for arg in ("-H", node.docker_host)]
    nginx_image, app_image = stack_image_tags(TAG)
    built = swarmop_images(*hosts, "--tag", TAG)
    assert built.returncode == 0, built.stderr
    assert built.stdout.split() == [nginx_image, app_image]
    ids: dict[str, str] = {}
    for hostname, client in node_clients.items():
        nginx = client.images.get(nginx_image)
        assert nginx.attrs["Config"]["Entrypoint"] == ["/swarmop/entrypoint.sh"], hostname
        app = client.images.get(app_image)
        assert app.attrs["Config"]["Cmd"] == ["/usr/local/bin/web-backend"], hostname
        ids[hostname] = nginx.id

    # Unchanged content: a second run imports nothing and keeps the same images.
    again = swarmop_images(*hosts, "--tag", TAG)
    assert again.returncode == 0, again.stderr
    assert {h: c.images.get(nginx_image).id for h, c in node_clients.items()} == ids

    prefix = tracker.consul_prefix(unique("stack-images"))
    network = tracker.create_network()
    network_id = docker_api.inspect_network(network)["Id"]
    proxy_name = unique("nginx")
    web = tracker.create_service(image=app_image, replicas=1, networks=[network])
    proxy = tracker.create_service(
        proxy_name,
        image=nginx_image,
        networks=[network],
        env=[
            f"CONSUL_HTTP_ADDR={sandbox.consul_addr_in_swarm}",
            f"SWARMOP_PROXY_SERVICE={proxy_name}",
            f"SWARMOP_PREFIX={prefix}",
        ],
    )
    (web_task,) = wait_until(
        lambda: running_tasks(docker_api, web), timeout=120, what="the web task to run"
    )
    (proxy_task,) = wait_until(
        lambda: running_tasks(docker_api, proxy), timeout=120, what="the nginx task to run"
    )
    (web_ip,) = task_ips(web_task, network_id)
    (proxy_ip,) = task_ips(proxy_task, network_id)
    client = node_clients["node-1"]

    def get(address: str) -> str:
        return http_get_from_container(client, address, network=network, host_header="test.local")

    # The app image: its web backend answers on 8080 with the container's hostname.
    direct = wait_until(
        lambda: (r := get(f"{web_ip}:8080")) and " 200 " in r.splitlines()[0] and r,
        timeout=60,
        what="the web backend to answer",
    )
    web_hostname = direct.strip().splitlines()[-1]
    assert web_hostname

    # The nginx image: the agent installs what swarmop publishes; nginx serves it.
    desired = merge_desired(
        "service", {"swarmop.proxy.host": "test.local", "swarmop.proxy.port": "8080"}, {}
    )
    plan = plan_proxy([ProxyServiceInput("web", desired, {network: [web_ip]})])
    assert plan.errors == {}
    publish_config(consul_client, prefix=prefix, proxy_service=proxy_name, config=plan.config)
    wait_until(
        lambda: (
            (s := read_agent_status(consul_client, prefix=prefix, proxy_service=proxy_name))
            and all(item.ok and item.live_hash == plan.config_hash for item in s.values())
        ),
        timeout=60,
        what="the agent in the nginx image to report the config live",
    )
    through_nginx = wait_until(
        lambda: (r := get(f"{proxy_ip}:80")) and " 200 " in r.splitlines()[0] and r,
        timeout=60,
        what="nginx to serve test.local",
    )
    assert through_nginx.strip().splitlines()[-1] == web_hostname


def test_bad_tag_and_missing_binary_are_clear_errors() -> None:
    bad_tag = swarmop_images("--tag", "no spaces")
    assert bad_tag.returncode == 2
    assert "not a valid image tag" in bad_tag.stderr
    missing = swarmop_images("--busybox", "/nonexistent/busybox")
    assert missing.returncode == 2
    assert "busybox not found" in missing.stderr
