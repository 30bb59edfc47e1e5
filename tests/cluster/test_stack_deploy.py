"""`docker stack deploy -c docker-stack.yml swarmop` is the whole setup, in the real sandbox.

The repository's stack file is deployed with Debian's docker CLI (the same
release as the sandbox's daemons) under the stack name `swarmop`, its image
variables pointing at images built here (no registry): the operator image from
the Dockerfile, the sandbox's nginx and busybox images, and a Consul image
from Debian's consul binary. Two sandbox-only settings: the Docker socket's
path differs per node (`DOCKER_SOCKET` with a `{{.Node.Hostname}}`
placeholder), and Consul is reached at `tasks.consul` because a service's
virtual IP does not route without IPVS.

Checked: both operator tasks run, one on each manager, and exactly one of them
holds the lock in the stack's own Consul; web is scaled per its
`swarmop.replicas` label (also after the label changes); nginx answers
`Host: test.local` from every web task; the database runs on the node
labelled storage=ssd. The stack, its networks and its Consul volume are
removed afterwards, and node-2, promoted to a second manager for the test,
is demoted again.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.models.containers
import pytest

from swarmop.clients.swarm_write import update_node
from swarmop.sandbox import BUSYBOX_IMAGE, NGINX_IMAGE, SandboxInfo
from swarmop.sandbox.consul_image import build_consul_image
from swarmop.sandbox.operator_image import OPERATOR_IMAGE, build_operator_image
from swarmop.sandbox.testing import Tracker, running_tasks, task_ips, wait_until
from swarmop.sandbox.tools import find_tools

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
STACK_FILE = REPO / "docker-stack.yml"
STACK = "swarmop"
# docker.io's client: the same release (API 1.41) as the sandbox's daemons.
DOCKER_CLI = "/usr/bin/docker"
STACK_LABEL = "com.docker.stack.namespace"
SECOND_MANAGER = "node-2"
SSD_LABEL = ("storage", "ssd")
PROXY_HOST = "test.local"
CONSUL_VOLUME = f"{STACK}_consul-data"
APP_NETWORK = f"{STACK}_app"
NODE_PLACEHOLDER = "{{.Node.Hostname}}"
# Generous: two cores, image builds and other sandboxes competing for them.
CONVERGE_TIMEOUT = 240.0


def service_name(short: str) -> str:
    return f"{STACK}_{short}"


def docker_cli(
    sandbox: SandboxInfo, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI against the sandbox's manager, with only the environment given."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "DOCKER_HOST": sandbox.manager_docker_host,
        **(env or {}),
    }
    result = subprocess.run(
        [DOCKER_CLI, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {result.returncode}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def socket_path(docker_host: str) -> str:
    assert docker_host.startswith("unix://"), docker_host
    return docker_host[len("unix://") :]


def node_socket_template(sandbox: SandboxInfo) -> str:
    """Every node's socket path with its hostname replaced by Swarm's placeholder."""
    manager = sandbox.nodes[0]
    template = socket_path(manager.docker_host).replace(
        f"/{manager.hostname}/", f"/{NODE_PLACEHOLDER}/"
    )
    for node in sandbox.nodes:
        expected = socket_path(node.docker_host)
        assert template.replace(NODE_PLACEHOLDER, node.hostname) == expected, (
            f"node sockets do not follow one pattern: {template} vs {expected}"
        )
    return template


def node_hostnames(api: docker.APIClient) -> dict[str, str]:
    return {node["ID"]: node["Description"]["Hostname"] for node in api.nodes()}


def check_swarm_healthy(api: docker.APIClient, managers: set[str]) -> bool:
    """True when every node is ready and exactly `managers` are reachable managers, one leading."""
    problems = []
    leaders = 0
    actual_managers = set()
    for node in api.nodes():
        hostname = node["Description"]["Hostname"]
        if node["Status"]["State"] != "ready":
            problems.append(f"{hostname} is {node['Status']['State']}")
        status = node.get("ManagerStatus")
        if node["Spec"].get("Role") == "manager" and status:
            actual_managers.add(hostname)
            if status.get("Reachability") != "reachable":
                problems.append(f"manager {hostname} is {status.get('Reachability')}")
            leaders += bool(status.get("Leader"))
        elif status:
            problems.append(f"{hostname} is still listed as a manager")
    if actual_managers != managers:
        problems.append(f"managers are {sorted(actual_managers)}, want {sorted(managers)}")
    if leaders != 1:
        problems.append(f"{leaders} Raft leaders")
    if problems:
        raise AssertionError("; ".join(problems))
    return True


def running_service_tasks(api: docker.APIClient, short: str) -> list[dict[str, Any]]:
    return running_tasks(api, service_name(short))


def container_id(task: dict[str, Any]) -> str:
    return str(task["Status"]["ContainerStatus"]["ContainerID"])


def container_hostname(task: dict[str, Any]) -> str:
    """A task's container is named by its short container id unless the spec says otherwise."""
    return container_id(task)[:12]


# fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_cli_installed() -> str:
    if not Path(DOCKER_CLI).is_file():
        pytest.fail(f"{DOCKER_CLI} (Debian's docker.io) is missing: run `make setup`")
    return DOCKER_CLI


@pytest.fixture(scope="module")
def stack_images(sandbox: SandboxInfo) -> dict[str, str]:
    """The stack's image variables, every image built here and loaded into every node."""
    tools = find_tools()
    started = time.monotonic()
    consul_image = build_consul_image(sandbox, Path(tools.busybox), Path(tools.consul))
    print(f"consul image: {time.monotonic() - started:.1f}s")
    timings = build_operator_image(sandbox, Path(tools.busybox))
    print("operator image:", " ".join(f"{key}={value:.1f}" for key, value in timings.items()))
    return {
        "SWARMOP_IMAGE": OPERATOR_IMAGE,
        "SWARMOP_NGINX_IMAGE": NGINX_IMAGE,
        "APP_IMAGE": BUSYBOX_IMAGE,
        "CONSUL_IMAGE": consul_image,
    }


@pytest.fixture
def two_managers(
    sandbox: SandboxInfo, docker_api: docker.APIClient, docker_cli_installed: str
) -> Iterator[set[str]]:
    """node-2 promoted beside node-1 for the operator's two replicas; demoted afterwards."""
    original = {
        node["Description"]["Hostname"]
        for node in docker_api.nodes()
        if node["Spec"].get("Role") == "manager"
    }
    wait_until(
        lambda: check_swarm_healthy(docker_api, original),
        timeout=120,
        what="the swarm to be healthy before the test",
    )
    promoted = SECOND_MANAGER not in original
    managers = original | {SECOND_MANAGER}
    try:
        if promoted:
            docker_cli(sandbox, "node", "promote", SECOND_MANAGER)
        wait_until(
            lambda: check_swarm_healthy(docker_api, managers),
            timeout=120,
            what=f"{SECOND_MANAGER} to be a reachable manager and every node ready",
        )
        yield managers
    finally:
        if promoted:
            docker_cli(sandbox, "node", "demote", SECOND_MANAGER)
            wait_until(
                lambda: check_swarm_healthy(docker_api, original),
                timeout=120,
                what=f"{SECOND_MANAGER} to be a worker again and every node ready",
            )


@pytest.fixture
def ssd_nodes(docker_api: docker.APIClient, tracker: Tracker) -> set[str]:
    """Hostnames labelled storage=ssd; labels the last node (restored afterwards) if none is."""
    key, value = SSD_LABEL
    nodes = docker_api.nodes()
    labelled = {
        node["Description"]["Hostname"]
        for node in nodes
        if (node["Spec"].get("Labels") or {}).get(key) == value
    }
    if labelled:
        return labelled
    target = max(nodes, key=lambda node: node["Description"]["Hostname"])

    def add_label(spec: dict[str, Any]) -> bool:
        spec.setdefault("Labels", {})[key] = value
        return True

    update_node(docker_api, tracker.node(target["ID"]), add_label)
    return {target["Description"]["Hostname"]}


@pytest.fixture
def stack_removed_afterwards(
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    node_clients: dict[str, docker.DockerClient],
    two_managers: set[str],
    ssd_nodes: set[str],
) -> Iterator[str]:
    """The stack's name; afterwards `docker stack rm`, and its networks and volume gone.

    Depends on the role and label fixtures so that it is torn down before them.
    """
    yield STACK
    docker_cli(sandbox, "stack", "rm", STACK, check=False)
    stack_filter = {"label": f"{STACK_LABEL}={STACK}"}
    wait_until(
        lambda: not docker_api.services(filters=stack_filter),
        timeout=CONVERGE_TIMEOUT,
        what=f"the services of stack {STACK} to be removed",
    )

    removing = time.monotonic()
    for hostname, client in node_clients.items():
        wait_until(
            lambda client=client: not client.containers.list(all=True, filters=stack_filter),
            timeout=CONVERGE_TIMEOUT,
            what=f"the containers of stack {STACK} on {hostname} to be removed",
        )
    print(f"stack rm until every container was gone: {time.monotonic() - removing:.1f}s")

    def networks_removed() -> bool:
        remaining = docker_api.networks(filters=stack_filter)
        for network in remaining:  # `stack rm` gives up on a network still in use
            with contextlib.suppress(docker.errors.APIError):
                docker_api.remove_network(network["Id"])
        return not remaining

    wait_until(
        networks_removed,
        timeout=CONVERGE_TIMEOUT,
        what=f"the networks of stack {STACK} to be removed",
    )
    for hostname, client in node_clients.items():

        def volume_removed(client: docker.DockerClient = client) -> bool:
            try:
                client.volumes.get(CONSUL_VOLUME).remove()
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError as error:
                if "in use" in str(error):
                    return False  # the consul task's container is not removed yet
                raise
            return True

        wait_until(
            volume_removed,
            timeout=CONVERGE_TIMEOUT,
            what=f"volume {CONSUL_VOLUME} on {hostname} to be removed",
        )


