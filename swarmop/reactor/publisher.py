"""Copies the status board to Consul: changed object statuses, the event log, operator info."""

from __future__ import annotations

import logging

import anyio
import anyio.to_thread

from swarmop.clients.consul import ConsulKV
from swarmop.ha.gate import NotLeaderError
from swarmop.reactor.board import StatusBoard
from swarmop.status import encode, encode_events, events_key, operator_key, status_key

logger = logging.getLogger("swarmop.publisher")

PUBLISH_INTERVAL = 0.25


def publish_once(board: StatusBoard, kv: ConsulKV, prefix: str) -> None:
    statuses, removed, events, info = board.take_changes()
    try:
        for status in statuses:
            kv.put(status_key(prefix, status.kind, status.name), encode(status))
        for kind, name in removed:
            kv.delete(status_key(prefix, kind, name))
        if events is not None:
            kv.put(events_key(prefix), encode_events(events))
        if info is not None:
            kv.put(operator_key(prefix), encode(info))
    except Exception:
        board.restore_changes(statuses, removed)
        raise


async def run_publisher(board: StatusBoard, kv: ConsulKV, prefix: str) -> None:
    failures = 0
    while True:
        await anyio.to_thread.run_sync(board.changed.wait, 1.0, abandon_on_cancel=True)
        if not board.changed.is_set():
            continue
        try:
            await anyio.to_thread.run_sync(publish_once, board, kv, prefix)
            failures = 0
        except NotLeaderError:
            # Demoted between two publishes: while_leading cancels this loop next.
            await anyio.sleep(PUBLISH_INTERVAL)
            continue
        except Exception as error:
            failures += 1
            if failures == 1:
                logger.warning("publishing status to Consul failed: %s", error)
            await anyio.sleep(min(30.0, 0.5 * 2**failures))
            continue
        # Coalesce bursts: at most a few writes per second.
        await anyio.sleep(PUBLISH_INTERVAL)
