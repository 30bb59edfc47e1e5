"""Mount selection for cleanup, and the TCP forwarder (in this process's own namespace)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from swarmop.sandbox import forwarder, mounts
from swarmop.sandbox.testing import skip_or_fail


def test_mounts_under_picks_only_paths_inside_the_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        mounts,
        "mount_points",
        lambda: ["/", "/run/sb/a", "/run/sb/a/exec/netns/x", "/run/sb/ab", "/var/lib/sb/a/o/m"],
    )
    found = mounts.mounts_under([Path("/run/sb/a"), Path("/var/lib/sb/a")])
    assert found == ["/run/sb/a", "/run/sb/a/exec/netns/x", "/var/lib/sb/a/o/m"]


def test_mountinfo_escapes_are_decoded() -> None:
    assert mounts._unescape("/a\\040b") == "/a b"


def test_forwarder_carries_a_request_and_its_answer() -> None:
    if os.geteuid() != 0:
        skip_or_fail("setns needs root")
    with socket.socket() as upstream:
        upstream.bind(("127.0.0.1", 0))
        upstream.listen(1)

        def answer() -> None:
            conn, _ = upstream.accept()
            with conn:
                conn.sendall(b"echo:" + conn.recv(100))

        threading.Thread(target=answer, daemon=True).start()
        listener = forwarder.listen_in_netns("/proc/self/ns/net", ("127.0.0.1", 0))
        port = listener.getsockname()[1]
        threading.Thread(
            target=forwarder.serve, args=(listener, upstream.getsockname()), daemon=True
        ).start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"ping")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(100) == b"echo:ping"
