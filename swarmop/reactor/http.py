"""A tiny HTTP endpoint: GET /healthz, /readyz, /status (JSON) and /metrics (Prometheus
text). Nothing else, no writes."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import SocketStream

from swarmop.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from swarmop.metrics import render_metrics
from swarmop.reactor.board import StatusBoard
from swarmop.status import encode

logger = logging.getLogger("swarmop.http")

Probe = Callable[[], Awaitable[dict[str, object]]]
MAX_REQUEST = 8192
JSON = "application/json"


async def serve_http(
    host: str,
    port: int,
    board: StatusBoard,
    probes: Probe,
    on_bound: Callable[[int], None] | None = None,
) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound = listener.extra(anyio.abc.SocketAttribute.local_port)
    if on_bound is not None:
        on_bound(bound)
    logger.info("HTTP endpoint on %s:%d", host, bound)

    async def handle(client: SocketStream) -> None:
        async with client:
            try:
                with anyio.fail_after(10):
                    request = b""
                    while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST:
                        request += await client.receive(4096)
                status, body, content_type = await _route(request, board, probes)
            except Exception as error:  # a bad client never takes the endpoint down
                status, body = 400, json.dumps({"error": str(error)[:200]}).encode()
                content_type = JSON
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            try:
                await client.send(head + body)
            except Exception:
                return

    await listener.serve(handle)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


async def _route(request: bytes, board: StatusBoard, probes: Probe) -> tuple[int, bytes, str]:
    line = request.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) < 2:
        return 400, b'{"error": "bad request line"}', JSON
    method, path = parts[0], parts[1].split("?", 1)[0]
    if method != "GET":
        return 405, b'{"error": "GET only"}', JSON
    if path == "/healthz":
        results = await probes()
        healthy = all(not (isinstance(v, dict) and "error" in v) for v in results.values())
        return (200 if healthy else 503), json.dumps(results, default=str).encode(), JSON
    if path == "/readyz":
        ready = board.ready
        return (200 if ready else 503), json.dumps({"ready": ready}).encode(), JSON
    if path == "/status":
        return 200, encode(board.snapshot()), JSON
    if path == "/metrics":
        text = render_metrics(
            board.snapshot(), ready=board.ready, events_by_level=board.events_by_level()
        )
        return 200, text.encode(), METRICS_CONTENT_TYPE
    return 404, b'{"error": "not found"}', JSON
