"""One node's Docker daemon: started inside the node's namespace, and waited for."""

from __future__ import annotations

import os
import shlex
import time

import docker

from swarmop.sandbox import procs
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.layout import NodeLayout
from swarmop.sandbox.tools import Tools

API_VERSION = "1.41"
START_TIMEOUT = 60.0


def api_client(docker_host: str, timeout: int = 30) -> docker.APIClient:
    return docker.APIClient(base_url=docker_host, version=API_VERSION, timeout=timeout)


def command(tools: Tools, node: NodeLayout) -> list[str]:
    dockerd = [
        tools.dockerd,
        "--data-root",
        str(node.data_root),
        "--exec-root",
        str(node.exec_root),
        "-H",
        node.docker_host,
        "--pidfile",
        str(node.pidfile),
        "--cgroup-parent",
        node.cgroup_parent,
        "--storage-driver",
        "overlay2",
        # Containers get little time to stop: a sandbox is never precious, and
        # `down` and node restarts stay quick.
        "--shutdown-timeout",
        "3",
        "--log-level",
        "warn",
    ]
    # `nsenter --net` rather than `ip netns exec`: the latter remounts /sys, the
    # cgroup mounts vanish and dockerd stops ("Devices cgroup isn't mounted").
    # `unshare --uts` gives the node its own hostname, which Swarm reports.
    script = f'hostname {shlex.quote(node.hostname)} && exec "$@"'
    return [
        tools.nsenter,
        f"--net={node.netns_path}",
        tools.unshare,
        "--uts",
        "sh",
        "-c",
        script,
        "sh",
        *dockerd,
    ]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    # No registry is reachable: without this, every task start first tries to
    # pull its image and waits for DNS to time out.
    env["DOCKER_SERVICE_PREFER_OFFLINE_IMAGE"] = "1"
    for variable in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        env.pop(variable, None)
    return env


def start(tools: Tools, node: NodeLayout) -> int:
    node.run_dir.mkdir(parents=True, exist_ok=True)
    node.data_root.mkdir(parents=True, exist_ok=True)
    if node.socket.exists():
        node.socket.unlink()  # stale socket of a killed daemon
    return procs.spawn(command(tools, node), node.log_file, env=environment())


def answers(docker_host: str) -> bool:
    try:
        client = api_client(docker_host, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # any failure means "not yet"
        return False


def wait_ready(node: NodeLayout, pid: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.is_alive(pid):
            raise SandboxError(
                f"dockerd of {node.hostname} exited during start; its log {node.log_file} "
                f"ends with:\n{tail(node.log_file)}"
            )
        if node.socket.exists() and answers(node.docker_host):
            return
        time.sleep(0.2)
    raise SandboxError(
        f"dockerd of {node.hostname} did not answer on {node.socket} within {timeout:.0f}s; "
        f"see {node.log_file}"
    )


def tail(path: os.PathLike[str] | str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return "(no log)"
