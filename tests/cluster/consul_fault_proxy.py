"""A loopback HTTP proxy in front of the sandbox's Consul that injects faults.

Each request is forwarded on its own connection (answers are HTTP/1.0, so the
client closes after each one) and recorded as a `Seen`. Per request, the test's
`fault(seen)` may instead:

- `BLACK_HOLE` it: read the request and never answer. The proxy notes when the
  client gave up and closed the connection (`Seen.closed_at`);
- `Reply(status, body)`: answer with an error such as 429 or 503, Consul untouched;
- `HideKeys(keys)`: forward it, then drop those keys from a KV listing and set
  `X-Consul-Results-Filtered-By-ACLs: true`, as Consul does when ACLs hide keys.

`rewrite_index(path, index)` may change the X-Consul-Index the client sees.
"""

from __future__ import annotations

import http.client
import json
import socket
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FILTERED_HEADER = "X-Consul-Results-Filtered-By-ACLs"


@dataclass
class Seen:
    request_line: str
    headers: dict[str, str]
    index_out: int | None = None
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)
    """Arrival on the wall clock, to compare with other processes' log lines."""
    fault: str | None = None
    """What the proxy did instead of forwarding plainly: black-hole, reply 429, hide-keys."""
    status: int | None = None
    """The status the client got (None: no answer)."""
    closed_at: float | None = None
    """Black-holed: when the client closed the connection (monotonic)."""

    @property
    def method(self) -> str:
        return self.request_line.split(" ", 1)[0]

    @property
    def target(self) -> str:
        return self.request_line.split(" ")[1]

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.target).query))


class Fault:
    """What to do with one request instead of forwarding it unchanged."""


@dataclass(frozen=True)
class BlackHole(Fault):
    pass


BLACK_HOLE = BlackHole()


@dataclass(frozen=True)
class Reply(Fault):
    status: int
    body: bytes = b""


@dataclass(frozen=True)
class HideKeys(Fault):
    keys: frozenset[str]


class FaultProxy:
    def __init__(self, consul_addr: str) -> None:
        self.consul_host, port = consul_addr.rsplit(":", 1)
        self.consul_port = int(port)
        self.seen: list[Seen] = []
        self.rewrite_index: Callable[[str, int], int] = lambda _path, index: index
        self.fault: Callable[[Seen], Fault | None] = lambda _seen: None
        self._released = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.connection, self.rfile, self.wfile)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        ).start()

    def _handle(self, connection: socket.socket, reader: Any, wfile: Any) -> None:
        request_line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not request_line:
            return
        headers: dict[str, str] = {}
        while True:
            line = reader.readline().decode("latin-1").rstrip("\r\n")
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = reader.read(int(headers.get("content-length", "0")))
        seen = Seen(request_line, headers)
        with self._lock:
            self.seen.append(seen)
        fault = self.fault(seen)
        if isinstance(fault, BlackHole):
            seen.fault = "black-hole"
            self._hold(connection, seen)
            return
        if isinstance(fault, Reply):
            seen.fault = f"reply {fault.status}"
            seen.status = fault.status
            self._answer(wfile, fault.status, "Fault", {}, fault.body)
            return
        upstream = http.client.HTTPConnection(self.consul_host, self.consul_port, timeout=90)
        try:
            forward = {
                k: v for k, v in headers.items() if k in {"x-consul-token", "content-length"}
            }
            upstream.request(seen.method, seen.target, body=body or None, headers=forward)
            response = upstream.getresponse()
            payload = response.read()
            extra: dict[str, str] = {}
            if isinstance(fault, HideKeys) and response.status == 200:
                seen.fault = "hide-keys"
                items = json.loads(payload)
                payload = json.dumps([i for i in items if i.get("Key") not in fault.keys]).encode()
                extra[FILTERED_HEADER] = "true"
            index = response.getheader("X-Consul-Index")
            if index is not None:
                seen.index_out = self.rewrite_index(seen.path, int(index))
                extra["X-Consul-Index"] = str(seen.index_out)
            seen.status = response.status
            self._answer(wfile, response.status, response.reason, extra, payload)
        finally:
            upstream.close()

    @staticmethod
    def _answer(wfile: Any, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        lines = [f"HTTP/1.0 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _hold(self, connection: socket.socket, seen: Seen) -> None:
        """Never answer; note when the client hangs up (or the proxy closes)."""
        connection.settimeout(0.2)
        while not self._released.is_set():
            try:
                if not connection.recv(1024):
                    seen.closed_at = time.monotonic()
                    return
            except TimeoutError:
                continue
            except OSError:
                seen.closed_at = time.monotonic()
                return

    def snapshot(self) -> list[Seen]:
        """Every request so far, in order of arrival."""
        with self._lock:
            return list(self.seen)

    def requests_to(self, path: str, *, method: str = "GET") -> list[Seen]:
        """What the proxy saw for exactly this path (query aside), in order."""
        return [s for s in self.snapshot() if s.method == method and s.path == path]

    def watches(self) -> list[Seen]:
        """The nginx agent's watch on its `config` key."""
        with self._lock:
            return [
                s
                for s in self.seen
                if s.request_line.startswith("GET ") and "/config?" in s.request_line
            ]

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
