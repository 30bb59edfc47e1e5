"""The built-in operator handlers, written against swarmop's public API only.

Importing this package registers them all (`swarmop run` with no module loads
it): services (replicas, depends_on, database placement, proxy status), nodes
(availability) and the proxy config daemon. The planning modules (`*_plan`)
are pure and can be used on their own.
"""

from . import nodes, proxy, services

__all__ = ["nodes", "proxy", "services"]
