"""Plan the proxy config for all services at once. Pure.

Input: every service's desired state and its running task addresses per
network. Output: the config text, its hash, the virtual hosts it serves and the
per-service errors that kept other services out of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from swarmop.proxy.model import ProxyError, VirtualHost
from swarmop.proxy.render import NginxRenderer, config_hash, render_nginx
from swarmop.proxy.validate import DesiredLike, drop_conflicts, is_proxied, vhost_from_desired


@dataclass(frozen=True)
class ProxyServiceInput:
    """One service as the planner sees it.

    `addresses_by_network`: every network the service is attached to (by
    name), each with the addresses of the service's *running* tasks on it
    (Docker's `10.0.1.5/24` form is accepted). An attached network with no
    running task maps to an empty sequence.
    """

    name: str
    desired: DesiredLike
    addresses_by_network: Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class ProxyPlan:
    config: str
    config_hash: str
    vhosts: tuple[VirtualHost, ...]
    errors: Mapping[str, tuple[ProxyError, ...]]

    def status_of(self, service: str) -> str | None:
        """'ok', 'error' or None (the service is not proxied)."""
        if service in self.errors:
            return "error"
        if any(vhost.service == service for vhost in self.vhosts):
            return "ok"
        return None


def plan_proxy(
    services: Iterable[ProxyServiceInput],
    *,
    renderer: NginxRenderer | None = None,
) -> ProxyPlan:
    """Validate every proxied service, drop bad and conflicting ones, render the rest.

    Services without `proxy.host` are ignored. Output depends only on the
    input's content, never its order.
    """
    vhosts: list[VirtualHost] = []
    errors: dict[str, list[ProxyError]] = {}
    for service in sorted(services, key=lambda item: item.name):
        if not is_proxied(service.desired):
            continue
        result = vhost_from_desired(service.name, service.desired, service.addresses_by_network)
        if isinstance(result, VirtualHost):
            vhosts.append(result)
        else:
            errors.setdefault(service.name, []).extend(result)
    kept, conflicts = drop_conflicts(vhosts)
    for error in conflicts:
        errors.setdefault(error.service, []).append(error)
    text = renderer.render(kept) if renderer is not None else render_nginx(kept)
    return ProxyPlan(
        config=text,
        config_hash=config_hash(text),
        vhosts=tuple(kept),
        errors={name: tuple(found) for name, found in sorted(errors.items())},
    )
