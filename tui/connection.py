"""Connection options of `swarmop tui`, resolved like `swarmop run`'s.

Flags win over the environment (DOCKER_HOST, CONSUL_HTTP_ADDR,
CONSUL_HTTP_TOKEN, CONSUL_CACERT). No Consul address means Consul is not
configured: the TUI then reads and writes labels only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import consul
import docker

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_PREFIX = "swarmop"


class ConnectionOptionError(ValueError):
    pass


@dataclass(frozen=True)
class ConsulAddress:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Connection:
    docker_host: str
    consul: ConsulAddress | None
    consul_token: str | None
    consul_cacert: str | None
    prefix: str
    read_only: bool

    def __repr__(self) -> str:
        # The token never appears in logs or tracebacks.
        token = "set" if self.consul_token else "unset"
        return (
            f"Connection(docker_host={self.docker_host!r}, consul={self.consul!s}, "
            f"token={token}, prefix={self.prefix!r}, read_only={self.read_only})"
        )


def parse_consul_address(text: str) -> ConsulAddress:
    raw = text.strip()
    if "://" not in raw:
        raw = f"http://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConnectionOptionError(
            f"Consul address must look like host:port or http://host:port, got {text!r}"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 8500)
    except ValueError:
        raise ConnectionOptionError(f"bad port in Consul address {text!r}") from None
    return ConsulAddress(parts.scheme, parts.hostname, port)


def resolve_connection(
    *,
    docker_host: str | None = None,
    consul_addr: str | None = None,
    consul_token: str | None = None,
    consul_cacert: str | None = None,
    prefix: str | None = None,
    read_only: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Connection:
    env = os.environ if environ is None else environ
    address = consul_addr or env.get("CONSUL_HTTP_ADDR") or None
    chosen_prefix = (prefix or DEFAULT_PREFIX).strip().strip("/")
    if not chosen_prefix:
        raise ConnectionOptionError("--prefix must not be empty")
    return Connection(
        docker_host=docker_host or env.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST,
        consul=parse_consul_address(address) if address else None,
        consul_token=consul_token or env.get("CONSUL_HTTP_TOKEN") or None,
        consul_cacert=consul_cacert or env.get("CONSUL_CACERT") or None,
        prefix=chosen_prefix,
        read_only=read_only,
    )


def docker_client(connection: Connection, timeout: int = 30) -> Any:
    return docker.APIClient(base_url=connection.docker_host, version="auto", timeout=timeout)


def consul_client(connection: Connection) -> Any:
    address = connection.consul
    if address is None:
        raise ConnectionOptionError("Consul is not configured")
    verify: bool | str = connection.consul_cacert or True
    client = consul.Consul(
        host=address.host,
        port=address.port,
        scheme=address.scheme,
        token=connection.consul_token,
        verify=verify,
    )
    # py-consul lets CONSUL_HTTP_TOKEN override the token given in code; the
    # resolved one (flag first) is what this connection must use.
    client.token = connection.consul_token
    return client
