"""Reading the cluster: Docker lists, Consul keys, the Docker event stream.

Everything here blocks and runs in worker threads, never on the UI thread.
Errors never escape: they become part of the snapshot (shown in the status
bar) and the next read reconnects.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from swarmop.tui.connection import Connection, consul_client, docker_client
from swarmop.tui.model import ClusterSnapshot, build_snapshot

EventSink = Callable[[Mapping[str, Any]], None]


class SnapshotSource(Protocol):
    consul_configured: bool

    def read(self) -> ClusterSnapshot: ...

    def watch_events(self, sink: EventSink, stop: threading.Event) -> None: ...

    def close(self) -> None: ...


def _short_error(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


class StaticSource:
    """Plain data in place of a cluster: tests and demos feed the TUI through this."""

    def __init__(self, snapshot: ClusterSnapshot, events: list[Mapping[str, Any]] | None = None):
        self.snapshot = snapshot
        self.events = list(events or [])
        self.consul_configured = snapshot.consul_configured
        self.reads = 0

    def read(self) -> ClusterSnapshot:
        self.reads += 1
        return self.snapshot

    def watch_events(self, sink: EventSink, stop: threading.Event) -> None:
        for event in self.events:
            sink(event)
        stop.wait()

    def close(self) -> None:
        return None


class ClusterSource:
    """Lists services, nodes and tasks from a manager and every key under the prefix."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.consul_configured = connection.consul is not None
        self._docker: Any = None
        self._consul: Any = None
        self._events_stream: Any = None
        # The last good lists stay on screen while Docker is unreachable.
        self._last: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        self._last_kv: dict[str, str] | None = {} if self.consul_configured else None

    def _api(self) -> Any:
        if self._docker is None:
            self._docker = docker_client(self.connection)
        return self._docker

    def read(self) -> ClusterSnapshot:
        docker_error: str | None = None
        try:
            api = self._api()
            services = api.services()
            nodes = api.nodes()
            tasks = api.tasks()
            self._last = (services, nodes, tasks)
        except Exception as error:  # any failure is shown, and the next read reconnects
            docker_error = _short_error(error)
            self._docker = None
            services, nodes, tasks = self._last
        kv, consul_error = self._read_kv()
        return build_snapshot(
            services=services,
            nodes=nodes,
            tasks=tasks,
            kv=kv,
            prefix=self.connection.prefix,
            docker_error=docker_error,
            consul_error=consul_error,
        )

    def _read_kv(self) -> tuple[dict[str, str] | None, str | None]:
        if not self.consul_configured:
            return None, None
        try:
            if self._consul is None:
                self._consul = consul_client(self.connection)
            _index, items = self._consul.kv.get(f"{self.connection.prefix}/", recurse=True)
        except Exception as error:
            self._consul = None
            return self._last_kv, _short_error(error)
        kv: dict[str, str] = {}
        for item in items or []:
            value = item.get("Value")
            if isinstance(value, bytes):
                kv[str(item["Key"])] = value.decode("utf-8", errors="replace")
            elif value is not None:
                kv[str(item["Key"])] = str(value)
        self._last_kv = kv
        return kv, None

    def watch_events(self, sink: EventSink, stop: threading.Event) -> None:
        """Service and node events until `stop`; reconnects with backoff when the stream ends."""
        backoff = 0.5
        while not stop.is_set():
            try:
                api = docker_client(self.connection, timeout=3600)
                stream = api.events(decode=True, filters={"type": ["service", "node"]})
                self._events_stream = stream
                backoff = 0.5
                for event in stream:
                    if stop.is_set():
                        break
                    if isinstance(event, Mapping):
                        sink(event)
            except Exception:
                # The poll loop reports the connection error; events are only hints.
                pass
            finally:
                self._events_stream = None
            stop.wait(backoff)
            backoff = min(backoff * 2, 10.0)

    def close(self) -> None:
        stream = self._events_stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()


def poll_forever(
    source: SnapshotSource,
    deliver: Callable[[ClusterSnapshot], None],
    *,
    wake: threading.Event,
    stop: threading.Event,
    interval: float,
    min_gap: float = 0.1,
) -> None:
    """Read on a timer and whenever `wake` is set (an event arrived), at most every `min_gap`."""
    while not stop.is_set():
        wake.clear()
        started = time.monotonic()
        deliver(source.read())
        # Coalesce bursts of events into one read, like a small throttle.
        elapsed = time.monotonic() - started
        if elapsed < min_gap:
            stop.wait(min_gap - elapsed)
        wake.wait(interval)
