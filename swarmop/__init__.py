"""swarmop: a Kopf-style operator for Docker Swarm.

    import swarmop

    @swarmop.on.update("service", field="desired.replicas")
    def scale(service, desired, patch, logger, **_):
        patch.set_replicas(desired.value("replicas"))

See docs/api.md. ``swarmop.testing.OperatorRunner`` runs handlers in a test.
"""

from __future__ import annotations

from swarmop import on
from swarmop import settings as settings
from swarmop.clients.consul import ConsulUnavailable
from swarmop.errors import BlockedError, PermanentError, TemporaryError
from swarmop.filters import ABSENT, PRESENT
from swarmop.on import daemon, timer
from swarmop.reactor.context import Cluster
from swarmop.reactor.patch import Patch
from swarmop.registry import Registry, default_registry
from swarmop.views import NodeView, ServiceView, TaskView

__version__ = "0.1.0"
__all__ = [
    "ABSENT",
    "PRESENT",
    "BlockedError",
    "Cluster",
    "ConsulUnavailable",
    "NodeView",
    "Patch",
    "PermanentError",
    "Registry",
    "ServiceView",
    "TaskView",
    "TemporaryError",
    "__version__",
    "daemon",
    "default_registry",
    "on",
    "settings",
    "timer",
]
