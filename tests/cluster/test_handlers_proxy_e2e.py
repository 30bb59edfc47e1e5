"""The proxy end to end: the operator with the built-in handlers, Consul, and
nginx with its agent on a worker (where the manager's Docker API cannot reach).

Requests go from a container on the manager to the nginx task's address on
the shared overlay network with `Host: test.local`; every web task answers
with its own host name (the container ID's first 12 characters), so the
answers say which tasks the upstream holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import consul
import docker
import pytest
import swarmop.handlers.proxy as proxy_handler
import swarmop.templates

from swarmop.clients.swarm_write import update_service
from swarmop.proxy import proxy_keys, read_agent_status
from swarmop.registry import default_registry
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.info import NGINX_IMAGE
from swarmop.sandbox.testing import (
    Tracker,
    consul_value,
    http_get_from_container,
    running_tasks,
    task_ips,
    task_node_hostnames,
    unique,
    wait_until,
)
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.status import Outcome
from swarmop.testing import OperatorRunner

pytestmark = pytest.mark.cluster

HOST = "test.local"


@dataclass
class Stack:
    prefix: str
    network: str
    network_id: str
    proxy_name: str
    proxy_ip: str
    runner: OperatorRunner


def container_hostname(task: dict[str, Any]) -> str:
    return str(task["Status"]["ContainerStatus"]["ContainerID"])[:12]


def set_labels(api: docker.APIClient, service_id: str, **labels: str | None) -> None:
    def change(spec: dict[str, Any]) -> None:
        current = spec.setdefault("Labels", {})
        for name, value in labels.items():
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value

    update_service(api, service_id, change)


REFUSED_HOST = "refused.local"


def refusing_templates(directory: Path) -> Path:
    """The packaged template plus a directive nginx does not know, for one host:
    a user template mistake that only `nginx -t` in the proxy can catch."""
    packaged = (Path(swarmop.templates.__file__).parent / "nginx" / "swarmop.conf.j2").read_text()
    anchor = "    server_name {{ server.host }};\n"
    assert anchor in packaged
    broken = packaged.replace(
        anchor,
        anchor
        + f'{{% if server.host == "{REFUSED_HOST}" %}}    bogus_directive on;\n{{% endif %}}',
    )
    (directory / "nginx").mkdir()
    (directory / "nginx" / "swarmop.conf.j2").write_text(broken)
    return directory


@pytest.fixture
def user_templates(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    """A directory for SWARMOP_PROXY_TEMPLATES (None: the packaged templates);
    parametrize indirectly with "refusing" for `refusing_templates`."""
    if getattr(request, "param", None) == "refusing":
        return refusing_templates(tmp_path)
    return None


@pytest.fixture
def stack(
    user_templates: Path | None,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    tracker: Tracker,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    prefix = tracker.consul_prefix(unique("hpx"))
    network = tracker.create_network()
    network_id = docker_api.inspect_network(network)["Id"]
    proxy_name = unique("nginx")
    # The daemon binds to the proxy service named by SWARMOP_PROXY_SERVICE,
    # read when the handlers are imported; this test's own name instead.
    monkeypatch.setattr(proxy_handler, "PROXY_SERVICE", proxy_name)
    if user_templates is not None:
        # Read when the proxy daemon starts, as `swarmop run` would.
        monkeypatch.setenv("SWARMOP_PROXY_TEMPLATES", str(user_templates))
    proxy = tracker.create_service(
        proxy_name,
        image=NGINX_IMAGE,
        networks=[network],
        constraints=["node.role==worker"],
        env=[
            f"CONSUL_HTTP_ADDR={sandbox.consul_addr_in_swarm}",
            f"SWARMOP_PROXY_SERVICE={proxy_name}",
            f"SWARMOP_PREFIX={prefix}",
        ],
    )
    (proxy_task,) = wait_until(
        lambda: (tasks := running_tasks(docker_api, proxy)) and tasks,
        timeout=120,
        what="the nginx task running",
    )
    assert task_node_hostnames(docker_api, [proxy_task])[0] != "node-1"
    (proxy_ip,) = task_ips(proxy_task, network_id)
    settings = Settings(
        docker=resolve_docker(host=sandbox.manager_docker_host, env={}),
        consul=resolve_consul(addr=sandbox.consul_http_addr, env={}),
        prefix=prefix,
        resync_interval=20.0,
    )
    logging.getLogger("swarmop").setLevel(logging.INFO)
    with OperatorRunner(settings, registry=default_registry) as runner:
        yield Stack(prefix, network, network_id, proxy_name, proxy_ip, runner)
    assert runner.exception is None


def get(client: docker.DockerClient, stack: Stack, host: str = HOST) -> str:
    return http_get_from_container(
        client, f"{stack.proxy_ip}:80", network=stack.network, host_header=host
    )


def status_line(response: str) -> str:
    lines = response.splitlines()
    return lines[0] if lines else ""


def backend_of(response: str) -> str | None:
    """The answering task's host name, for a 200 through nginx."""
    if " 200 " not in status_line(response):
        return None
    body = response.strip().splitlines()
    return body[-1].strip() if body else None


