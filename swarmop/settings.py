"""Operator settings and how they are resolved from flags and the environment.

Resolution is explicit, one rule per variable, and each rule is tested:

Docker
  - ``--docker-host`` beats ``DOCKER_HOST``; default ``unix:///var/run/docker.sock``.
  - ``DOCKER_TLS_VERIFY``: ``1``/``true``/``yes`` verify the daemon's certificate
    with ``DOCKER_CERT_PATH``/{ca,cert,key}.pem (default ``~/.docker``); empty,
    ``0``/``false``/``no`` or unset: no verification. Any other value is an error
    (docker-py would treat ``0`` as *on*; we refuse to guess).
  - A ``tcp://`` host that is not loopback, without TLS, is refused unless
    ``allow_insecure_docker`` (``--docker-insecure``) is set: the Docker API is
    root on that host.
Consul
  - ``--consul-addr`` beats ``CONSUL_HTTP_ADDR`` (``host:port`` or
    ``http(s)://host:port``); with neither, Consul is not used and the operator
    runs from labels alone. ``CONSUL_HTTP_SSL=true`` selects https for a bare
    ``host:port``.
  - Token: ``--consul-token`` beats ``CONSUL_HTTP_TOKEN``. It is sent only in the
    ``X-Consul-Token`` header, never in a URL, never logged, and hidden from
    ``repr``. (py-consul would let the environment override a token given in
    code; the client sets it explicitly instead.)
  - CA file: ``--consul-cacert`` beats ``CONSUL_CACERT``; it is passed to the
    HTTP client as the verify bundle (py-consul itself ignores the variable).
    ``CONSUL_HTTP_SSL_VERIFY=false`` turns verification off (reported as a warning).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from swarmop.errors import ConfigurationError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_PREFIX = "swarmop"
DEFAULT_RESYNC_INTERVAL = 60.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

LogFormat = Literal["plain", "json"]


@dataclass(frozen=True)
class DockerSettings:
    host: str = DEFAULT_DOCKER_HOST
    tls_verify: bool = False
    cert_path: str | None = None
    allow_insecure: bool = False

    @property
    def uses_tls(self) -> bool:
        return self.tls_verify or self.cert_path is not None


@dataclass(frozen=True)
class ConsulSettings:
    scheme: str
    host: str
    port: int
    token: str | None = field(default=None, repr=False)
    token_source: str = "none"  # "flag" | "env" | "none": safe to log
    cacert: str | None = None
    verify: bool = True

    @property
    def address(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    docker: DockerSettings = field(default_factory=DockerSettings)
    consul: ConsulSettings | None = None
    prefix: str = DEFAULT_PREFIX
    resync_interval: float = DEFAULT_RESYNC_INTERVAL
    watchdog_interval: float = 300.0
    """Recycle the Docker event stream after this long without an event (half-open guard)."""
    max_workers: int = 8
    """Objects processed at the same time."""
    docker_threads: int = 8
    consul_threads: int = 4
    consul_watch_rate: float = 5.0
    """Blocking queries per second per watched folder (token bucket, burst 2)."""
    http: tuple[str, int] | None = None
    log_level: str = "INFO"
    log_format: LogFormat = "plain"
    instance: str | None = None
    state_dir: str | None = None
    """Without Consul: keep handler progress in files here, so a restarted operator
    does not rerun finished handlers (with Consul, progress lives in Consul)."""


def parse_bool_env(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r}: expected 1/true/yes or 0/false/no or empty")


def is_loopback_host(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_docker(
    *,
    host: str | None = None,
    allow_insecure: bool = False,
    env: Mapping[str, str] | None = None,
) -> DockerSettings:
    env = os.environ if env is None else env
    chosen = host or env.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
    tls_verify = parse_bool_env("DOCKER_TLS_VERIFY", env.get("DOCKER_TLS_VERIFY", ""))
    cert_path = env.get("DOCKER_CERT_PATH") or None
    if tls_verify and cert_path is None:
        cert_path = str(Path.home() / ".docker")
    parts = urlsplit(chosen)
    if parts.scheme not in ("unix", "tcp", "http", "https", "ssh", "npipe"):
        raise ConfigurationError(f"Docker host {chosen!r}: unsupported scheme {parts.scheme!r}")
    if parts.scheme in ("tcp", "http", "https") and not parts.hostname:
        raise ConfigurationError(f"Docker host {chosen!r}: missing host name")
    if cert_path is not None:
        missing = [
            name
            for name in ("ca.pem", "cert.pem", "key.pem")
            if not (Path(cert_path) / name).is_file()
        ]
        if missing:
            raise ConfigurationError(f"DOCKER_CERT_PATH {cert_path}: missing {', '.join(missing)}")
    settings = DockerSettings(
        host=chosen, tls_verify=tls_verify, cert_path=cert_path, allow_insecure=allow_insecure
    )
    if (
        parts.scheme in ("tcp", "http")
        and not settings.uses_tls
        and not is_loopback_host(parts.hostname or "")
        and not allow_insecure
    ):
        raise ConfigurationError(
            f"refusing plaintext Docker API at {chosen}: set DOCKER_TLS_VERIFY=1 with "
            "DOCKER_CERT_PATH, or pass --docker-insecure if this network is trusted"
        )
    return settings


def resolve_consul(
    *,
    addr: str | None = None,
    token: str | None = None,
    cacert: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ConsulSettings | None:
    env = os.environ if env is None else env
    raw = addr or env.get("CONSUL_HTTP_ADDR") or ""
    if not raw:
        return None
    use_ssl = parse_bool_env("CONSUL_HTTP_SSL", env.get("CONSUL_HTTP_SSL", ""))
    if "://" not in raw:
        raw = ("https://" if use_ssl else "http://") + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"Consul address {raw!r}: expected host:port or http(s)://host:port"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 8500)
    except ValueError:
        raise ConfigurationError(f"Consul address {raw!r}: invalid port") from None
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ConfigurationError(f"Consul address {raw!r}: only scheme, host and port allowed")

    if token:
        chosen_token, token_source = token, "flag"
    elif env.get("CONSUL_HTTP_TOKEN"):
        chosen_token, token_source = env["CONSUL_HTTP_TOKEN"], "env"
    else:
        chosen_token, token_source = None, "none"

    chosen_ca = cacert or env.get("CONSUL_CACERT") or None
    if chosen_ca is not None and not Path(chosen_ca).is_file():
        raise ConfigurationError(f"Consul CA file {chosen_ca} does not exist")
    verify_env = env.get("CONSUL_HTTP_SSL_VERIFY")
    verify = True if verify_env is None else parse_bool_env("CONSUL_HTTP_SSL_VERIFY", verify_env)
    return ConsulSettings(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        token=chosen_token,
        token_source=token_source,
        cacert=chosen_ca,
        verify=verify,
    )


def parse_http_addr(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigurationError(f"HTTP address {value!r}: expected ADDR:PORT, e.g. 127.0.0.1:8080")
    return (host.strip("[]") or "127.0.0.1", int(port))


def check_prefix(prefix: str) -> str:
    cleaned = prefix.strip("/")
    if not cleaned or any(not part for part in cleaned.split("/")) or " " in cleaned:
        raise ConfigurationError(
            f"key prefix {prefix!r}: expected e.g. 'swarmop' or 'team/swarmop'"
        )
    return cleaned


__all__ = [
    "DEFAULT_PREFIX",
    "ConsulSettings",
    "DockerSettings",
    "Settings",
    "check_prefix",
    "is_loopback_host",
    "parse_bool_env",
    "parse_http_addr",
    "resolve_consul",
    "resolve_docker",
]
