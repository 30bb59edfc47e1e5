"""The sandbox's Consul: a dev-mode agent on loopback, every port chosen free.

Dev mode keeps everything in memory, so a restart of the agent loses all keys;
fault-injection tests that restart it must expect an empty store afterwards.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

from swarmop.sandbox import procs
from swarmop.sandbox.dockerd import tail
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.layout import SandboxLayout
from swarmop.sandbox.state import ConsulPorts
from swarmop.sandbox.tools import Tools

LOOPBACK = "127.0.0.1"


def _free_tcp_and_udp_port(taken: set[int]) -> int:
    # DNS and Serf listen on UDP as well as TCP, so the port must be free for both.
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            if port in taken:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((LOOPBACK, port))
            except OSError:
                continue
            taken.add(port)
            return port
    raise SandboxError("no free loopback ports for Consul")


def choose_ports() -> ConsulPorts:
    taken: set[int] = set()
    return ConsulPorts(
        http=_free_tcp_and_udp_port(taken),
        dns=_free_tcp_and_udp_port(taken),
        serf_lan=_free_tcp_and_udp_port(taken),
        serf_wan=_free_tcp_and_udp_port(taken),
        server=_free_tcp_and_udp_port(taken),
        grpc=_free_tcp_and_udp_port(taken),
    )


def command(tools: Tools, layout: SandboxLayout, ports: ConsulPorts) -> list[str]:
    return [
        tools.consul,
        "agent",
        "-dev",
        "-node",
        layout.consul_node_name,
        "-bind",
        LOOPBACK,
        "-client",
        LOOPBACK,
        "-http-port",
        str(ports.http),
        "-dns-port",
        str(ports.dns),
        "-serf-lan-port",
        str(ports.serf_lan),
        "-serf-wan-port",
        str(ports.serf_wan),
        "-server-port",
        str(ports.server),
        "-grpc-port",
        str(ports.grpc),
        "-log-level",
        "warn",
    ]


def start(tools: Tools, layout: SandboxLayout, ports: ConsulPorts) -> int:
    return procs.spawn(command(tools, layout, ports), layout.consul_log)


def has_leader(http_port: int) -> bool:
    url = f"http://{LOOPBACK}:{http_port}/v1/status/leader"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(json.loads(response.read() or b'""'))
    except (OSError, ValueError, urllib.error.URLError):
        return False


def wait_ready(layout: SandboxLayout, ports: ConsulPorts, pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.is_alive(pid):
            log = tail(layout.consul_log)
            hint = " (a port is taken?)" if "address already in use" in log else ""
            raise SandboxError(f"Consul exited during start{hint}; its log ends with:\n{log}")
        if has_leader(ports.http):
            return
        time.sleep(0.2)
    raise SandboxError(f"Consul has no leader after {timeout:.0f}s; see {layout.consul_log}")