# what the stack should be doing ----------------------------------------------------


def consul_container(
    api: docker.APIClient, node_clients: dict[str, docker.DockerClient]
) -> docker.models.containers.Container:
    tasks = running_service_tasks(api, "consul")
    assert len(tasks) == 1, f"{len(tasks)} running consul tasks"
    hostname = node_hostnames(api)[tasks[0]["NodeID"]]
    return node_clients[hostname].containers.get(container_id(tasks[0]))


def consul_cli(container: docker.models.containers.Container, *args: str) -> str:
    """The stack's own Consul, asked from inside its container (not the sandbox's Consul)."""
    code, output = container.exec_run(["consul", *args])
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    if code != 0:
        raise AssertionError(f"consul {' '.join(args)} exited {code}: {text.strip()}")
    return text


def election(api: docker.APIClient, node_clients: dict[str, docker.DockerClient]) -> dict[str, Any]:
    """The lock key and the registered instances, once every running operator registered."""
    operators = running_service_tasks(api, "operator")
    hosts = {container_hostname(task) for task in operators}
    container = consul_container(api, node_clients)
    registered = {}
    listing = consul_cli(container, "kv", "get", "-recurse", f"{STACK}/operators/")
    for line in listing.splitlines():
        if line.strip():
            _key, _, value = line.partition(":")
            instance = json.loads(value)
            registered[instance["instance"]] = instance
    if len(operators) != 2 or {item["host"] for item in registered.values()} != hosts:
        raise AssertionError(
            f"{len(operators)} operator tasks on hosts {sorted(hosts)}, "
            f"instances registered: {sorted(registered)}"
        )
    detail = {}
    for line in consul_cli(container, "kv", "get", "-detailed", f"{STACK}/leader").splitlines():
        field, _, value = line.partition(" ")
        detail[field] = value.strip()
    return {"registered": registered, "lock": detail, "hosts": hosts}


def replicas(api: docker.APIClient, short: str) -> int:
    spec = api.inspect_service(service_name(short))["Spec"]
    return int(spec["Mode"]["Replicated"]["Replicas"])


def web_scaled_to(api: docker.APIClient, wanted: int) -> list[dict[str, Any]]:
    """The web tasks, once the spec asks for `wanted` and that many run."""
    tasks = running_service_tasks(api, "web")
    if replicas(api, "web") != wanted or len(tasks) != wanted:
        raise AssertionError(f"web: {replicas(api, 'web')} replicas, {len(tasks)} running")
    return tasks


def nginx_address(api: docker.APIClient) -> str:
    tasks = running_service_tasks(api, "nginx")
    assert len(tasks) == 1, f"{len(tasks)} running nginx tasks"
    network_id = api.inspect_network(APP_NETWORK)["Id"]
    addresses = task_ips(tasks[0], network_id)
    assert addresses, f"the nginx task has no address on {APP_NETWORK}"
    return addresses[0]


def backends_answering(client: docker.DockerClient, address: str, requests: int) -> list[str]:
    """The body's last line of `requests` concurrent `Host: test.local` requests to nginx.

    One busybox container on the app network sends them all with `nc` (busybox's
    wget crashes in these containers); the web backend answers with its
    container's hostname.
    """
    request = f"GET / HTTP/1.0\\r\\nHost: {PROXY_HOST}\\r\\n\\r\\n"
    # stdin stays open until nginx has answered and closed (HTTP/1.0): busybox nc
    # may stop reading once its stdin ends.
    script = (
        f"for i in $(seq {requests}); do "
        f"({{ printf '{request}'; sleep 3; }} | nc {address} 80 > /tmp/response.$i) & "
        "done; wait; "
        f"for i in $(seq {requests}); do tail -n 1 /tmp/response.$i; echo; done"
    )
    output = client.containers.run(
        BUSYBOX_IMAGE, ["sh", "-c", script], network=APP_NETWORK, remove=True
    )
    text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
    return [line.strip() for line in text.splitlines() if line.strip()]


