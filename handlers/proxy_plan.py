"""Proxy wiring: upstream addresses per network, and each proxied service's status (pure).

The proxy package validates, renders and publishes (`swarmop.proxy.plan`);
this module gathers what it needs from listed tasks and turns its result into
per-service statuses, so one bad service is excluded and reported on its own
status while the others keep working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from swarmop.proxy.model import ProxyError
from swarmop.proxy.plan import ProxyPlan

from .decision import Status

INGRESS_NETWORK = "ingress"


def addresses_by_network(
    networks: Iterable[str], task_addresses: Iterable[Mapping[str, Sequence[str]]]
) -> dict[str, list[str]]:
    """Network name -> addresses of running tasks, every attached network present.

    The ingress network is left out: it only carries published ports through
    the routing mesh, never a path the proxy can use to reach a task.
    """
    found: dict[str, list[str]] = {
        name: [] for name in networks if name and name != INGRESS_NETWORK
    }
    for per_task in task_addresses:
        for network, addresses in per_task.items():
            if network == INGRESS_NETWORK:
                continue
            found.setdefault(network, []).extend(addresses)
    return {name: sorted(set(addresses)) for name, addresses in found.items()}


def excluded_message(errors: Iterable[ProxyError]) -> str:
    """The status message of a service the proxy leaves out, the same wherever
    it is found (the service handler, the proxy daemon), so it shows once."""
    return "proxy: excluded: " + "; ".join(f"{error.field}: {error.message}" for error in errors)


def proxy_statuses(plan: ProxyPlan) -> dict[str, Status]:
    """One status per proxied service: served (ok), no running task (pending), excluded."""
    statuses: dict[str, Status] = {}
    for name, errors in plan.errors.items():
        statuses[name] = Status.blocked(excluded_message(errors))
    for vhost in plan.vhosts:
        count = len(vhost.addresses)
        if count:
            statuses[vhost.service] = Status.ok(
                f"proxy: {vhost.host}{vhost.path} -> {count} task(s) on {vhost.network}"
            )
        else:
            statuses[vhost.service] = Status.pending(
                f"proxy: {vhost.host}{vhost.path} has no running task (answers 503)"
            )
    return statuses
