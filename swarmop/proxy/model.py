"""Typed model of what the proxy serves: one virtual host per service.

Constructors re-run the allowlists, so a `VirtualHost` holding a value that
could break out of its directive cannot exist, wherever it was built.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

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


def _checked_address(address: object) -> IPAddress:
    # An ipaddress object cannot carry text; only its kind needs checking again.
    if type(address) in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        typed: IPAddress = address  # type: ignore[assignment]
        if typed.is_unspecified or typed.is_multicast or getattr(typed, "scope_id", None):
            raise InvalidProxyValue(f"task address {typed} cannot be an upstream")
        return typed
    return check_address(address)


def _address_key(address: IPAddress) -> tuple[int, int]:
    return (address.version, int(address))


@dataclass(frozen=True)
class VirtualHost:
    """Service `service` answers `host` + `path`, reached at `addresses`:`port`.

    `addresses` are the service's running tasks on `network`; stored sorted and
    de-duplicated so equal inputs render equal text. Empty means no running
    task: the vhost answers 503.
    """

    service: str
    host: str
    port: int
    path: str = "/"
    network: str | None = None
    addresses: tuple[IPAddress, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "service", check_name(self.service))
        object.__setattr__(self, "host", check_hostname(self.host))
        object.__setattr__(self, "port", check_port(self.port))
        object.__setattr__(self, "path", check_path(self.path))
        if self.network is not None:
            object.__setattr__(self, "network", check_network(self.network))
        checked = {_checked_address(address) for address in self.addresses}
        object.__setattr__(self, "addresses", tuple(sorted(checked, key=_address_key)))

    @property
    def upstream_name(self) -> str:
        return f"swarmop_{self.service}"

    @property
    def upstream_servers(self) -> tuple[str, ...]:
        """`address:port` strings for nginx's `server` directive, IPv6 bracketed."""
        return tuple(
            f"[{address}]:{self.port}"
            if isinstance(address, ipaddress.IPv6Address)
            else f"{address}:{self.port}"
            for address in self.addresses
        )


@dataclass(frozen=True)
class ProxyError:
    """Why one service gets no virtual host. `field` is the offending desired
    field (`proxy.host`, ...), `addresses`, or `conflict`."""

    service: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.service}: {self.field}: {self.message}"
