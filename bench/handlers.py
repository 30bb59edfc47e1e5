"""Measure the built-in handlers and print the numbers.

    .venv/bin/python bench/handlers.py                    # pure parts only
    .venv/bin/python bench/handlers.py --sandbox NAME     # plus the cluster parts

Pure parts: render time for 1,000 services x 10 tasks; publishes (= reloads)
for a burst of 100 upstream changes within one second, through the same
keeper the proxy daemon runs. Cluster parts (a running sandbox, e.g.
`swarmop sandbox up --name NAME`), with the built-in handlers and the real
nginx + agent on a worker: time from a `swarmop.replicas` change to the tasks
running, and from that task change to a config listing exactly the running
tasks, published in Consul and reported live by the agent (after `nginx -t`
and the reload).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Any

import consul as consul_lib
import docker
import docker.errors
import docker.types
import swarmop.handlers  # registers the built-in handlers
import swarmop.handlers.proxy as proxy_module
from swarmop.handlers.proxy import ProxyKeeper

from swarmop.clients.swarm_write import update_service
from swarmop.desired import merge_desired
from swarmop.proxy.debounce import ReloadDebouncer
from swarmop.proxy.plan import ProxyPlan, ProxyServiceInput, plan_proxy
from swarmop.proxy.publish import PublishResult, proxy_keys, read_agent_status
from swarmop.proxy.render import NginxRenderer, config_hash
from swarmop.registry import default_registry
from swarmop.sandbox import Sandbox
from swarmop.sandbox.info import BUSYBOX_IMAGE, NGINX_IMAGE
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.testing import OperatorRunner

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def bench_render(services: int = 1000, tasks: int = 10, rounds: int = 5) -> None:
    inputs = [
        ProxyServiceInput(
            f"svc{index}",
            merge_desired("service", {"swarmop.proxy.host": f"svc{index}.test.local"}, {}),
            {"front": [f"10.{index // 250}.{index % 250}.{task + 1}" for task in range(tasks)]},
        )
        for index in range(services)
    ]
    renderer = NginxRenderer()
    times = []
    size = 0
    for _ in range(rounds):
        start = time.perf_counter()
        plan = plan_proxy(inputs, renderer=renderer)
        times.append(time.perf_counter() - start)
        size = len(plan.config)
    median = statistics.median(times) * 1000
    print(
        f"render {services} services x {tasks} tasks: median {median:.0f} ms"
        f" (min {min(times) * 1000:.0f} ms, {size / 1024:.0f} KiB of config, validation included)"
    )


def bench_burst(changes: int = 100, seconds: float = 1.0) -> None:
    published: list[ProxyPlan] = []

    def publish(plan: ProxyPlan) -> PublishResult:
        published.append(plan)
        return PublishResult.PUBLISHED

    keeper = ProxyKeeper(publish=publish, renderer=NginxRenderer(), debouncer=ReloadDebouncer())
    now = 0.0
    step = seconds / changes
    for index in range(changes):
        desired = merge_desired("service", {"swarmop.proxy.host": "test.local"}, {})
        keeper.tick([ProxyServiceInput("web", desired, {"front": [f"10.0.1.{index + 1}"]})], now)
        now += step
    for _ in range(40):  # then quiet for 4 s, ticking like the daemon does
        keeper.tick([ProxyServiceInput("web", desired, {"front": [f"10.0.1.{changes}"]})], now)
        now += 0.1
    final_ok = f"10.0.1.{changes}:80" in published[-1].config
    print(
        f"burst of {changes} changes in {seconds:g} s: {len(published)} publish(es) = reloads "
        f"(final config correct: {final_ok})"
    )


def _running(api: Any, service_id: str) -> list[dict[str, Any]]:
    tasks = api.tasks(filters={"service": service_id, "desired-state": "running"})
    return [task for task in tasks if task["Status"]["State"] == "running"]


def _wait(check: Any, timeout: float = 120.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError("no convergence")
        time.sleep(0.05)
    return time.monotonic() - start


def _addresses_on(task: dict[str, Any], network: str) -> list[str]:
    return [
        address.split("/")[0]
        for attachment in task.get("NetworksAttachments") or []
        if attachment["Network"]["Spec"]["Name"] == network
        for address in attachment.get("Addresses") or []
    ]


def _summary(label: str, values: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(values):.2f} s, "
        f"min {min(values):.2f} s, max {max(values):.2f} s (n={len(values)})"
    )


def _wait_for(produce: Any, timeout: float = 120.0) -> Any:
    start = time.monotonic()
    while (value := produce()) is None:
        if time.monotonic() - start > timeout:
            raise TimeoutError("no convergence")
        time.sleep(0.05)
    return value


def bench_cluster(name: str, rounds: int) -> None:
    info = Sandbox(name).info()
    if info is None:
        raise SystemExit(f"sandbox {name!r} is not up")
    api = docker.APIClient(base_url=info.manager_docker_host, version="1.41", timeout=60)
    host, port = info.consul_http_addr.rsplit(":", 1)
    kv = consul_lib.Consul(host=host.removeprefix("http://"), port=int(port))
    prefix = f"bench{int(time.time())}"
    settings = Settings(
        docker=resolve_docker(host=info.manager_docker_host, env={}),
        consul=resolve_consul(addr=info.consul_http_addr, env={}),
        prefix=prefix,
        resync_interval=30.0,
    )
    network = f"{prefix}-net"
    api.create_network(network, driver="overlay", attachable=True, scope="swarm")
    service_name = f"{prefix}-web"
    created = api.create_service(
        docker.types.TaskTemplate(
            container_spec=docker.types.ContainerSpec(BUSYBOX_IMAGE),  # httpd on 8080
            networks=[docker.types.NetworkAttachmentConfig(network)],
        ),
        name=service_name,
        labels={
            "swarmop.replicas": "1",
            "swarmop.proxy.host": "bench.local",
            "swarmop.proxy.port": "8080",
        },
        mode=docker.types.ServiceMode("replicated", replicas=1),
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
    )
    service_id = created["ID"]
    # The real nginx with its agent, on a worker: "live" is what the agent
    # reports after `nginx -t` and the reload, not just the Consul write.
    proxy_name = f"{prefix}-nginx"
    proxy = api.create_service(
        docker.types.TaskTemplate(
            container_spec=docker.types.ContainerSpec(
                NGINX_IMAGE,
                env=[
                    f"CONSUL_HTTP_ADDR={info.consul_addr_in_swarm}",
                    f"SWARMOP_PROXY_SERVICE={proxy_name}",
                    f"SWARMOP_PREFIX={prefix}",
                ],
            ),
            networks=[docker.types.NetworkAttachmentConfig(network)],
            placement=docker.types.Placement(constraints=["node.role==worker"]),
        ),
        name=proxy_name,
        mode=docker.types.ServiceMode("replicated", replicas=1),
        endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
    )
    proxy_module.PROXY_SERVICE = proxy_name
    keys = proxy_keys(prefix, proxy_name)

    def set_replicas(count: int) -> None:
        def change(spec: dict[str, Any]) -> None:
            spec["Labels"]["swarmop.replicas"] = str(count)

        update_service(api, service_id, change)

    def published() -> tuple[str, str] | None:
        """(config, hash) when the config in Consul holds exactly the running tasks."""
        _, item = kv.kv.get(keys["config"])
        if item is None or not item.get("Value"):
            return None
        text = item["Value"].decode()
        addresses = sorted(
            address
            for task in _running(api, service_id)
            for address in _addresses_on(task, network)
        )
        listed = sorted(
            line.split()[1].rsplit(":", 1)[0]
            for line in text.splitlines()
            if line.strip().startswith("server ") and line.strip().endswith(":8080;")
        )
        if not addresses or listed != addresses:
            return None
        return text, config_hash(text)

    def live(expected: str) -> bool:
        statuses = read_agent_status(kv, prefix=prefix, proxy_service=proxy_name)
        return bool(statuses) and all(s.ok and s.live_hash == expected for s in statuses.values())

    scale_times: dict[str, list[float]] = {"1 -> 3": [], "3 -> 1": []}
    publish_times: list[float] = []
    live_times: list[float] = []
    try:
        with OperatorRunner(settings, registry=default_registry):
            _wait(lambda: len(_running(api, service_id)) == 1 and len(_running(api, proxy["ID"])))
            first = _wait_for(published)
            _wait(lambda: live(first[1]))
            for index in range(rounds):
                target = 3 if index % 2 == 0 else 1
                start = time.monotonic()
                set_replicas(target)
                _wait(lambda t=target: len(_running(api, service_id)) == t)
                tasks_done = time.monotonic()
                scale_times["1 -> 3" if target == 3 else "3 -> 1"].append(tasks_done - start)
                # From the moment the tasks run (or stopped) to the config holding
                # exactly them: in Consul, then live in nginx on the worker.
                _, expected = _wait_for(published)
                publish_times.append(time.monotonic() - tasks_done)
                _wait(lambda h=expected: live(h))
                live_times.append(time.monotonic() - tasks_done)
    finally:
        api.remove_service(service_id)
        api.remove_service(proxy["ID"])
        kv.kv.delete(prefix + "/", recurse=True)
        time.sleep(3)
        with contextlib.suppress(docker.errors.APIError):
            api.remove_network(network)
    for step, times in scale_times.items():
        if times:
            print(_summary(f"swarmop.replicas {step} -> exactly that many tasks running", times))
    print(_summary("task change -> proxy config published in Consul", publish_times))
    print(
        _summary("task change -> proxy config live (agent status, nginx on a worker)", live_times)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sandbox", help="name of a running sandbox for the cluster parts")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    assert swarmop.handlers.services
    bench_render()
    bench_burst()
    if args.sandbox:
        bench_cluster(args.sandbox, args.rounds)


if __name__ == "__main__":
    main()
