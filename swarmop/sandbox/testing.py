"""Helpers for tests against the sandbox: waiting with a reason, undoing changes, probing.

Used by tests/cluster/conftest.py's fixtures and importable by any test:
`from swarmop.sandbox.testing import wait_until, Tracker`.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import consul
import docker
import docker.errors
import docker.types
import pytest

from swarmop.clients.swarm_write import update_node
from swarmop.sandbox.info import BUSYBOX_IMAGE

T = TypeVar("T")

REQUIRE_CLUSTER_ENV = "SWARMOP_REQUIRE_CLUSTER"


def skip_or_fail(reason: str) -> NoReturn:
    """End a test this machine cannot run: a skip with the reason, or under
    SWARMOP_REQUIRE_CLUSTER=1 (CI, after `make setup`) a failure, so a green run
    never hides a test that did not run for want of root or a machine tool."""
    if os.environ.get(REQUIRE_CLUSTER_ENV) == "1":
        pytest.fail(f"cannot run ({REQUIRE_CLUSTER_ENV}=1): {reason}", pytrace=False)
    pytest.skip(reason)


class WaitTimeout(AssertionError):
    pass


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    what: str = "a condition",
    interval: float = 0.25,
) -> T:
    """Poll until `predicate()` returns something truthy and return it.

    On timeout the test fails, saying what it waited for and the last value (or
    error) the predicate produced.
    """
    deadline = time.monotonic() + timeout
    last: object = "(never evaluated)"
    while True:
        try:
            value = predicate()
        except Exception as error:  # not converged yet; keep the error as the last observation
            last = f"{error.__class__.__name__}: {error}"
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:.0f}s waiting for {what}; last observed: {last!r}"
            )
        time.sleep(interval)


def run_swarmop(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """The `swarmop` command as a user runs it (this interpreter's install), captured."""
    return subprocess.run(
        [sys.executable, "-m", "swarmop", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        check=False,
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class _NodeRestore:
    """A spec mutation that puts a node's labels and availability back as they were."""

    def __init__(self, labels: dict[str, str], availability: str) -> None:
        self.labels = labels
        self.availability = availability

    def __call__(self, spec: dict[str, Any]) -> bool:
        if (spec.get("Labels") or {}) == self.labels and spec.get(
            "Availability"
        ) == self.availability:
            return False
        spec["Labels"] = dict(self.labels)
        spec["Availability"] = self.availability
        return True


class Tracker:
    """Remembers what a test creates or changes in the swarm and Consul, and undoes it."""

    def __init__(self, api: docker.APIClient, kv: consul.Consul) -> None:
        self.api = api
        self.kv = kv
        self.services: list[str] = []
        self.networks: list[str] = []
        self.configs: list[str] = []
        self.secrets: list[str] = []
        self.node_labels: dict[str, dict[str, str]] = {}
        self.node_availability: dict[str, str] = {}
        self.consul_keys: dict[str, bytes | None] = {}
        self.consul_prefixes: list[str] = []

    # registration ------------------------------------------------------------------

    def service(self, service_id: str) -> str:
        self.services.append(service_id)
        return service_id

    def network(self, network_id: str) -> str:
        self.networks.append(network_id)
        return network_id

    def config(self, config_id: str) -> str:
        self.configs.append(config_id)
        return config_id

    def secret(self, secret_id: str) -> str:
        self.secrets.append(secret_id)
        return secret_id

    def node(self, node_id: str) -> str:
        """Snapshot a node's labels and availability now; both are restored afterwards."""
        if node_id not in self.node_labels:
            spec = self.api.inspect_node(node_id)["Spec"]
            self.node_labels[node_id] = dict(spec.get("Labels") or {})
            self.node_availability[node_id] = spec.get("Availability", "active")
        return node_id

    def consul_key(self, key: str) -> str:
        """Snapshot a key's value now; it is restored (or deleted) afterwards."""
        if key not in self.consul_keys:
            _, item = self.kv.kv.get(key)
            self.consul_keys[key] = item["Value"] if item else None
        return key

    def consul_prefix(self, prefix: str) -> str:
        """Every key under `prefix` is deleted afterwards (use a prefix of your own)."""
        self.consul_prefixes.append(prefix)
        return prefix

    # conveniences --------------------------------------------------------------------

    def create_network(self, name: str | None = None, **kwargs: Any) -> str:
        name = name or unique("net")
        kwargs.setdefault("driver", "overlay")
        kwargs.setdefault("attachable", True)
        kwargs.setdefault("scope", "swarm")
        created = self.api.create_network(name, **kwargs)
        self.network(created["Id"])
        return name

    def create_service(
        self,
        name: str | None = None,
        *,
        image: str = BUSYBOX_IMAGE,
        command: list[str] | None = None,
        replicas: int = 1,
        labels: dict[str, str] | None = None,
        constraints: list[str] | None = None,
        networks: list[str] | None = None,
        endpoint_mode: str = "dnsrr",
        ports: list[dict[str, Any]] | None = None,
        env: list[str] | None = None,
    ) -> str:
        """A replicated service of the local busybox image (the web backend by default)."""
        name = name or unique("svc")
        task = docker.types.TaskTemplate(
            container_spec=docker.types.ContainerSpec(image, command=command, env=env),
            placement=docker.types.Placement(constraints=constraints) if constraints else None,
            networks=[docker.types.NetworkAttachmentConfig(n) for n in networks or []],
            restart_policy=docker.types.RestartPolicy(condition="any", delay=1_000_000_000),
        )
        created = self.api.create_service(
            task,
            name=name,
            labels=labels or {},
            mode=docker.types.ServiceMode("replicated", replicas=replicas),
            endpoint_spec=docker.types.EndpointSpec(mode=endpoint_mode, ports=ports),
        )
        self.service(created["ID"])
        return str(created["ID"])

    # undo ----------------------------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Undo everything recorded; returns what could not be undone (and keeps going)."""
        problems: list[str] = []

        def attempt(what: str, action: Callable[..., object], *args: Any, **kwargs: Any) -> None:
            try:
                action(*args, **kwargs)
            except docker.errors.NotFound:
                pass
            except Exception as error:
                problems.append(f"{what}: {error}")

        for service_id in reversed(self.services):
            attempt(f"remove service {service_id}", self.api.remove_service, service_id)
        for config_id in self.configs:
            attempt(f"remove config {config_id}", self.api.remove_config, config_id)
        for secret_id in self.secrets:
            attempt(f"remove secret {secret_id}", self.api.remove_secret, secret_id)
        for network_id in self.networks:
            # A network stays in use until the removed services' tasks are gone.
            attempt(f"remove network {network_id}", self._remove_network, network_id)
        for node_id, labels in self.node_labels.items():
            restore = _NodeRestore(labels, self.node_availability[node_id])
            attempt(f"restore node {node_id}", update_node, self.api, node_id, restore)
        for key, value in self.consul_keys.items():
            if value is None:
                attempt(f"delete key {key}", self.kv.kv.delete, key)
            else:
                attempt(f"restore key {key}", self.kv.kv.put, key, value)
        for prefix in self.consul_prefixes:
            attempt(f"delete prefix {prefix}", self.kv.kv.delete, prefix, recurse=True)
        return problems

    def _remove_network(self, network_id: str) -> None:
        def removed() -> bool:
            try:
                self.api.remove_network(network_id)
            except docker.errors.NotFound:
                return True
            except docker.errors.APIError as error:
                if "in use" in str(error) or "active endpoints" in str(error):
                    return False
                raise
            return True

        wait_until(removed, timeout=60, what=f"network {network_id} to be removable")


def running_tasks(api: docker.APIClient, service_id: str) -> list[dict[str, Any]]:
    tasks = api.tasks(filters={"service": service_id, "desired-state": "running"})
    return [task for task in tasks if task["Status"]["State"] == "running"]


def task_node_hostnames(api: docker.APIClient, tasks: list[dict[str, Any]]) -> list[str]:
    names = {node["ID"]: node["Description"]["Hostname"] for node in api.nodes()}
    return [names.get(task.get("NodeID", ""), "?") for task in tasks]


def task_ips(task: dict[str, Any], network_id: str) -> list[str]:
    for attachment in task.get("NetworksAttachments") or []:
        if attachment["Network"]["ID"] == network_id:
            return [address.split("/")[0] for address in attachment.get("Addresses") or []]
    return []


def http_get_from_container(
    client: docker.DockerClient,
    address: str,
    path: str = "/",
    network: str | None = None,
    host_header: str = "sandbox",
) -> str:
    """The raw HTTP response a busybox container gets (busybox `nc`; its wget crashes)."""
    host, port = address.rsplit(":", 1)
    request = f"GET {path} HTTP/1.0\\r\\nHost: {host_header}\\r\\n\\r\\n"
    # busybox nc may stop reading the answer once its stdin ends, so stdin stays
    # open until the server closes the connection (HTTP/1.0), bounded to ~20 s.
    # The final `echo`: the daemon's log copier can drop a last line that has no
    # newline when the container exits at once, and a body often has none.
    script = (
        f"{{ printf '{request}'; sleep 20; }} | nc {host} {port} > /tmp/response & "
        "n=0; while kill -0 $! 2>/dev/null && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done; "
        "cat /tmp/response; echo"
    )
    output = client.containers.run(
        BUSYBOX_IMAGE,
        ["sh", "-c", script],
        network=network,
        remove=True,
        stdout=True,
        stderr=True,
    )
    return output.decode(errors="replace") if isinstance(output, bytes) else str(output)


def consul_value(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else base64.b64decode(raw).decode()
