"""The sandbox's network: a hub namespace with a bridge, and one namespace per node.

Every link is created directly inside the namespaces (never in the host's own),
so the host network is untouched and deleting the namespaces removes the links.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.layout import NETNS_DIR, NodeLayout, SandboxLayout

HUB_BRIDGE = "br0"
NODE_LINK = "eth0"


def _ip(ip: str, *args: str) -> None:
    result = subprocess.run([ip, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")


def list_netns() -> list[str]:
    try:
        return sorted(entry.name for entry in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def create_hub(ip: str, layout: SandboxLayout) -> None:
    ns = layout.hub_netns
    _ip(ip, "netns", "add", ns)
    _ip(ip, "-n", ns, "link", "set", "lo", "up")
    _ip(ip, "-n", ns, "link", "add", HUB_BRIDGE, "type", "bridge")
    _ip(
        ip,
        "-n",
        ns,
        "addr",
        "add",
        f"{layout.hub_address}/{layout.subnet.prefixlen}",
        "dev",
        HUB_BRIDGE,
    )
    _ip(ip, "-n", ns, "link", "set", HUB_BRIDGE, "up")


def create_node(ip: str, layout: SandboxLayout, node: NodeLayout) -> None:
    hub = layout.hub_netns
    hub_side = f"v{node.hostname}"
    _ip(ip, "netns", "add", node.netns)
    _ip(ip, "-n", node.netns, "link", "set", "lo", "up")
    _ip(
        ip,
        "-n",
        hub,
        "link",
        "add",
        hub_side,
        "type",
        "veth",
        "peer",
        "name",
        NODE_LINK,
        "netns",
        node.netns,
    )
    _ip(ip, "-n", hub, "link", "set", hub_side, "master", HUB_BRIDGE, "up")
    _ip(
        ip,
        "-n",
        node.netns,
        "addr",
        "add",
        f"{node.address}/{layout.subnet.prefixlen}",
        "dev",
        NODE_LINK,
    )
    _ip(ip, "-n", node.netns, "link", "set", NODE_LINK, "up")
    # The hub answers nothing beyond its own address; the route only gives the
    # daemon a default interface to pick its addresses from.
    _ip(ip, "-n", node.netns, "route", "add", "default", "via", layout.hub_address)


def delete(ip: str, names: Sequence[str]) -> None:
    for name in names:
        result = subprocess.run(
            [ip, "netns", "delete", name], capture_output=True, text=True, check=False
        )
        if result.returncode != 0 and (NETNS_DIR / name).exists():
            raise SandboxError(f"cannot delete network namespace {name}: {result.stderr.strip()}")


def sandbox_netns(layout: SandboxLayout) -> list[str]:
    return [name for name in list_netns() if layout.netns_pattern.match(name)]
