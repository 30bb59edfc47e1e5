"""A loopback TCP proxy in front of a Docker API endpoint, with switchable faults.

The operator under test talks to `proxy.url` (tcp://127.0.0.1:<port>, accepted
without TLS because it is loopback); the proxy forwards each HTTP/1.1 request
to the real daemon (unix socket or tcp) and can instead:

- black-hole: stop forwarding on connections whose current request matches
  (e.g. the streaming GET /events), and optionally on new matching requests,
  while keeping the client's socket open, so the stream goes silent without
  closing, like a half-open TCP connection. `heal()` ends the fault: silenced
  connections are then reset, as a peer that lost the connection state answers.
- reset after forward: a matching request (e.g. POST .../services/<id>/update)
  reaches the daemon and is applied; the proxy reads the daemon's answer and
  resets the client's connection instead of passing it on, so the client
  cannot know whether its write happened.
- capture and inject events: every event on a /events stream is recorded;
  `inject_events` writes given events into the live streams (at event
  boundaries, as extra chunks), to replay them through the client's real
  parser.

Every request is recorded with the daemon's status, so tests can count which
writes reached the daemon.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

EVENTS = re.compile(r"^GET /(v[\d.]+/)?events(\?|$)")
SERVICE_UPDATE = re.compile(r"^POST /(v[\d.]+/)?services/[^/?]+/update(\?|$)")
SERVICE_INSPECT = re.compile(r"^GET /(v[\d.]+/)?services/[^/?]+(\?|$)")

MAX_LINE = 64 * 1024
POLL = 0.1


class _Closed(Exception):
    """The peer closed its side."""


@dataclass
class Exchange:
    """One request seen by the proxy and what became of it."""

    request: str
    """`METHOD target`, e.g. `POST /v1.41/services/abc/update?version=21`."""
    status: int | None = None
    """The daemon's status code (None when the request never reached it)."""
    reset: bool = False
    """The daemon answered but the client's connection was reset instead."""
    silenced: bool = False


