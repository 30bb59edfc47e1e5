"""A Consul server image for the sandbox, `swarmop/consul:local`, built without a registry.

docker-stack.yml runs Consul as a service (`CONSUL_IMAGE`, by default
hashicorp/consul). Here the image is Debian's consul binary (the one the
sandbox's own agent runs) with the shared libraries `ldd` lists, on the
sandbox's busybox root filesystem, `docker import`ed into every node.

The entrypoint behaves like the consul binary (`agent -server ...` as the
command) with one addition taken from hashicorp/consul's entrypoint: with
`CONSUL_BIND_INTERFACE=eth0` an `agent` binds to that interface's address. A
Swarm task on an overlay network also has an interface on `docker_gwbridge`,
and an agent that finds two private addresses refuses to start unless told
which one to bind.

`python -m swarmop.sandbox.consul_image --name SANDBOX` builds and imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from swarmop.sandbox import images, rootfs
from swarmop.sandbox.info import SandboxInfo
from swarmop.sandbox.layout import CACHE_BASE
from swarmop.sandbox.sandbox import running_sandbox_from_args
from swarmop.sandbox.tools import find_tools

CONSUL_IMAGE = "swarmop/consul:local"
CONSUL_BINARY = "usr/bin/consul"

ENTRYPOINT = rb"""#!/bin/sh
# consul "$@"; an `agent` also gets -bind=<IPv4 address of $CONSUL_BIND_INTERFACE>
# when that variable is set (hashicorp/consul's entrypoint does the same).
set -eu
if [ "${1:-}" = agent ] && [ -n "${CONSUL_BIND_INTERFACE:-}" ]; then
    address=$(ip -o -4 addr show dev "$CONSUL_BIND_INTERFACE" \
        | awk '{split($4, a, "/"); print a[1]; exit}')
    if [ -z "$address" ]; then
        echo "consul-entrypoint: no IPv4 address on $CONSUL_BIND_INTERFACE" >&2
        exit 1
    fi
    shift
    set -- agent "-bind=$address" "$@"
fi
exec /usr/bin/consul "$@"
"""


def consul_image(busybox: Path, consul: Path) -> rootfs.RootFs:
    """The consul binary and its libraries on busybox, `/consul/data` for the volume."""
    image = rootfs.busybox_base(busybox)
    image.copy(CONSUL_BINARY, consul, 0o755)
    for library in rootfs.shared_libraries(consul):
        image.copy(str(library), library, 0o755)
    image.file("usr/local/bin/consul-entrypoint", ENTRYPOINT, 0o755)
    image.directory("consul/data")
    image.directory("consul/config")
    image.changes.append('ENTRYPOINT ["/usr/local/bin/consul-entrypoint"]')
    image.changes.append('CMD ["agent", "-dev", "-client=0.0.0.0"]')
    return image


def build_consul_image(info: SandboxInfo, busybox: Path, consul: Path) -> str:
    """Build the image (cached by content) and import it into every node; returns its tag."""
    built = images._build(CONSUL_IMAGE, consul_image(busybox, consul), CACHE_BASE / "images")
    images.import_everywhere([node.docker_host for node in info.nodes], [built])
    return CONSUL_IMAGE


def main(argv: list[str] | None = None) -> int:
    info = running_sandbox_from_args(argv, "build the Consul image into a sandbox")
    if info is None:
        return 1
    tools = find_tools()
    print(build_consul_image(info, Path(tools.busybox), Path(tools.consul)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
