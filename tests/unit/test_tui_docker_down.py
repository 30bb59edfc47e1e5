"""`swarmop tui` with Docker unreachable: the UI opens, shows the error, and reconnects.

DOCKER_HOST points at a Unix socket that exists but where nobody listens (as
after a daemon crash). Once a daemon answers there (a minimal fake of the four
endpoints the TUI reads), the error goes away and the services appear, without
restarting the app.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from swarmop.tui.app import SwarmopApp
from swarmop.tui.connection import resolve_connection
from swarmop.tui.launch import build_app

pytestmark = pytest.mark.anyio
SIZE = (160, 30)

SERVICE = {
    "ID": "svc0000000001",
    "Version": {"Index": 1},
    "Spec": {
        "Name": "came-back",
        "Mode": {"Replicated": {"Replicas": 1}},
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}},
    },
}
ANSWERS: dict[str, Any] = {
    "/version": {"ApiVersion": "1.41", "Version": "20.10.24"},
    "/v1.41/services": [SERVICE],
    "/v1.41/nodes": [],
    "/v1.41/tasks": [],
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeDaemon(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ANSWERS:
            # The event stream and anything else: refused, the TUI backs off.
            self.send_error(404)
            return
        body = json.dumps(ANSWERS[path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        return None


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def dead_socket(tmp_path: Path) -> Iterator[Path]:
    """A bound socket that never listens: connecting is refused."""
    path = tmp_path / "docker.sock"
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    holder.bind(str(path))
    yield path
    holder.close()


def serve_at(path: Path) -> UnixServer:
    path.unlink()
    server = UnixServer(str(path), FakeDaemon)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def open_app(sock: Path) -> SwarmopApp:
    connection = resolve_connection(environ={"DOCKER_HOST": f"unix://{sock}"})
    assert connection.consul is None and not connection.read_only  # the label writer is built
    return build_app(connection, interval=0.2)


async def wait_for(pilot: Any, predicate: Any, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def test_opens_with_docker_unreachable_shows_the_error_and_reconnects(
    dead_socket: Path,
) -> None:
    app = open_app(dead_socket)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshots_applied > 0, "the first read")
        status = app.status_text().plain
        assert "docker: " in status and "(retrying)" in status, status
        assert app.snapshot.docker_error
        assert app.table("services").row_count == 0

        server = serve_at(dead_socket)  # the daemon comes (back) at the same address
        try:
            await wait_for(pilot, lambda: app.snapshot.docker_error is None, "the reconnect")
            assert "docker: ok" in app.status_text().plain
            await wait_for(
                pilot, lambda: SERVICE["ID"] in app.table("services").shown, "the service row"
            )
        finally:
            server.shutdown()
            server.server_close()