class _Reader:
    """Buffered reads from a socket: lines, exact sizes, and a readiness poll."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _Closed
        self.buffer += data

    def readable(self, timeout: float, *, unless_readable: socket.socket) -> bool:
        """Whether data waits here, polling up to `timeout`; raises _Closed when
        `unless_readable` (the other side of the relay) hung up meanwhile."""
        if self.buffer:
            return True
        ready, _, _ = select.select([self.sock, unless_readable], [], [], timeout)
        if unless_readable in ready and not unless_readable.recv(4096):
            raise _Closed
        return self.sock in ready

    def readline(self) -> bytes:
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > MAX_LINE:
                raise ValueError("line too long")
            self._fill()
        line = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        return line

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_some(self, limit: int = MAX_LINE) -> bytes:
        if not self.buffer:
            self._fill()
        data = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        return data


@dataclass
class _Head:
    first_line: str
    raw: bytes
    headers: dict[str, str]

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None else None

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


def _read_head(reader: _Reader) -> _Head:
    first = reader.readline()
    raw = bytearray(first)
    headers: dict[str, str] = {}
    while True:
        line = reader.readline()
        raw += line
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            break
        name, _, value = text.partition(":")
        headers[name.strip().lower()] = value.strip()
    return _Head(first.decode("latin-1").rstrip("\r\n"), bytes(raw), headers)


def _read_chunk(reader: _Reader) -> tuple[bytes, bytes]:
    """One chunk: (its raw bytes as received, its payload); an empty payload ends the body
    (the raw bytes then include the trailers and the final CRLF)."""
    size_line = reader.readline()
    size = int(size_line.split(b";")[0].strip(), 16)
    if size == 0:
        raw = bytearray(size_line)
        while (line := reader.readline()) not in (b"\r\n", b"\n"):
            raw += line
        raw += line
        return bytes(raw), b""
    payload = reader.read_exact(size)
    return size_line + payload + reader.read_exact(2), payload


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass
class _ResetRule:
    pattern: re.Pattern[str]
    left: int


@dataclass(eq=False)
class _Connection:
    client: socket.socket
    upstream: socket.socket | None = None
    current: str = ""
    """The request this connection is answering (or last answered)."""
    streaming_events: bool = False
    silenced: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    inject: list[bytes] = field(default_factory=list)


class DockerFaultProxy:
    """See the module docstring. Use as a context manager, or call `close()`."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme == "unix":
            self._upstream: tuple[str, str | tuple[str, int]] = ("unix", parts.path)
        elif parts.scheme in ("tcp", "http") and parts.hostname and parts.port:
            self._upstream = ("tcp", (parts.hostname, parts.port))
        else:
            raise ValueError(f"unsupported Docker endpoint {upstream!r}")
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._threads: list[threading.Thread] = []
        self._silence_new: re.Pattern[str] | None = None
        self._reset_rules: list[_ResetRule] = []
        self._injected = 0
        self._since: str | None = None
        self._closing = threading.Event()
        self.exchanges: list[Exchange] = []
        self.events: list[bytes] = []
        """Every event forwarded on a /events stream, as its JSON line."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._spawn(self._accept_loop, "accept")

    # faults -----------------------------------------------------------------------

    def black_hole(self, pattern: re.Pattern[str] = EVENTS, *, new: bool = False) -> int:
        """Silence the open connections whose current request matches `pattern` (and,
        with `new`, every later matching request) until `heal()`. Returns how many
        open connections went silent."""
        with self._lock:
            if new:
                self._silence_new = pattern
            chosen = [c for c in self._connections if c.current and pattern.search(c.current)]
            for connection in chosen:
                connection.silenced.set()
            return len(chosen)

    def heal(self) -> None:
        """Forward new requests again; connections silenced so far are reset."""
        with self._lock:
            self._silence_new = None
            for connection in self._connections:
                if connection.silenced.is_set():
                    connection.released.set()

    def reset_after_forward(
        self, pattern: re.Pattern[str] = SERVICE_UPDATE, times: int = 1
    ) -> None:
        """The next `times` requests matching `pattern` reach the daemon, and the
        client's connection is reset instead of getting the daemon's answer."""
        with self._lock:
            self._reset_rules.append(_ResetRule(pattern, times))

    def replay_since(self, since: float) -> None:
        """The next /events request asks the daemon for events since `since` (whole
        seconds, as a resuming client would), so the daemon replays what it buffered."""
        with self._lock:
            self._since = str(int(since))

    def inject_events(self, payloads: Iterable[bytes]) -> int:
        """Queue these event lines on every live /events stream; returns the number of
        streams they go to (each writes them at its next event boundary)."""
        items = [p if p.endswith(b"\n") else p + b"\n" for p in payloads]
        with self._lock:
            streams = [c for c in self._connections if c.streaming_events]
            for connection in streams:
                connection.inject.extend(items)
            return len(streams)

    # observations -----------------------------------------------------------------

    def matching(self, pattern: re.Pattern[str]) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if pattern.search(e.request)]

    def injected(self) -> int:
        """Injected events written to clients so far (over all streams)."""
        with self._lock:
            return self._injected

    def event_streams(self) -> int:
        with self._lock:
            return sum(1 for c in self._connections if c.streaming_events)

    # lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        self._closing.set()
        _close(self._listener)
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for connection in connections:
            connection.released.set()
            _close(connection.upstream)
            # Closing a socket does not wake a thread blocked reading it; shutting
            # down its reading side does, and that thread then closes it.
            with contextlib.suppress(OSError):
                connection.client.shutdown(socket.SHUT_RD)
        for thread in threads:
            thread.join(timeout=10)

    def __enter__(self) -> DockerFaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # internals --------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(
            target=target, args=args, name=f"docker-fault-proxy:{name}", daemon=True
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            connection = _Connection(client)
            with self._lock:
                self._connections.add(connection)
            self._spawn(self._serve, "connection", connection)

    def _connect_upstream(self) -> socket.socket:
        kind, address = self._upstream
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(address)
            return sock
        assert isinstance(address, tuple)
        return socket.create_connection(address)

    def _take_reset(self, request: str) -> bool:
        with self._lock:
            for rule in self._reset_rules:
                if rule.left > 0 and rule.pattern.search(request):
                    rule.left -= 1
                    return True
        return False

    def _serve(self, connection: _Connection) -> None:
        client = connection.client
        try:
            connection.upstream = self._connect_upstream()
            from_client = _Reader(client)
            from_daemon = _Reader(connection.upstream)
            while True:
                head = _read_head(from_client)
                method, target, _ = head.first_line.split(" ", 2)
                exchange = Exchange(f"{method} {target}")
                with self._lock:
                    connection.current = exchange.request
                    self.exchanges.append(exchange)
                    silence = self._silence_new
                    if silence is not None and silence.search(exchange.request):
                        exchange.silenced = True
                        connection.silenced.set()  # so that heal() releases it
                if exchange.silenced or connection.silenced.is_set():
                    exchange.silenced = True
                    self._hold(connection)
                    return
                if EVENTS.search(exchange.request):
                    head = self._with_since(head)
                    exchange.request = head.first_line.rsplit(" ", 1)[0]
                self._forward_body(head, from_client, connection.upstream)
                resetting = self._take_reset(exchange.request)
                answer = _read_head(from_daemon)
                exchange.status = int(answer.first_line.split(" ", 2)[1])
                if resetting:
                    # Read the whole answer first: the daemon has applied the request.
                    self._drain_body(answer, from_daemon)
                    exchange.reset = True
                    _close(connection.upstream)
                    _reset(client)
                    return
                if EVENTS.search(exchange.request) and answer.chunked and exchange.status == 200:
                    client.sendall(answer.raw)
                    self._stream_events(connection, from_daemon, exchange)
                    return
                if not self._relay_body(connection, answer, method, from_daemon, exchange):
                    return
                if head.closes or answer.closes:
                    return
        except (OSError, ValueError, _Closed):
            pass
        finally:
            with self._lock:
                self._connections.discard(connection)
            _close(connection.upstream)
            _close(client)

    def _with_since(self, head: _Head) -> _Head:
        with self._lock:
            since, self._since = self._since, None
        if since is None:
            return head
        method, target, version = head.first_line.split(" ", 2)
        target = re.sub(r"([?&])since=[^&]*&?", r"\1", target).rstrip("?&")
        target += ("&" if "?" in target else "?") + f"since={since}"
        first = f"{method} {target} {version}"
        raw = first.encode("latin-1") + head.raw[head.raw.index(b"\r\n") :]
        return _Head(first, raw, head.headers)

    def _forward_body(self, head: _Head, source: _Reader, sink: socket.socket) -> None:
        sink.sendall(head.raw)
        if head.chunked:
            while True:
                raw, payload = _read_chunk(source)
                sink.sendall(raw)
                if not payload:
                    return
        elif head.length:
            sink.sendall(source.read_exact(head.length))

    def _drain_body(self, answer: _Head, source: _Reader) -> None:
        if answer.chunked:
            while _read_chunk(source)[1]:
                pass
        elif answer.length:
            source.read_exact(answer.length)

    def _relay_body(
        self,
        connection: _Connection,
        answer: _Head,
        method: str,
        source: _Reader,
        exchange: Exchange,
    ) -> bool:
        """Pass the daemon's answer on; False when the connection is done."""
        client = connection.client
        if not self._send(connection, answer.raw, exchange):
            return False
        status = exchange.status or 0
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return True
        if answer.chunked:
            while True:
                raw, payload = _read_chunk(source)
                if not self._send(connection, raw, exchange):
                    return False
                if not payload:
                    return True
        if answer.length is not None:
            left = answer.length
            while left > 0:
                data = source.read_some(left)
                left -= len(data)
                if not self._send(connection, data, exchange):
                    return False
            return True
        # Delimited by the daemon closing the connection.
        while True:
            try:
                data = source.read_some()
            except _Closed:
                client.shutdown(socket.SHUT_WR)
                return False
            if not self._send(connection, data, exchange):
                return False

    def _send(self, connection: _Connection, data: bytes, exchange: Exchange) -> bool:
        if connection.silenced.is_set():
            exchange.silenced = True
            self._hold(connection)
            return False
        connection.client.sendall(data)
        return True

    def _stream_events(self, connection: _Connection, source: _Reader, exchange: Exchange) -> None:
        partial = bytearray()  # an event line not yet complete
        with self._lock:
            connection.streaming_events = True
        try:
            while True:
                if connection.silenced.is_set():
                    exchange.silenced = True
                    self._hold(connection)
                    return
                if not partial:
                    # Between two events: injected ones cannot split a real one.
                    with self._lock:
                        queued, connection.inject = connection.inject, []
                    for payload in queued:
                        connection.client.sendall(_chunk(payload))
                        with self._lock:
                            self._injected += 1
                # A client that closes a quiet stream is noticed here, not only at
                # the next event (docker-py hangs up when it recycles a stream).
                if not source.readable(POLL, unless_readable=connection.client):
                    continue
                raw, payload = _read_chunk(source)
                partial += payload
                *complete, rest = bytes(partial).split(b"\n")
                partial = bytearray(rest)
                with self._lock:
                    self.events.extend(line + b"\n" for line in complete if line.strip())
                if not self._send(connection, raw, exchange):
                    return
                if not payload:
                    return
        finally:
            with self._lock:
                connection.streaming_events = False

    def _hold(self, connection: _Connection) -> None:
        """Keep the client's connection open and silent until healed, then reset it."""
        _close(connection.upstream)
        connection.released.wait()
        _reset(connection.client)
