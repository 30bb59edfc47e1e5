"""Forming the swarm: node-1 initialises it as manager, the others join as workers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from swarmop.sandbox.dockerd import api_client
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.layout import NodeLayout

SWARM_PORT = 2377


def init(manager: NodeLayout) -> str:
    """Initialise the swarm on the manager; returns the worker join token."""
    api = api_client(manager.docker_host)
    try:
        api.init_swarm(
            advertise_addr=manager.address,
            listen_addr=f"{manager.address}:{SWARM_PORT}",
            force_new_cluster=False,
        )
        tokens = api.inspect_swarm()["JoinTokens"]
        return str(tokens["Worker"])
    finally:
        api.close()


def join_all(manager: NodeLayout, workers: list[NodeLayout], token: str) -> None:
    def join(worker: NodeLayout) -> None:
        api = api_client(worker.docker_host)
        try:
            api.join_swarm(
                remote_addrs=[f"{manager.address}:{SWARM_PORT}"],
                join_token=token,
                advertise_addr=worker.address,
                listen_addr=f"{worker.address}:{SWARM_PORT}",
            )
        finally:
            api.close()

    if workers:
        with ThreadPoolExecutor(max_workers=len(workers)) as pool:
            list(pool.map(join, workers))


def ready_hostnames(manager_host: str) -> dict[str, str]:
    """hostname -> state of every node the manager knows."""
    api = api_client(manager_host)
    try:
        return {node["Description"]["Hostname"]: node["Status"]["State"] for node in api.nodes()}
    finally:
        api.close()


def wait_nodes_ready(manager: NodeLayout, hostnames: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            seen = ready_hostnames(manager.docker_host)
        except Exception:  # the manager may still be settling; keep polling
            seen = {}
        if all(seen.get(hostname) == "ready" for hostname in hostnames):
            return
        time.sleep(0.3)
    raise SandboxError(f"swarm nodes not all ready after {timeout:.0f}s: {seen}")
