"""Which virtual hosts the proxy serves, and each proxied service's status (pure).

Input is what the handler listed: every service with its desired state, the
networks it attaches to and the addresses of its running tasks there. The
proxy package validates and renders; this module only gathers the upstream
addresses and turns per-service errors into statuses, so one bad service is
excluded and reported while the others keep working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from swarmop.proxy.model import ProxyError, VirtualHost
from swarmop.proxy.validate import DesiredLike, drop_conflicts, is_proxied, vhost_from_desired

from .decision import Status

INGRESS_NETWORK = "ingress"


@dataclass(frozen=True)
class ProxiedService:
    name: str
    desired: DesiredLike
    networks: tuple[str, ...]  # names of the networks the service's tasks attach to
    task_addresses: tuple[Mapping[str, Sequence[str]], ...] = ()  # per running task


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


@dataclass(frozen=True)
class ProxyPlan:
    vhosts: tuple[VirtualHost, ...]
    statuses: Mapping[str, Status] = field(default_factory=dict)
    errors: tuple[ProxyError, ...] = ()


def plan_proxy(services: Iterable[ProxiedService]) -> ProxyPlan:
    vhosts: list[VirtualHost] = []
    errors: list[ProxyError] = []
    proxied: list[str] = []
    for service in sorted(services, key=lambda item: item.name):
        if not is_proxied(service.desired):
            continue
        proxied.append(service.name)
        result = vhost_from_desired(
            service.name,
            service.desired,
            addresses_by_network(service.networks, service.task_addresses),
        )
        if isinstance(result, VirtualHost):
            vhosts.append(result)
        else:
            errors.extend(result)
    kept, conflicts = drop_conflicts(vhosts)
    errors.extend(conflicts)
    by_service: dict[str, list[ProxyError]] = {}
    for error in errors:
        by_service.setdefault(error.service, []).append(error)
    statuses: dict[str, Status] = {}
    served = {vhost.service: vhost for vhost in kept}
    for name in proxied:
        if name in by_service:
            text = "; ".join(f"{error.field}: {error.message}" for error in by_service[name])
            statuses[name] = Status.blocked(f"proxy: excluded: {text}")
        elif name in served:
            vhost = served[name]
            count = len(vhost.addresses)
            if count:
                statuses[name] = Status.ok(
                    f"proxy: {vhost.host}{vhost.path} -> {count} task(s) on {vhost.network}"
                )
            else:
                statuses[name] = Status.pending(
                    f"proxy: {vhost.host}{vhost.path} has no running task (answers 503)"
                )
    return ProxyPlan(tuple(kept), statuses, tuple(errors))
