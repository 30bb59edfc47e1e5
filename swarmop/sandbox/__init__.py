"""A real multi-node Docker Swarm with Consul on one Linux machine, for demos and tests.

    from swarmop.sandbox import Sandbox
    info = Sandbox("mine").up(nodes=3)
    ...
    Sandbox("mine").down()

See docs/sandbox.md for what it creates and its limits.
"""

from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.info import BUSYBOX_IMAGE, IMAGE_TAGS, NGINX_IMAGE, NodeInfo, SandboxInfo
from swarmop.sandbox.layout import DEFAULT_NAME
from swarmop.sandbox.sandbox import Sandbox, all_sandbox_names

__all__ = [
    "BUSYBOX_IMAGE",
    "DEFAULT_NAME",
    "IMAGE_TAGS",
    "NGINX_IMAGE",
    "NodeInfo",
    "Sandbox",
    "SandboxError",
    "SandboxInfo",
    "all_sandbox_names",
]
