"""Docker access for the reactor: a configured APIClient, reads, and a closable event stream.

All calls here block; the reactor runs them in worker threads behind a limiter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import docker
import docker.errors
import docker.tls

from swarmop.settings import DockerSettings

logger = logging.getLogger("swarmop.docker")

DEFAULT_TIMEOUT = 30.0


def make_api(settings: DockerSettings, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A docker.APIClient following the resolved settings (TLS as decided in settings)."""
    tls: Any = False
    if settings.uses_tls and settings.cert_path is not None:
        tls = docker.tls.TLSConfig(
            client_cert=(f"{settings.cert_path}/cert.pem", f"{settings.cert_path}/key.pem"),
            ca_cert=f"{settings.cert_path}/ca.pem" if settings.tls_verify else None,
            verify=settings.tls_verify,
        )
    return docker.APIClient(base_url=settings.host, tls=tls, timeout=int(timeout), version="auto")


class LazyAPIClient:
    """An APIClient made on first use, and made again on each use until that works.

    Creating a client asks the daemon for its API version, so an operator that
    started while Docker was down would crash before it could report anything.
    Deferred, the failure happens in the first call instead, where the
    reactor's ordinary "Docker unavailable, retrying" handling takes it.
    """

    def __init__(self, settings: DockerSettings, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._settings = settings
        self._timeout = timeout
        self._api: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._api is None:
                self._api = make_api(self._settings, timeout=self._timeout)
            return self._api

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client(), name)

    def close(self) -> None:
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()


class DockerReader:
    """Reads of services, nodes and tasks; a missing object is None, not an exception."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def ping(self) -> bool:
        return bool(self.api.ping())

    def list_services(self) -> list[dict[str, Any]]:
        return list(self.api.services())

    def list_nodes(self) -> list[dict[str, Any]]:
        return list(self.api.nodes())

    def inspect_service(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.api.inspect_service(name_or_id))
        except docker.errors.NotFound:
            return None

    def inspect_node(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.api.inspect_node(name_or_id))
        except docker.errors.NotFound:
            return None

    def list_tasks(self, service_id: str) -> list[dict[str, Any]]:
        return list(self.api.tasks(filters={"service": service_id}))


class EventStream:
    """Docker's /events as an iterator that another thread can close at any time.

    docker-py's stream has no read timeout and simply ends when the connection
    drops, so the caller treats the end of iteration as "reconnect and relist".
    """

    def __init__(self, api: Any, types: tuple[str, ...] = ("service", "node")) -> None:
        self._api = api
        self._types = types
        self._stream: Any = None
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        with self._lock:
            if self._closed.is_set():
                return iter(())
            self._stream = self._api.events(decode=True, filters={"type": list(self._types)})
        return self._iterate()

    def _iterate(self) -> Iterator[Mapping[str, Any]]:
        stream = self._stream
        try:
            for item in stream:
                if self._closed.is_set():
                    return
                if isinstance(item, Mapping):
                    yield item
        except Exception as error:  # a broken connection may surface as anything
            if not self._closed.is_set():
                logger.debug("event stream ended: %s", error)

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception as error:
                logger.debug("closing event stream: %s", error)


__all__ = ["DockerReader", "EventStream", "LazyAPIClient", "make_api"]
