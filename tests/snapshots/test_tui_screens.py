"""Snapshot tests of the main screens, fed from the fixed sample cluster.

Regenerate after an intended change with `pytest tests/snapshots --snapshot-update`
and review the SVGs (pytest writes a diff report when one no longer matches).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from swarmop.tui.app import SwarmopApp
from swarmop.tui.gate import ActionGate, WriteReceipt
from swarmop.tui.model import ClusterSnapshot, NodeRecord, ServiceRecord, build_snapshot
from swarmop.tui.sample import NOW, PREFIX, sample_docker_events, sample_raw, sample_snapshot
from swarmop.tui.screens import ConfirmAvailabilityScreen, ScaleScreen
from swarmop.tui.source import StaticSource

from swarmop import status as status_contract

SIZE = (170, 24)
DIALOG_SIZE = (170, 32)


class ConsulTargets:
    """Says where a value would go; the dialogs are only drawn, never confirmed."""

    def replicas_target(self, service: ServiceRecord) -> str:
        return f"Consul key {PREFIX}/services/{service.name}/replicas"

    def availability_target(self, node: NodeRecord) -> str:
        return f"Consul key {PREFIX}/nodes/{node.hostname}/availability"

    def write_replicas(self, service: ServiceRecord, replicas: int) -> WriteReceipt:
        raise AssertionError("a snapshot test never writes")

    def write_availability(self, node: NodeRecord, availability: str) -> WriteReceipt:
        raise AssertionError("a snapshot test never writes")


def make_app(*, read_only: bool = True) -> SwarmopApp:
    source = StaticSource(sample_snapshot(), sample_docker_events())
    writer = None if read_only else ConsulTargets()
    return SwarmopApp(
        source, ActionGate(writer, read_only=read_only), clock_fn=lambda: NOW, start_polling=False
    )


def select(app: SwarmopApp, view: str, key: str) -> None:
    table = app.table(view)
    table.move_cursor(row=table.get_row_index(key))


async def load(pilot: Any) -> None:
    app = pilot.app
    app.apply_snapshot(sample_snapshot())
    for event in sample_docker_events():
        app.add_docker_event(event)
    await pilot.pause()


SnapCompare = Callable[..., bool]


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("services", ["2"]),
        ("nodes", ["1"]),
        ("events", ["3"]),
        ("operator", ["5"]),
    ],
)
def test_screen(snap_compare: SnapCompare, name: str, keys: list[str]) -> None:
    assert snap_compare(make_app(), press=keys, terminal_size=SIZE, run_before=load), name


def test_tasks_screen(snap_compare: SnapCompare) -> None:
    async def open_tasks(pilot: Any) -> None:
        await load(pilot)
        app = pilot.app
        table = app.table("services")
        api = sample_snapshot().service_by_name("api")
        assert api is not None
        table.move_cursor(row=table.get_row_index(api.id))
        await pilot.press("enter")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=open_tasks)


def test_scale_dialog(snap_compare: SnapCompare) -> None:
    async def open_scale(pilot: Any) -> None:
        await load(pilot)
        app = pilot.app
        web = sample_snapshot().service_by_name("web")
        assert web is not None
        select(app, "services", web.id)
        await pilot.press("s")
        assert isinstance(app.screen, ScaleScreen)
        await pilot.press("4")

    app = make_app(read_only=False)
    assert snap_compare(app, terminal_size=DIALOG_SIZE, run_before=open_scale)


def test_drain_confirmation_warns_about_the_single_writer_db(snap_compare: SnapCompare) -> None:
    async def open_drain(pilot: Any) -> None:
        await load(pilot)
        app = pilot.app
        node = sample_snapshot().node_by_name("node-2")  # runs db (swarmop.role=db)
        assert node is not None
        await pilot.press("1")
        select(app, "nodes", node.id)
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, ConfirmAvailabilityScreen)
        assert any("single-writer database" in w for w in screen.impact.warnings)

    app = make_app(read_only=False)
    assert snap_compare(app, terminal_size=DIALOG_SIZE, run_before=open_drain)


def two_instances() -> ClusterSnapshot:
    """The sample cluster with a leader and a standby under <prefix>/operators/."""
    raw = sample_raw()
    kv = dict(raw["kv"])
    for instance, host, leader in (("op-7f3a", "node-1", True), ("op-91c2", "node-2", False)):
        kv[status_contract.member_key(PREFIX, instance)] = json.dumps(
            {"instance": instance, "host": host, "pid": 4242, "leader": leader, "since": NOW - 600}
        )
    return build_snapshot(
        services=raw["services"],
        nodes=raw["nodes"],
        tasks=raw["tasks"],
        kv=kv,
        prefix=PREFIX,
        synced_at=NOW - 1,
    )


def test_operator_view_with_a_leader_and_a_standby(snap_compare: SnapCompare) -> None:
    async def show_operators(pilot: Any) -> None:
        snapshot = two_instances()
        assert [(m.instance, m.leader) for m in snapshot.instances] == [
            ("op-7f3a", True),
            ("op-91c2", False),
        ]
        pilot.app.apply_snapshot(snapshot)
        await pilot.press("5")

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=show_operators)