def wait_traffic_reaches(
    client: docker.DockerClient, stack: Stack, api: docker.APIClient, service_id: str, count: int
) -> set[str]:
    """Requests reach every running task (exactly `count` of them) and no other."""
    tasks = wait_until(
        lambda: (t := running_tasks(api, service_id)) and len(t) == count and t,
        timeout=120,
        what=f"{count} running web tasks",
    )
    expected = {container_hostname(task) for task in tasks}
    seen: set[str] = set()

    def all_answered() -> bool:
        backend = backend_of(get(client, stack))
        if backend in expected:
            seen.add(backend)
        return seen == expected

    wait_until(
        all_answered,
        timeout=120,
        interval=0.2,
        what=f"every one of the web tasks {sorted(expected)} answering through nginx",
    )
    return expected


def published_config(kv: consul.Consul, stack: Stack) -> str:
    _, item = kv.kv.get(proxy_keys(stack.prefix, stack.proxy_name)["config"])
    return consul_value(item["Value"]) if item and item.get("Value") else ""


def agent_serves_published(kv: consul.Consul, stack: Stack) -> bool:
    _, item = kv.kv.get(proxy_keys(stack.prefix, stack.proxy_name)["config-hash"])
    if not item or not item.get("Value"):
        return False
    published = consul_value(item["Value"]).strip()
    statuses = read_agent_status(kv, prefix=stack.prefix, proxy_service=stack.proxy_name)
    return bool(statuses) and all(s.ok and s.live_hash == published for s in statuses.values())


