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
import docker.types
import docker.utils

from swarmop.settings import DockerSettings

logger = logging.getLogger("swarmop.docker")

DEFAULT_TIMEOUT = 30.0


class _APIClient(docker.APIClient):  # type: ignore[misc]
    """requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE replace a session's own
    CA bundle (psf/requests#3829), so the daemon's CA from DOCKER_CERT_PATH was
    silently ignored wherever those variables are set: the CA given here wins."""

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str) and verify is None:
            merged["verify"] = self.verify
        return merged


def make_api(settings: DockerSettings, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A docker.APIClient following the resolved settings (TLS as decided in settings)."""
    tls: Any = False
    if settings.uses_tls and settings.cert_path is not None:
        tls = docker.tls.TLSConfig(
            client_cert=(f"{settings.cert_path}/cert.pem", f"{settings.cert_path}/key.pem"),
            ca_cert=f"{settings.cert_path}/ca.pem" if settings.tls_verify else None,
            verify=settings.tls_verify,
        )
    return _APIClient(base_url=settings.host, tls=tls, timeout=int(timeout), version="auto")


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

    Opening the stream waits at most `open_timeout` for the daemon's answer
    (docker-py would wait forever: a black-holed request never returns), and
    `close()` never waits for an opening in progress: it marks the stream
    closed and the opener closes what it gets. A silent stream once open is
    the caller's watchdog's business, so its reads have no timeout.
    """

    def __init__(
        self,
        api: Any,
        types: tuple[str, ...] = ("service", "node"),
        *,
        open_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._api = api
        self._types = types
        self._open_timeout = open_timeout
        self._stream: Any = None
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        if self._closed.is_set():
            return iter(())
        # No lock held while the request is out: close() must not wait on the network.
        stream = self._open()
        with self._lock:
            if not self._closed.is_set():
                self._stream = stream
                return self._iterate()
        _close_quietly(stream)
        return iter(())

    def _open(self) -> Any:
        api = self._api
        response = api._get(
            api._url("/events"),
            params={"filters": docker.utils.convert_filters({"type": list(self._types)})},
            stream=True,
            timeout=self._open_timeout,
        )
        api._raise_for_status(response)
        _read_without_timeout(response)
        return docker.types.CancellableStream(api._stream_helper(response, decode=True), response)

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
            _close_quietly(stream)


def _read_without_timeout(response: Any) -> None:
    """Lift the open timeout from a streamed response's socket (a quiet swarm sends
    nothing for minutes). Where the socket cannot be found the timeout stays, and
    a quiet stream merely ends early and is reopened."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        logger.debug("event stream: socket not found; its reads keep the open timeout")
        return
    sock.settimeout(None)


def _close_quietly(stream: Any) -> None:
    try:
        stream.close()
    except Exception as error:
        logger.debug("closing event stream: %s", error)


__all__ = ["DockerReader", "EventStream", "LazyAPIClient", "make_api"]
