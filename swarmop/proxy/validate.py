"""From one service's desired proxy settings to a `VirtualHost`, or its errors.

Pure. A service is proxied when `proxy.host` is set (or set but invalid, which
is reported). Any error in a `proxy.*` field excludes the whole service: a
virtual host built from the fields that did parse would route traffic
somewhere its owner did not ask for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from swarmop.proxy.allowlist import (
    InvalidProxyValue,
    IPAddress,
    check_address,
    check_hostname,
    check_name,
    check_network,
    check_path,
    check_port,
)
from swarmop.proxy.model import ProxyError, VirtualHost

PROXY_FIELDS = ("proxy.host", "proxy.port", "proxy.path", "proxy.network")
DEFAULT_PORT = 80
DEFAULT_PATH = "/"


class _FieldErrorLike(Protocol):
    @property
    def field(self) -> str: ...

    @property
    def message(self) -> str: ...


class DesiredLike(Protocol):
    """What this module reads from `swarmop.desired.DesiredState`."""

    @property
    def errors(self) -> Sequence[_FieldErrorLike]: ...

    def value(self, field: str, default: Any = None) -> Any: ...


def is_proxied(state: DesiredLike) -> bool:
    """True when the service asks for a virtual host (even an invalid one)."""
    return state.value("proxy.host") is not None or any(
        error.field == "proxy.host" for error in state.errors
    )


def vhost_from_desired(
    service: str,
    state: DesiredLike,
    addresses_by_network: Mapping[str, Sequence[str]],
) -> VirtualHost | list[ProxyError]:
    """Validate `service`'s proxy fields and pick its upstream addresses.

    `addresses_by_network` maps every network the service is attached to
    (include attached networks with no running task as an empty list) to the
    addresses of its running tasks there. `proxy.network` picks one; without
    it the service must be on exactly one network.
    """
    errors = [
        ProxyError(service, error.field, error.message)
        for error in state.errors
        if error.field in PROXY_FIELDS
    ]

    def checked(field: str, check: Any, default: Any = None) -> Any:
        raw = state.value(field, default)
        if raw is None:
            return None
        try:
            return check(raw)
        except InvalidProxyValue as error:
            errors.append(ProxyError(service, field, str(error)))
            return None

    try:
        check_name(service)
    except InvalidProxyValue as error:
        errors.append(ProxyError(service, "service", str(error)))
    host = checked("proxy.host", check_hostname)
    port = checked("proxy.port", check_port, DEFAULT_PORT)
    path = checked("proxy.path", check_path, DEFAULT_PATH)
    network = checked("proxy.network", check_network)
    if host is None and not any(error.field == "proxy.host" for error in errors):
        errors.append(ProxyError(service, "proxy.host", "not set"))
    if errors:
        return errors

    network, raw_addresses, network_error = _pick_network(network, addresses_by_network)
    if network_error is not None:
        return [ProxyError(service, "proxy.network", network_error)]
    addresses: list[IPAddress] = []
    for raw in raw_addresses:
        try:
            addresses.append(check_address(raw))
        except InvalidProxyValue as error:
            errors.append(ProxyError(service, "addresses", str(error)))
    if errors:
        return errors
    return VirtualHost(service, host, port, path, network, tuple(addresses))


def _pick_network(
    network: str | None, addresses_by_network: Mapping[str, Sequence[str]]
) -> tuple[str | None, Sequence[str], str | None]:
    if network is not None:
        if network not in addresses_by_network:
            attached = ", ".join(sorted(addresses_by_network)) or "none"
            return None, (), f"service is not attached to {network!r} (attached: {attached})"
        return network, addresses_by_network[network], None
    if len(addresses_by_network) == 1:
        ((only, addresses),) = addresses_by_network.items()
        return only, addresses, None
    if not addresses_by_network:
        return None, (), "service is attached to no network the proxy can reach"
    attached = ", ".join(sorted(addresses_by_network))
    return None, (), f"service is on several networks ({attached}); set proxy.network"


def drop_conflicts(
    vhosts: Iterable[VirtualHost],
) -> tuple[list[VirtualHost], list[ProxyError]]:
    """Exclude every service whose host + path another service also claims.

    Both claimants are excluded and reported, rather than letting one win by
    name order: a new service must never take over traffic that another
    service already serves, and an outage that names its cause is easier to
    notice and fix than a silent hijack. Returns (kept sorted by service, errors).
    """
    claims: dict[tuple[str, str], list[VirtualHost]] = defaultdict(list)
    for vhost in vhosts:
        claims[(vhost.host, vhost.path)].append(vhost)
    kept: list[VirtualHost] = []
    errors: list[ProxyError] = []
    for (host, path), claimants in claims.items():
        if len(claimants) == 1:
            kept.extend(claimants)
            continue
        names = sorted(vhost.service for vhost in claimants)
        for name in names:
            others = ", ".join(other for other in names if other != name)
            errors.append(ProxyError(name, "conflict", f"{host}{path} is also claimed by {others}"))
    kept.sort(key=lambda vhost: vhost.service)
    errors.sort(key=lambda error: (error.service, error.message))
    return kept, errors