def test_nginx_follows_web_tasks_through_the_operator(
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    node_clients: dict[str, docker.DockerClient],
    stack: Stack,
) -> None:
    client = node_clients["node-1"]
    # Another service claiming test.local (left over from an interrupted run)
    # would make both conflict and be excluded, by design.
    claimants = [
        service["Spec"]["Name"]
        for service in docker_api.services()
        if (service["Spec"].get("Labels") or {}).get("swarmop.proxy.host") == HOST
    ]
    assert not claimants, f"{HOST} is already claimed in this sandbox by {claimants}"
    web = unique("web")
    web_id = tracker.create_service(
        web,
        replicas=1,
        networks=[stack.network],
        labels={
            "swarmop.replicas": "2",
            "swarmop.proxy.host": HOST,
            "swarmop.proxy.port": "8080",
        },
    )

    # web x2: both tasks get traffic; the service's status says it is served.
    wait_traffic_reaches(client, stack, docker_api, web_id, 2)
    wait_until(
        lambda: (
            (s := stack.runner.board.get(("service", web))) is not None
            and s.outcome is Outcome.OK
            and f"proxy: {HOST}/ -> 2 task(s)" in s.message
        ),
        timeout=60,
        what=f"{web} ok and served: {stack.runner.board.get(('service', web))}",
    )
    wait_until(
        lambda: agent_serves_published(consul_client, stack),
        timeout=60,
        what="the agent reporting the published config live",
    )
    assert " 404 " in status_line(get(client, stack, "other.local"))

    # Scale 2 -> 4 through swarmop.replicas: the new tasks get traffic.
    set_labels(docker_api, web_id, **{"swarmop.replicas": "4"})
    wait_traffic_reaches(client, stack, docker_api, web_id, 4)

    # A task that dies: its address leaves the upstream, its replacement joins.
    victim = running_tasks(docker_api, web_id)[0]
    victim_ips = task_ips(victim, stack.network_id)
    (victim_node,) = task_node_hostnames(docker_api, [victim])
    node_clients[victim_node].containers.get(
        victim["Status"]["ContainerStatus"]["ContainerID"]
    ).remove(force=True)
    wait_until(
        lambda: (
            all(f"{ip}:8080" not in published_config(consul_client, stack) for ip in victim_ips)
            and victim["ID"] not in {t["ID"] for t in running_tasks(docker_api, web_id)}
        ),
        timeout=120,
        what="the dead task's address gone from the published config",
    )
    remaining = wait_traffic_reaches(client, stack, docker_api, web_id, 4)
    assert container_hostname(victim) not in remaining

    # Scale down 4 -> 2: the stopped tasks leave the upstream.
    set_labels(docker_api, web_id, **{"swarmop.replicas": "2"})
    kept = wait_traffic_reaches(client, stack, docker_api, web_id, 2)
    wait_until(
        lambda: published_config(consul_client, stack).count(":8080;") == 2,
        timeout=60,
        what="two upstream servers in the published config",
    )
    wait_until(
        lambda: agent_serves_published(consul_client, stack),
        timeout=60,
        what="the agent reporting the scaled-down config live",
    )
    for _ in range(6):
        assert backend_of(get(client, stack)) in kept

    # A service with an injection attempt as its host: excluded and reported;
    # test.local keeps working and the value never reaches the config.
    hostile_value = "evil.local; } server { listen 81"
    hostile = unique("hostile")
    tracker.create_service(
        hostile,
        replicas=1,
        networks=[stack.network],
        labels={"swarmop.proxy.host": hostile_value, "swarmop.proxy.port": "8080"},
    )
    wait_until(
        lambda: (
            (s := stack.runner.board.get(("service", hostile))) is not None
            and s.outcome is Outcome.BLOCKED
            and "proxy.host" in s.message
        ),
        timeout=60,
        what=f"{hostile} reported: {stack.runner.board.get(('service', hostile))}",
    )
    assert "evil" not in published_config(consul_client, stack)
    assert "listen 81" not in published_config(consul_client, stack)
    wait_traffic_reaches(client, stack, docker_api, web_id, 2)

    # Another service claiming test.local/: the proxy daemon (which alone sees
    # both) excludes both and reports it on each one's status; once the twin is
    # removed, web's report is withdrawn and it is served again.
    twin = unique("twin")
    twin_id = tracker.create_service(
        twin,
        replicas=1,
        networks=[stack.network],
        labels={"swarmop.proxy.host": HOST, "swarmop.proxy.port": "8080"},
    )
    for name in (web, twin):
        wait_until(
            lambda name=name: (
                (s := stack.runner.board.get(("service", name))) is not None
                and s.outcome is Outcome.BLOCKED
                and "proxy: excluded: conflict:" in s.message
            ),
            timeout=60,
            what=f"{name} reported in conflict: {stack.runner.board.get(('service', name))}",
        )
    wait_until(
        lambda: HOST not in published_config(consul_client, stack),
        timeout=60,
        what=f"{HOST} left out of the published config while claimed twice",
    )
    docker_api.remove_service(twin_id)
    wait_until(
        lambda: (
            (s := stack.runner.board.get(("service", web))) is not None
            and s.outcome is Outcome.OK
            and "conflict" not in s.message
        ),
        timeout=60,
        what=f"{web} ok again: {stack.runner.board.get(('service', web))}",
    )
    wait_traffic_reaches(client, stack, docker_api, web_id, 2)

    # Removing the label removes the virtual host: nginx's default server answers.
    set_labels(docker_api, web_id, **{"swarmop.proxy.host": None})
    wait_until(
        lambda: HOST not in published_config(consul_client, stack),
        timeout=60,
        what=f"{HOST} gone from the published config",
    )
    wait_until(
        lambda: " 404 " in status_line(get(client, stack)),
        timeout=60,
        what=f"404 for {HOST} once its virtual host is gone",
    )
    wait_until(
        lambda: agent_serves_published(consul_client, stack),
        timeout=60,
        what="the agent reporting the config without test.local live",
    )


