"""Reaction time of the core: label change -> handler start, Consul key write -> handler
start, and one raw Docker inspect+update round trip, over N changes each.

Consul keys are measured twice: back to back (each write as soon as the previous
one was handled, so the watch loop's token bucket, 5 queries/s with a burst of 2,
sets the pace) and after QUIET seconds without changes (the bucket is full again,
so this is the latency of a single change).

    SWARMOP_TEST_SANDBOX=core-dev python bench/reaction.py [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from typing import Any

import consul
import docker

import swarmop
from swarmop.clients.swarm_write import update_service
from swarmop.registry import Registry
from swarmop.sandbox import BUSYBOX_IMAGE, Sandbox
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.testing import OperatorRunner

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"{name:<38} n={len(samples):4d} median={statistics.median(samples) * 1000:7.1f} ms"
        f"  p99={p99 * 1000:7.1f} ms"
    )


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    quiet = float(os.environ.get("QUIET", "0.5"))

    info = Sandbox(os.environ.get("SWARMOP_TEST_SANDBOX", "swarmop-test")).info()
    if info is None:
        print("sandbox is not up: swarmop sandbox up --name NAME", file=sys.stderr)
        return 2
    api = docker.APIClient(base_url=info.manager_docker_host, version="1.41")
    host, port = info.consul_http_addr.rsplit(":", 1)
    kv = consul.Consul(host=host, port=int(port))
    prefix = f"bench{int(time.time())}"
    name = f"bench-{int(time.time())}"
    task = docker.types.TaskTemplate(
        container_spec=docker.types.ContainerSpec(BUSYBOX_IMAGE, command=SLEEPER)
    )
    service_id = api.create_service(
        task,
        name=name,
        labels={"bench": "1"},
        mode=docker.types.ServiceMode("replicated", replicas=0),
    )["ID"]
    registry = Registry()
    started: dict[str, float] = {}
    seen = threading.Condition()

    @swarmop.on.update("service", labels={"bench": "1"}, registry=registry, backoff=0.1)
    def on_change(desired: Any, labels: Any, **_: Any) -> None:
        now = time.perf_counter()
        with seen:
            for token in (labels.get("bench.token"), str(desired.value("depends_on", ""))):
                if token and token not in started:
                    started[token] = now
            seen.notify_all()

    def wait_for(token: str) -> float:
        with seen:
            if not seen.wait_for(lambda: token in started, timeout=30):
                raise TimeoutError(token)
            return started[token]

    settings = Settings(
        docker=resolve_docker(host=info.manager_docker_host, env={}),
        consul=resolve_consul(addr=info.consul_http_addr, env={}),
        prefix=prefix,
    )
    label_samples: list[float] = []
    key_samples: list[float] = []
    quiet_key_samples: list[float] = []
    raw_samples: list[float] = []
    try:
        with OperatorRunner(settings, registry=registry) as runner:
            # The first sight of the service is its creation; measure changes after it.
            ctx = runner.operator.context  # type: ignore[union-attr]
            while ctx is None or ctx.store.load(("service", name)) is None:
                time.sleep(0.05)
                ctx = runner.operator.context  # type: ignore[union-attr]
            for i in range(count):
                token = f"l{i}"
                t0 = time.perf_counter()
                update_service(
                    api, service_id, lambda s, t=token: s["Labels"].__setitem__("bench.token", t)
                )
                label_samples.append(wait_for(token) - t0)
            for i in range(count):
                token = f"k{i}"
                t0 = time.perf_counter()
                kv.kv.put(f"{prefix}/services/{name}/depends_on", token)
                key_samples.append(wait_for(f"('{token}',)") - t0)
            for i in range(count):
                token = f"q{i}"
                time.sleep(quiet)
                t0 = time.perf_counter()
                kv.kv.put(f"{prefix}/services/{name}/depends_on", token)
                quiet_key_samples.append(wait_for(f"('{token}',)") - t0)
            for i in range(count):
                t0 = time.perf_counter()
                current = api.inspect_service(service_id)
                spec = current["Spec"]
                spec["Labels"]["bench.raw"] = str(i)
                url = api._url("/services/{0}/update", service_id)
                response = api._post_json(
                    url, data=spec, params={"version": current["Version"]["Index"]}
                )
                api._raise_for_status(response)
                raw_samples.append(time.perf_counter() - t0)
    finally:
        api.remove_service(service_id)
        kv.kv.delete(prefix + "/", recurse=True)
    print(summary("label change -> handler start", label_samples))
    print(summary("Consul key write -> handler start", key_samples))
    print(summary(f"  the same after {quiet:g} s quiet", quiet_key_samples))
    print(summary("raw Docker inspect+update round trip", raw_samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
