"""Wiring: a connection becomes a source, a gate with its writer, and the app."""

from __future__ import annotations

from swarmop.tui.app import SwarmopApp
from swarmop.tui.connection import Connection, consul_client, docker_client
from swarmop.tui.gate import ActionGate, DesiredWriter
from swarmop.tui.model import OPERATOR_STALE_AFTER
from swarmop.tui.source import ClusterSource
from swarmop.tui.writer import ConsulWriter, LabelWriter


def build_writer(connection: Connection) -> DesiredWriter:
    if connection.consul is not None:
        return ConsulWriter(consul_client(connection), connection.prefix)
    return LabelWriter(docker_client(connection))


def build_app(
    connection: Connection,
    *,
    interval: float = 2.0,
    operator_stale_after: float = OPERATOR_STALE_AFTER,
) -> SwarmopApp:
    writer = None if connection.read_only else build_writer(connection)
    return SwarmopApp(
        ClusterSource(connection),
        ActionGate(writer, read_only=connection.read_only),
        interval=interval,
        prefix=connection.prefix,
        operator_stale_after=operator_stale_after,
    )