@pytest.mark.parametrize("user_templates", ["refusing"], indirect=True)
def test_a_config_nginx_refuses_reaches_the_operators_status(
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    node_clients: dict[str, docker.DockerClient],
    stack: Stack,
) -> None:
    client = node_clients["node-1"]
    web = unique("web")
    web_id = tracker.create_service(
        web,
        replicas=1,
        networks=[stack.network],
        labels={"swarmop.proxy.host": HOST, "swarmop.proxy.port": "8080"},
    )
    wait_traffic_reaches(client, stack, docker_api, web_id, 1)
    wait_until(
        lambda: agent_serves_published(consul_client, stack),
        timeout=60,
        what="the agent reporting the config from the user template live",
    )
    good_hash = consul_value(
        consul_client.kv.get(proxy_keys(stack.prefix, stack.proxy_name)["config-hash"])[1]["Value"]
    ).strip()

    # A second service whose virtual host the user template renders wrongly:
    # the agent's nginx -t refuses the whole config, the last good one stays
    # live, and the refusal is on the proxy service's status and in its log.
    refused = unique("refused")
    refused_id = tracker.create_service(
        refused,
        replicas=1,
        networks=[stack.network],
        labels={"swarmop.proxy.host": REFUSED_HOST, "swarmop.proxy.port": "8080"},
    )
    found = wait_until(
        lambda: (
            (s := stack.runner.board.get(("service", stack.proxy_name))) is not None
            and s.outcome is Outcome.ERROR
            and "refused config" in s.message
            and s
        ),
        timeout=90,
        what=f"the refusal on {stack.proxy_name}'s status: "
        f"{stack.runner.board.get(('service', stack.proxy_name))}",
    )
    assert 'unknown directive "bogus_directive"' in found.message, found.message
    assert f"nginx keeps serving {good_hash[:12]}" in found.message, found.message
    events = [
        e
        for e in stack.runner.snapshot().events
        if e.object == stack.proxy_name and "refused config" in e.message
    ]
    assert events and str(events[0].level) == "error", events
    # The operator published it (only nginx knows it is wrong); nginx still
    # serves the last good config.
    assert "bogus_directive" in published_config(consul_client, stack)
    assert backend_of(get(client, stack)) is not None, f"{HOST} stopped being served"

    # The mistake goes (the service loses its label): the next config is
    # accepted and the report is withdrawn.
    set_labels(docker_api, refused_id, **{"swarmop.proxy.host": None})
    wait_until(
        lambda: (
            (s := stack.runner.board.get(("service", stack.proxy_name))) is None
            or "refused" not in s.message
        ),
        timeout=90,
        what=f"the refusal withdrawn: {stack.runner.board.get(('service', stack.proxy_name))}",
    )
    wait_until(
        lambda: agent_serves_published(consul_client, stack),
        timeout=60,
        what="the agent serving the published config again",
    )
    assert any(
        "every agent serves the published config" in e.message
        for e in stack.runner.snapshot().events
        if e.object == stack.proxy_name
    )