def nginx_reaches_every_web_task(
    api: docker.APIClient, client: docker.DockerClient, wanted: int
) -> set[str]:
    expected = {container_hostname(task) for task in web_scaled_to(api, wanted)}
    answers = backends_answering(client, nginx_address(api), requests=3 * wanted)
    if set(answers) != expected:
        raise AssertionError(f"answers {sorted(set(answers))}, web tasks {sorted(expected)}")
    return expected


def operators_healthy(api: docker.APIClient, node_clients: dict[str, docker.DockerClient]) -> bool:
    hostnames = node_hostnames(api)
    tasks = running_service_tasks(api, "operator")
    states = []
    for task in tasks:
        client = node_clients[hostnames[task["NodeID"]]]
        state = client.api.inspect_container(container_id(task))["State"]
        states.append((state.get("Health") or {}).get("Status"))
    if len(tasks) != 2 or states != ["healthy", "healthy"]:
        raise AssertionError(f"operator health: {states}")
    return True


# the test ----------------------------------------------------------------------------


def test_docker_stack_deploy_is_the_whole_setup(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    docker_client: docker.DockerClient,
    node_clients: dict[str, docker.DockerClient],
    stack_images: dict[str, str],
    two_managers: set[str],
    ssd_nodes: set[str],
    stack_removed_afterwards: str,
) -> None:
    environment = {
        **stack_images,
        # Sandbox nodes have a socket each; Swarm fills in the node's hostname.
        "DOCKER_SOCKET": node_socket_template(sandbox),
        # No IPVS in the sandbox: `consul` (the service's virtual IP) does not
        # route, `tasks.consul` resolves to the task's own address.
        "CONSUL_HTTP_ADDR": "tasks.consul:8500",
    }
    started = time.monotonic()
    docker_cli(
        sandbox,
        "stack",
        "deploy",
        "--resolve-image",
        "never",  # no registry to ask
        "-c",
        str(STACK_FILE),
        stack_removed_afterwards,
        env=environment,
    )

    # The app is served: nginx's agent applied the operator's config for web.
    first_backends = wait_until(
        lambda: nginx_reaches_every_web_task(docker_api, docker_client, wanted=2),
        timeout=CONVERGE_TIMEOUT,
        what="nginx to answer Host: test.local from both web tasks",
    )
    serving = time.monotonic() - started
    print(f"stack deploy to serving test.local from {len(first_backends)} tasks: {serving:.1f}s")

    # Two operators, one per manager, exactly one holding the stack Consul's lock.
    state = wait_until(
        lambda: election(docker_api, node_clients),
        timeout=CONVERGE_TIMEOUT,
        what="both operator tasks to run and register in the stack's Consul",
    )
    hostnames = node_hostnames(docker_api)
    operator_nodes = sorted(
        hostnames[task["NodeID"]] for task in running_service_tasks(docker_api, "operator")
    )
    assert operator_nodes == sorted(two_managers), operator_nodes
    leaders = [item for item in state["registered"].values() if item["leader"]]
    assert len(leaders) == 1, f"instances claiming to lead: {state['registered']}"
    lock = state["lock"]
    assert lock.get("Session"), f"{STACK}/leader is not held by a session: {lock}"
    assert json.loads(lock["Value"])["instance"] == leaders[0]["instance"], lock
    assert leaders[0]["host"] in state["hosts"]

    wait_until(
        lambda: operators_healthy(docker_api, node_clients),
        timeout=CONVERGE_TIMEOUT,
        what="both operator containers' healthchecks to pass",
    )

    # The database is where its placement label says.
    db_tasks = wait_until(
        lambda: running_service_tasks(docker_api, "db"),
        timeout=CONVERGE_TIMEOUT,
        what="the database task to run",
    )
    db_nodes = [hostnames[task["NodeID"]] for task in db_tasks]
    assert len(db_nodes) == 1 and db_nodes[0] in ssd_nodes, f"db on {db_nodes}, ssd: {ssd_nodes}"

    # The leader follows web's label: 3 tasks, and nginx reaches all of them.
    docker_cli(
        sandbox,
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--label-add",
        "swarmop.replicas=3",
        service_name("web"),
    )
    scaled = wait_until(
        lambda: nginx_reaches_every_web_task(docker_api, docker_client, wanted=3),
        timeout=CONVERGE_TIMEOUT,
        what="the operator to scale web to 3 and nginx to answer from all 3 tasks",
    )
    assert first_backends < scaled
