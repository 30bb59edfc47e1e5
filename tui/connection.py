"""Connection options of `swarmop tui`, resolved exactly as `swarmop run` resolves them.

The resolution itself lives in `swarmop.settings` (flags beat DOCKER_HOST,
DOCKER_TLS_VERIFY, CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...;
plaintext remote Docker is refused unless allowed). No Consul address means
Consul is not configured: the TUI then reads and writes labels only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import consul

from swarmop.clients.docker import LazyAPIClient
from swarmop.errors import ConfigurationError
from swarmop.settings import (
    DEFAULT_PREFIX,
    ConsulSettings,
    DockerSettings,
    check_prefix,
    resolve_consul,
    resolve_docker,
)


class ConnectionOptionError(ValueError):
    pass


@dataclass(frozen=True)
class Connection:
    docker: DockerSettings
    consul: ConsulSettings | None  # its repr never shows the token
    prefix: str
    read_only: bool

    @property
    def docker_host(self) -> str:
        return self.docker.host


def resolve_connection(
    *,
    docker_host: str | None = None,
    docker_insecure: bool = False,
    consul_addr: str | None = None,
    consul_token: str | None = None,
    consul_cacert: str | None = None,
    prefix: str | None = None,
    read_only: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Connection:
    try:
        return Connection(
            docker=resolve_docker(host=docker_host, allow_insecure=docker_insecure, env=environ),
            consul=resolve_consul(
                addr=consul_addr, token=consul_token, cacert=consul_cacert, env=environ
            ),
            prefix=check_prefix(DEFAULT_PREFIX if prefix is None else prefix),
            read_only=read_only,
        )
    except ConfigurationError as error:
        raise ConnectionOptionError(str(error)) from None


def docker_client(connection: Connection, timeout: int = 30) -> Any:
    """A client that contacts the daemon on first use, not when made: making a plain
    APIClient asks for the API version at once, which fails (or blocks up to
    `timeout`) before the UI could open and show the error."""
    return LazyAPIClient(connection.docker, timeout=timeout)


def consul_client(connection: Connection) -> Any:
    settings = connection.consul
    if settings is None:
        raise ConnectionOptionError("Consul is not configured")
    verify: bool | str = settings.cacert if settings.cacert else settings.verify
    client = consul.Consul(
        host=settings.host, port=settings.port, scheme=settings.scheme, verify=verify
    )
    # py-consul lets CONSUL_HTTP_TOKEN override a token given in code; the
    # resolved one (flag first) is what this connection must use.
    client.token = settings.token
    return client
