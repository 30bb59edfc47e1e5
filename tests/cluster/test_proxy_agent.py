"""The proxy agent for real: nginx runs on a worker (where the manager's Docker
API cannot exec), and config reaches it only through Consul.

The operator side publishes with `publish_config`; the agent beside nginx
tests, installs and reloads it, and reports back in Consul. A broken config
written straight to the key must leave the last good config live and be
reported with nginx's own error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import consul
import docker
import pytest

from swarmop.desired import merge_desired
from swarmop.proxy import (
    ProxyServiceInput,
    PublishResult,
    config_hash,
    plan_proxy,
    proxy_keys,
    publish_config,
    read_agent_status,
)
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.info import NGINX_IMAGE
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

BROKEN = "server { listen 80; server_name test.local; location / { bogus_directive on; } }\n"


def _one_running_task(api: docker.APIClient, service: str, count: int) -> list[dict[str, Any]]:
    return wait_until(
        lambda: (tasks := running_tasks(api, service)) and len(tasks) == count and tasks,
        timeout=120,
        what=f"{count} running task(s) of {service}",
    )


def test_agent_on_a_worker_applies_published_config_and_keeps_last_good(
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    node_clients: dict[str, docker.DockerClient],
) -> None:
    prefix = tracker.consul_prefix(unique("swarmop-proxy-test"))
    network = tracker.create_network()
    network_id = docker_api.inspect_network(network)["Id"]
    proxy_name = unique("nginx")
    web = tracker.create_service(replicas=2, networks=[network])
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
    (proxy_task,) = _one_running_task(docker_api, proxy, 1)
    assert task_node_hostnames(docker_api, [proxy_task])[0] != "node-1"
    (proxy_ip,) = task_ips(proxy_task, network_id)
    client = node_clients["node-1"]

    def get(host: str = "test.local") -> str:
        return http_get_from_container(client, f"{proxy_ip}:80", network=network, host_header=host)

    def answer(predicate: Callable[[str], bool], what: str) -> str:
        return wait_until(lambda: (r := get()) and predicate(r) and r, timeout=60, what=what)

    # Before any config: nginx's default server answers 404.
    answer(lambda r: " 404 " in r.splitlines()[0], "404 from nginx's default server")

    web_tasks = _one_running_task(docker_api, web, 2)
    addresses = [ip for task in web_tasks for ip in task_ips(task, network_id)]
    desired = merge_desired(
        "service", {"swarmop.proxy.host": "test.local", "swarmop.proxy.port": "8080"}, {}
    )
    plan = plan_proxy([ProxyServiceInput("web", desired, {network: addresses})])
    assert plan.errors == {}
    result = publish_config(
        consul_client, prefix=prefix, proxy_service=proxy_name, config=plan.config
    )
    assert result is PublishResult.PUBLISHED
    again = publish_config(
        consul_client, prefix=prefix, proxy_service=proxy_name, config=plan.config
    )
    assert again is PublishResult.UNCHANGED

    # Traffic for test.local now reaches the web tasks (each answers its hostname).
    answer(lambda r: " 200 " in r.splitlines()[0], "200 through nginx from a web task")
    backends = set()
    wait_until(
        lambda: backends.add(get().strip().splitlines()[-1]) or len(backends) == 2,
        timeout=60,
        what="both web tasks answering through nginx",
    )
    assert " 404 " in get("other.local").splitlines()[0]

    status = wait_until(
        lambda: (
            (s := read_agent_status(consul_client, prefix=prefix, proxy_service=proxy_name))
            and all(item.ok and item.live_hash == plan.config_hash for item in s.values())
            and s
        ),
        timeout=60,
        what="the agent reporting the config live",
    )
    assert len(status) == 1
    (first,) = status.values()
    # What the TUI shows: the reload's result and time, and what the change did.
    assert first.reload == "ok" and first.reload_time
    assert first.changed_time and first.added == ("test.local",)
    assert first.removed == () and first.changed == ()

    # A broken config written straight to the key: nginx -t refuses it in the
    # proxy, the good config stays live, and the failure is reported.
    consul_client.kv.put(proxy_keys(prefix, proxy_name)["config"], BROKEN)
    broken_hash = config_hash(BROKEN)
    (report,) = wait_until(
        lambda: [
            item
            for item in read_agent_status(
                consul_client, prefix=prefix, proxy_service=proxy_name
            ).values()
            if item.hash == broken_hash and not item.ok
        ],
        timeout=60,
        what="the agent reporting the broken config",
    )
    assert "bogus_directive" in report.message
    assert report.live_hash == plan.config_hash
    assert " 200 " in get().splitlines()[0]
    # Nothing was reloaded or changed: the last reload and change are still the first.
    assert (report.reload, report.reload_time) == ("ok", first.reload_time)
    assert (report.changed_time, report.added) == (first.changed_time, ("test.local",))

    # And the next good config goes live again.
    more = plan_proxy(
        [
            ProxyServiceInput("web", desired, {network: addresses}),
            ProxyServiceInput(
                "web2",
                merge_desired("service", {"swarmop.proxy.host": "two.local"}, {}),
                {network: []},
            ),
        ]
    )
    assert (
        publish_config(consul_client, prefix=prefix, proxy_service=proxy_name, config=more.config)
        is PublishResult.PUBLISHED
    )
    wait_until(
        lambda: " 503 " in get("two.local").splitlines()[0],
        timeout=60,
        what="503 for a virtual host with no running task",
    )
    assert " 200 " in get().splitlines()[0]
    (second,) = wait_until(
        lambda: [
            item
            for item in read_agent_status(
                consul_client, prefix=prefix, proxy_service=proxy_name
            ).values()
            if item.ok and item.live_hash == more.config_hash
        ],
        timeout=60,
        what="the agent reporting the two-host config live",
    )
    assert (second.added, second.removed, second.changed) == (("two.local",), (), ())

    # Scaling web to one task changes test.local's upstream: a changed host.
    one = plan_proxy(
        [
            ProxyServiceInput("web", desired, {network: addresses[:1]}),
            ProxyServiceInput(
                "web2",
                merge_desired("service", {"swarmop.proxy.host": "two.local"}, {}),
                {network: []},
            ),
        ]
    )
    publish_config(consul_client, prefix=prefix, proxy_service=proxy_name, config=one.config)
    (third,) = wait_until(
        lambda: [
            item
            for item in read_agent_status(
                consul_client, prefix=prefix, proxy_service=proxy_name
            ).values()
            if item.ok and item.live_hash == one.config_hash
        ],
        timeout=60,
        what="the agent reporting the one-upstream config live",
    )
    assert (third.added, third.removed, third.changed) == ((), (), ("test.local",))
    publish_config(consul_client, prefix=prefix, proxy_service=proxy_name, config=more.config)

    # A burst of 100 configs in about a second: the agent's rate-limited watch
    # applies only a handful of them, and the last one ends up live.
    node = task_node_hostnames(docker_api, [proxy_task])[0]
    container = node_clients[node].containers.get(
        proxy_task["Status"]["ContainerStatus"]["ContainerID"]
    )

    def applied_count() -> int:
        return container.logs(stdout=True, stderr=True).decode(errors="replace").count(" is live")

    before = applied_count()
    key = proxy_keys(prefix, proxy_name)["config"]
    burst = [more.config + f"# burst {n}\n" for n in range(100)]
    for text in burst:
        consul_client.kv.put(key, text)
    wait_until(
        lambda: any(
            item.ok and item.live_hash == config_hash(burst[-1])
            for item in read_agent_status(
                consul_client, prefix=prefix, proxy_service=proxy_name
            ).values()
        ),
        timeout=60,
        what="the last config of the burst live",
    )
    reloads = applied_count() - before
    print(f"burst of {len(burst)} configs -> {reloads} reloads")
    assert 1 <= reloads <= 10
