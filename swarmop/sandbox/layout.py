"""Where a sandbox's pieces live: every name, path and address derives from its name.

Deriving everything from the name (rather than only recording it in a state file)
lets `down` and the next `up` find and remove the leftovers of a run whose state
file was never written or was lost.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from swarmop.sandbox.errors import SandboxError

DEFAULT_NAME = "swarmop"
RUN_BASE = Path("/run/swarmop-sandbox")
DATA_BASE = Path("/var/lib/swarmop-sandbox")
CACHE_BASE = Path("/var/cache/swarmop-sandbox")
NETNS_DIR = Path("/run/netns")

# Short and plain, because it ends up in namespace names, cgroup names and socket
# paths (a unix socket path is limited to 108 bytes).
_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")

# 100.64.0.0/10 (shared address space) stays clear of Swarm's default overlay pool
# (10.0.0.0/8) and of Docker's bridge pools (172.17.0.0/16 and up, 192.168.0.0/16).
_SUBNET_POOL = ipaddress.IPv4Network("100.64.0.0/10")
_SUBNETS_IN_POOL: int = 1 << (24 - 10)  # /24 subnets in the /10 pool
HUB_HOST_NUMBER = 254
CONSUL_FORWARD_PORT = 8500
MAX_NODES = 20


def validate_name(name: str) -> str:
    if not _NAME_PATTERN.match(name) or name.endswith("-") or "--" in name:
        raise SandboxError(
            f"invalid sandbox name {name!r}: use 1-24 lowercase letters, digits and single "
            "dashes, starting with a letter or digit"
        )
    return name


def preferred_subnet_index(name: str) -> int:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") % _SUBNETS_IN_POOL


def subnet_for_index(index: int) -> ipaddress.IPv4Network:
    base = int(_SUBNET_POOL.network_address) + (index % _SUBNETS_IN_POOL) * 256
    return ipaddress.IPv4Network((base, 24))


@dataclass(frozen=True)
class NodeLayout:
    index: int
    hostname: str
    netns: str
    address: str
    run_dir: Path
    data_root: Path
    cgroup_parent: str

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "dockerd.log"

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.netns


@dataclass(frozen=True)
class SandboxLayout:
    name: str
    subnet: ipaddress.IPv4Network

    @classmethod
    def for_name(cls, name: str, subnet_index: int | None = None) -> SandboxLayout:
        validate_name(name)
        index = preferred_subnet_index(name) if subnet_index is None else subnet_index
        return cls(name=name, subnet=subnet_for_index(index))

    @property
    def run_dir(self) -> Path:
        return RUN_BASE / self.name

    @property
    def data_dir(self) -> Path:
        return DATA_BASE / self.name

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return RUN_BASE / f".{self.name}.lock"

    @property
    def hub_netns(self) -> str:
        return f"swarmop-{self.name}-hub"

    @property
    def hub_address(self) -> str:
        return str(self.subnet.network_address + HUB_HOST_NUMBER)

    @property
    def consul_in_swarm(self) -> str:
        """Where containers in the swarm reach Consul (the forwarder in the hub)."""
        return f"{self.hub_address}:{CONSUL_FORWARD_PORT}"

    @property
    def consul_node_name(self) -> str:
        return f"swarmop-sandbox-{self.name}"

    @property
    def consul_log(self) -> Path:
        return self.run_dir / "consul.log"

    @property
    def consul_pidfile(self) -> Path:
        return self.run_dir / "consul.pid"

    @property
    def forwarder_log(self) -> Path:
        return self.run_dir / "forwarder.log"

    @property
    def forwarder_pidfile(self) -> Path:
        return self.run_dir / "forwarder.pid"

    @property
    def netns_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^swarmop-{re.escape(self.name)}-(hub|node-\d+)$")

    @property
    def cgroup_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^swarmop-sandbox-{re.escape(self.name)}-node-\d+$")

    def node(self, index: int) -> NodeLayout:
        if not 1 <= index <= MAX_NODES:
            raise SandboxError(f"node index {index} out of range 1..{MAX_NODES}")
        hostname = f"node-{index}"
        return NodeLayout(
            index=index,
            hostname=hostname,
            netns=f"swarmop-{self.name}-{hostname}",
            address=str(self.subnet.network_address + index),
            run_dir=self.run_dir / hostname,
            data_root=self.data_dir / hostname,
            cgroup_parent=f"swarmop-sandbox-{self.name}-{hostname}",
        )

    def nodes(self, count: int) -> list[NodeLayout]:
        return [self.node(i) for i in range(1, count + 1)]
