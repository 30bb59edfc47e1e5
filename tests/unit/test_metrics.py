"""GET /metrics: the operator's state in Prometheus' text format."""

from __future__ import annotations

import logging
import re
import socket

import anyio
import pytest

from swarmop.metrics import CONTENT_TYPE, render_metrics
from swarmop.reactor.board import StatusBoard
from swarmop.reactor.http import serve_http
from swarmop.status import EventLevel, ObjectStatus, OperatorInfo, Outcome

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?P<labels>\{[^}]*\})? (?P<value>\S+)$")


def parse(text: str) -> dict[str, float]:
    """Samples by `name{labels}`; fails on any line that is not valid exposition."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        samples[match["name"] + (match["labels"] or "")] = float(match["value"])
    return samples


def board_with_objects() -> StatusBoard:
    board = StatusBoard(OperatorInfo(instance="i1", pid=1, host="h", started=1000.0))
    board.set_status(ObjectStatus("service", "web", "s1", outcome=Outcome.OK))
    board.set_status(ObjectStatus("service", "db", "s2", outcome=Outcome.BLOCKED, retries=0))
    board.set_status(ObjectStatus("service", "api", "s3", outcome=Outcome.PENDING, retries=3))
    board.set_status(ObjectStatus("node", "node-1", "n1", outcome=Outcome.OK))
    board.record("operator", "", logging.WARNING, "Docker unavailable: refused; retrying")
    board.record("service", "web", logging.INFO, "scaled")
    board.record("service", "web", logging.INFO, "scaled again")
    board.update_info(docker_error="refused", last_resync=2000.5)
    return board


def test_objects_events_and_health_are_counted() -> None:
    board = board_with_objects()
    samples = parse(
        render_metrics(board.snapshot(), ready=False, events_by_level=board.events_by_level())
    )
    assert samples['swarmop_objects{kind="service",outcome="ok"}'] == 1
    assert samples['swarmop_objects{kind="service",outcome="blocked"}'] == 1
    assert samples['swarmop_objects{kind="service",outcome="pending"}'] == 1
    assert samples['swarmop_objects{kind="service",outcome="error"}'] == 0
    assert samples['swarmop_objects{kind="node",outcome="ok"}'] == 1
    assert samples["swarmop_object_retries"] == 3
    assert samples['swarmop_events_total{level="info"}'] == 2
    assert samples['swarmop_events_total{level="warning"}'] == 1
    assert samples["swarmop_ready"] == 0
    assert samples["swarmop_docker_unreachable"] == 1
    assert samples["swarmop_consul_unreachable"] == 0
    assert samples["swarmop_last_resync_timestamp_seconds"] == 2000.5
    assert samples["swarmop_start_time_seconds"] == 1000


def test_the_event_counter_outlives_the_bounded_log() -> None:
    board = board_with_objects()
    for n in range(600):  # more than the event log keeps
        board.record("service", "web", logging.ERROR, f"failure {n}")
    assert len(board.snapshot().events) < 600
    assert board.events_by_level()[EventLevel.ERROR] == 600


def test_no_resync_yet_means_no_resync_sample() -> None:
    board = StatusBoard(OperatorInfo(instance="i1", pid=1, host="h", started=1.0))
    text = render_metrics(board.snapshot(), ready=True, events_by_level={})
    assert "swarmop_last_resync_timestamp_seconds" not in text
    assert parse(text)["swarmop_ready"] == 1


@pytest.mark.anyio
async def test_served_over_http_with_the_prometheus_content_type() -> None:
    board = board_with_objects()
    bound: list[int] = []
    listening = anyio.Event()

    def on_bound(port: int) -> None:
        bound.append(port)
        listening.set()

    async def no_probes() -> dict[str, object]:
        return {}

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve_http, "127.0.0.1", 0, board, no_probes, on_bound)
        await listening.wait()

        def get() -> bytes:
            with socket.create_connection(("127.0.0.1", bound[0]), timeout=10) as sock:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                return data

        response = await anyio.to_thread.run_sync(get)
        tg.cancel_scope.cancel()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"Content-Type: {CONTENT_TYPE}".encode() in head
    assert parse(body.decode())['swarmop_objects{kind="service",outcome="ok"}'] == 1
