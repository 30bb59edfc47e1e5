"""JSON log lines (--log-format json) name the object a record is about in a field of
their own; the message stays as it is."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from swarmop.cli.run import _JsonFormatter
from swarmop.reactor.board import ObjectLogger, StatusBoard
from swarmop.status import OperatorInfo


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JsonFormatter())
    swarmop_logger = logging.getLogger("swarmop")
    level = swarmop_logger.level
    swarmop_logger.addHandler(handler)
    swarmop_logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        swarmop_logger.removeHandler(handler)
        swarmop_logger.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_about_an_object_carry_its_name(lines: io.StringIO) -> None:
    board = StatusBoard(OperatorInfo(instance="t", pid=1, host="t", started=0.0, leader=True))
    board.record("service", "web", logging.WARNING, "second crashed; retry 1 in 2s")
    ObjectLogger(board, "node", "worker-1").info("drained")
    board.record("operator", "", logging.INFO, "initial list done; ready")
    found = [(r.get("object"), r["message"]) for r in records(lines)]
    assert found == [
        ("service/web", "[service web] second crashed; retry 1 in 2s"),
        ("node/worker-1", "[node worker-1] drained"),
        (None, "initial list done; ready"),
    ]
