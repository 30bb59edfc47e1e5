"""The Textual app driven by Pilot, fed from plain data (no cluster)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from rich.text import Text
from swarmop.tui.app import SwarmopApp
from swarmop.tui.gate import ActionGate, WriteReceipt
from swarmop.tui.impact import OPERATOR_MISSING
from swarmop.tui.model import ClusterSnapshot, NodeRecord, ServiceRecord, build_snapshot
from swarmop.tui.sample import (
    NOW,
    SAMPLE_PROXY_HASH,
    sample_docker_events,
    sample_raw,
    sample_snapshot,
)
from swarmop.tui.screens import ConfirmAvailabilityScreen, ScaleScreen
from swarmop.tui.source import StaticSource

SIZE = (160, 40)

# anyio (a runtime dependency) brings the pytest plugin that runs these coroutines.
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingWriter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def replicas_target(self, service: ServiceRecord) -> str:
        return f"Consul key swarmop/services/{service.name}/replicas"

    def availability_target(self, node: NodeRecord) -> str:
        return f"Consul key swarmop/nodes/{node.hostname}/availability"

    def write_replicas(self, service: ServiceRecord, replicas: int) -> WriteReceipt:
        self.calls.append(("replicas", service.name, str(replicas)))
        return WriteReceipt(self.replicas_target(service), str(replicas))

    def write_availability(self, node: NodeRecord, availability: str) -> WriteReceipt:
        self.calls.append(("availability", node.hostname, availability))
        return WriteReceipt(self.availability_target(node), availability)


def make_app(
    snapshot: ClusterSnapshot | None = None, *, read_only: bool = False
) -> tuple[SwarmopApp, RecordingWriter]:
    writer = RecordingWriter()
    source = StaticSource(snapshot or sample_snapshot(), sample_docker_events())
    app = SwarmopApp(
        source, ActionGate(writer, read_only=read_only), clock_fn=lambda: NOW, start_polling=False
    )
    return app, writer


def load(app: SwarmopApp, snapshot: ClusterSnapshot | None = None) -> None:
    app.apply_snapshot(snapshot or sample_snapshot())
    for event in sample_docker_events():
        app.add_docker_event(event)


def select(app: SwarmopApp, view: str, key: str) -> None:
    table = app.table(view)
    table.move_cursor(row=table.get_row_index(key))


def service_id(name: str) -> str:
    service = sample_snapshot().service_by_name(name)
    assert service is not None
    return service.id


def node_id(hostname: str) -> str:
    node = sample_snapshot().node_by_name(hostname)
    assert node is not None
    return node.id


def cell(app: SwarmopApp, view: str, key: str, column: str) -> str:
    value = app.table(view).get_cell(key, column)
    return value.plain if isinstance(value, Text) else str(value)


async def test_polling_source_fills_the_services_view() -> None:
    writer = RecordingWriter()
    source = StaticSource(sample_snapshot(), sample_docker_events())
    app = SwarmopApp(source, ActionGate(writer, read_only=False), clock_fn=lambda: NOW)
    async with app.run_test(size=SIZE) as pilot:
        while app.snapshots_applied == 0:
            await pilot.pause(0.05)
        assert app.table("services").row_count == 5
        assert cell(app, "services", service_id("api"), "desired") == "3 (label)"


async def test_scale_from_modal_writes_desired_and_shows_progress_until_converged() -> None:
    app, writer = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        await pilot.press("2")
        select(app, "services", service_id("web"))
        await pilot.press("s")
        assert isinstance(app.screen, ScaleScreen)
        await pilot.press("4", "enter")
        await app.actions_done()
        await pilot.pause()
        assert writer.calls == [("replicas", "web", "4")]
        web_id = service_id("web")
        assert cell(app, "services", web_id, "replicas") == "2/2 -> 4"
        # The operator scales, Swarm converges: progress goes away.
        snap = sample_snapshot()
        converged = dict(snap.services)
        converged[web_id] = replace(snap.services[web_id], spec_replicas=4, running=4)
        app.apply_snapshot(replace(snap, services=converged))
        await pilot.pause()
        assert cell(app, "services", web_id, "replicas") == "4/4"
        assert app.scaling == {}


async def test_scale_command_goes_through_the_gate() -> None:
    app, writer = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        app.run_command(":scale api 3")
        await app.actions_done()
        await pilot.pause()
        app.run_command(":scale api lots")
        await app.actions_done()
        assert writer.calls == [("replicas", "api", "3")]


async def test_drain_asks_with_impact_then_records_desired_availability() -> None:
    app, writer = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        await pilot.press("1")
        select(app, "nodes", node_id("node-2"))
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, ConfirmAvailabilityScreen)
        assert {t.service_name for t in screen.impact.moving} == {"db", "web"}
        assert any("single-writer" in w for w in screen.impact.warnings)
        await pilot.press("y")
        await app.actions_done()
        assert writer.calls == [("availability", "node-2", "drain")]


async def test_cancelled_drain_writes_nothing() -> None:
    app, writer = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        await pilot.press("1")
        select(app, "nodes", node_id("node-2"))
        await pilot.press("d")
        await pilot.press("n")
        await app.actions_done()
        assert writer.calls == []
        assert not isinstance(app.screen, ConfirmAvailabilityScreen)


async def test_read_only_refuses_scale_and_drain() -> None:
    app, writer = make_app(read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        await pilot.press("2")
        select(app, "services", service_id("web"))
        await pilot.press("s")
        assert not isinstance(app.screen, ScaleScreen)
        await pilot.press("1")
        select(app, "nodes", node_id("node-2"))
        for key in ("d", "p", "a"):
            await pilot.press(key)
            assert not isinstance(app.screen, ConfirmAvailabilityScreen)
        app.run_command(":scale web 5")
        app.run_command(":drain node-2")
        await app.actions_done()
        assert writer.calls == []
        assert "READ-ONLY" in app.status_text().plain


async def test_filter_keeps_matching_rows_only_and_escape_clears() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        await pilot.press("2", "slash", "w", "e", "b", "enter")
        assert set(app.table("services").shown) == {service_id("web")}
        await pilot.press("escape")
        assert app.table("services").row_count == 5


async def test_event_log_has_docker_and_operator_events_newest_first_and_filters() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        await pilot.press("3")
        table = app.table("events")
        origins = [table.get_row_at(i)[1].plain for i in range(table.row_count)]
        times = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert "operator" in origins and "docker" in origins
        assert times == sorted(times, reverse=True)
        app.set_filter("origin:operator obj:api")
        await pilot.pause()
        assert table.row_count == 1
        assert table.get_row_at(0)[5].plain == "scaling api from 1 to 3 (label)"


async def test_rows_are_updated_in_place() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        table = app.table("services")
        api_id = service_id("api")
        select(app, "services", api_id)
        before_keys = [str(k.value) for k in table.rows]
        snap = sample_snapshot()
        services = dict(snap.services)
        services[api_id] = replace(snap.services[api_id], spec_replicas=3)
        app.apply_snapshot(replace(snap, services=services))
        await pilot.pause()
        assert [str(k.value) for k in table.rows] == before_keys
        assert cell(app, "services", api_id, "replicas") == "1/3"
        assert table.current_key() == api_id  # the cursor stays on its row


async def test_tasks_drill_down_and_back() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        await pilot.press("2")
        select(app, "services", service_id("api"))
        await pilot.press("enter")
        assert app.view == "tasks"
        assert app.table("tasks").row_count == 2
        states = {cell(app, "tasks", key, "state") for key in app.table("tasks").shown}
        assert states == {"running", "failed"}
        await pilot.press("escape")
        assert app.view == "services"


async def test_sorting_by_column() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        table = app.table("services")
        names = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert names == sorted(names)
        await pilot.press("r")
        names = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert names == sorted(names, reverse=True)


async def test_connection_errors_and_missing_consul_are_shown() -> None:
    snap = replace(sample_snapshot(consul=False), docker_error="connection refused")
    app, _ = make_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        load(app, snap)
        await pilot.pause()
        status = app.status_text().plain
        assert "docker: connection refused (retrying)" in status
        assert "consul: not configured" in status
        assert "operator: unknown" in status
        await pilot.press("5")
        assert "cannot be read" in app.operator_text().plain


async def test_operator_absent_is_said_and_proxy_view_renders() -> None:
    snap = replace(sample_snapshot(), operator=None)
    app, _ = make_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        load(app, snap)
        assert "operator: not running" in app.status_text().plain
        await pilot.press("4")
        view = app.proxy_text().plain
        assert "server_name test.local" in view
        assert f"published config: {SAMPLE_PROXY_HASH[:12]}" in view
        assert (
            f"agent node-2-1: ok, serves {SAMPLE_PROXY_HASH[:12]} (the published config), "
            "reported 2026-12-01T07:00:05Z"
        ) in view
        assert "last reload: ok at 2026-12-01T07:00:05Z" in view
        assert "last change: 2026-12-01T07:00:05Z: added test.local" in view
        assert '{"state"' not in view  # parsed, not printed raw


async def test_proxy_view_shows_a_refused_config_and_what_the_agent_serves() -> None:
    raw = sample_raw()
    kv = dict(raw["kv"])
    kv["swarmop/proxy/proxy/status/node-3-1"] = json.dumps(
        {
            "state": "error",
            "hash": "f" * 64,
            "live_hash": "e" * 64,
            "time": "2026-12-01T07:02:00Z",
            "agent": "node-3-1",
            "reload": "ok",
            "reload_time": "2026-12-01T06:50:00Z",
            "changed_time": "2026-12-01T06:50:00Z",
            "added": [],
            "removed": ["old.local"],
            "changed": ["test.local", "api.local"],
            "message": 'nginx: [emerg] unknown directive "bogus" in /x/swarmop.conf:9\n',
        }
    )
    kv["swarmop/proxy/proxy/status/garbled"] = "not json"
    snap = build_snapshot(
        services=raw["services"], nodes=raw["nodes"], tasks=raw["tasks"], kv=kv, prefix="swarmop"
    )
    app, _ = make_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        load(app, snap)
        await pilot.press("4")
        view = app.proxy_text().plain
    assert f"agent node-3-1: error, serves {'e' * 12} (published: {SAMPLE_PROXY_HASH[:12]})" in view
    assert f'refused {"f" * 12}: nginx: [emerg] unknown directive "bogus"' in view
    assert (
        "last change: 2026-12-01T06:50:00Z: removed old.local; changed test.local, api.local"
        in (view)
    )
    assert "agent garbled: error, serves nothing yet" in view
    assert "unreadable status" in view
    # Agents in name order, each once.
    assert view.index("agent garbled") < view.index("agent node-2-1") < view.index("agent node-3-1")


async def test_help_and_unknown_command() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        load(app)
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("colon", "n", "o", "enter")
        assert app.view == "nodes"


async def test_operator_stale_after_decides_not_seen_recently_and_the_drain_warning() -> None:
    operator = sample_snapshot().operator
    assert operator is not None and operator.last_resync is not None
    minute_later = operator.last_resync + 60

    def app_with(stale_after: float) -> SwarmopApp:
        return SwarmopApp(
            StaticSource(sample_snapshot()),
            ActionGate(RecordingWriter(), read_only=False),
            clock_fn=lambda: minute_later,
            start_polling=False,
            operator_stale_after=stale_after,
        )

    for stale_after, seen in ((180.0, True), (30.0, False)):
        app = app_with(stale_after)
        async with app.run_test(size=SIZE) as pilot:
            load(app)
            status = app.status_text().plain
            assert (f"operator: {operator.instance} not seen recently" in status) is not seen
            await pilot.press("1")
            select(app, "nodes", node_id("node-2"))
            await pilot.press("d")
            assert isinstance(app.screen, ConfirmAvailabilityScreen)
            assert (OPERATOR_MISSING in app.screen.impact.warnings) is not seen
