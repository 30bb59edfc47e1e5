"""What a running sandbox offers to its users: addresses, nodes, image tags."""

from __future__ import annotations

from dataclasses import dataclass, field

BUSYBOX_IMAGE = "swarmop/busybox:local"
NGINX_IMAGE = "swarmop/nginx:local"
IMAGE_TAGS: dict[str, str] = {"busybox": BUSYBOX_IMAGE, "nginx": NGINX_IMAGE}


@dataclass(frozen=True)
class NodeInfo:
    hostname: str
    docker_host: str
    address: str
    netns: str
    manager: bool


@dataclass(frozen=True)
class SandboxInfo:
    name: str
    manager_docker_host: str
    nodes: tuple[NodeInfo, ...]
    consul_http_addr: str
    """host:port of Consul's HTTP API, reachable from the host (loopback)."""
    consul_addr_in_swarm: str
    """host:port where containers on the swarm's nodes reach the same Consul."""
    subnet: str
    images: dict[str, str] = field(default_factory=lambda: dict(IMAGE_TAGS))

    @property
    def node_names(self) -> list[str]:
        return [node.hostname for node in self.nodes]

    def node(self, hostname: str) -> NodeInfo:
        for node in self.nodes:
            if node.hostname == hostname:
                return node
        raise KeyError(f"no node {hostname!r} in sandbox {self.name!r}")

    @property
    def consul_port(self) -> int:
        return int(self.consul_http_addr.rsplit(":", 1)[1])
