"""The TUI against the real sandbox swarm and Consul, driven by Pilot.

Each test uses a Consul prefix of its own, so desired state it records is
invisible to any operator watching the default prefix and is removed after.
Convergence after a scale needs a running operator; these tests check what
the TUI itself is responsible for: the desired value lands in the winning
source, Swarm's own spec is left alone, and read-only mode writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import consul
import docker
import pytest
from rich.text import Text
from swarmop.tui.app import SwarmopApp
from swarmop.tui.connection import resolve_connection
from swarmop.tui.launch import build_app
from swarmop.tui.screens import ConfirmAvailabilityScreen, ScaleScreen

from swarmop import status as status_contract
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique

pytestmark = [pytest.mark.cluster, pytest.mark.anyio]
SIZE = (170, 40)
T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def prefix(tracker: Tracker) -> str:
    return tracker.consul_prefix(unique("tuitest"))


def make_app(
    sandbox: SandboxInfo, prefix: str, *, with_consul: bool = True, read_only: bool = False
) -> SwarmopApp:
    connection = resolve_connection(
        docker_host=sandbox.manager_docker_host,
        consul_addr=sandbox.consul_http_addr if with_consul else None,
        prefix=prefix,
        read_only=read_only,
        environ={},
    )
    return build_app(connection, interval=0.5)


async def eventually(pilot: Any, predicate: Callable[[], T], what: str, limit: float = 60) -> T:
    deadline = time.monotonic() + limit
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as error:  # not there yet
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last observed: {last!r}")
        await pilot.pause(0.2)


def cell(app: SwarmopApp, view: str, key: str, column: str) -> str:
    value = app.table(view).get_cell(key, column)
    return value.plain if isinstance(value, Text) else str(value)


def consul_value(kv: consul.Consul, key: str) -> str | None:
    _, item = kv.kv.get(key)
    return None if item is None or item["Value"] is None else str(item["Value"].decode())


def worker_node(api: docker.APIClient) -> dict[str, Any]:
    workers = [n for n in api.nodes() if n["Spec"]["Role"] == "worker"]
    return sorted(workers, key=lambda n: n["Description"]["Hostname"])[-1]


async def show_row(pilot: Any, app: SwarmopApp, view: str, key: str) -> None:
    await pilot.press({"nodes": "1", "services": "2"}[view])
    await eventually(pilot, lambda: key in app.table(view).shown, f"{key} in the {view} view")
    table = app.table(view)
    table.move_cursor(row=table.get_row_index(key))


async def test_scale_writes_the_consul_key_and_leaves_swarm_spec_alone(
    sandbox: SandboxInfo,
    tracker: Tracker,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    prefix: str,
) -> None:
    name = unique("tui-scale")
    service_id = tracker.create_service(name, replicas=1)
    app = make_app(sandbox, prefix)
    async with app.run_test(size=SIZE) as pilot:
        await show_row(pilot, app, "services", service_id)
        await pilot.press("s")
        assert isinstance(app.screen, ScaleScreen)
        assert f"{prefix}/services/{name}/replicas" in app.screen.target
        await pilot.press("3", "enter")
        key = f"{prefix}/services/{name}/replicas"
        await eventually(pilot, lambda: consul_value(consul_client, key) == "3", "the Consul key")
        # The TUI shows the new desired value with its source, and progress.
        await eventually(
            pilot,
            lambda: cell(app, "services", service_id, "desired") == "3 (consul)",
            "desired 3 (consul) in the row",
        )
        assert "-> 3" in cell(app, "services", service_id, "replicas")
    spec = docker_api.inspect_service(service_id)["Spec"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 1  # only the operator scales


async def test_scale_without_consul_writes_the_label(
    sandbox: SandboxInfo, tracker: Tracker, docker_api: docker.APIClient, prefix: str
) -> None:
    name = unique("tui-label")
    service_id = tracker.create_service(name, replicas=1, labels={"keep": "me"})
    app = make_app(sandbox, prefix, with_consul=False)
    async with app.run_test(size=SIZE) as pilot:
        await show_row(pilot, app, "services", service_id)
        await pilot.press("s", "2", "enter")

        def labels() -> dict[str, str]:
            return dict(docker_api.inspect_service(service_id)["Spec"].get("Labels") or {})

        await eventually(
            pilot, lambda: labels().get("swarmop.replicas") == "2", "the swarmop.replicas label"
        )
        await eventually(
            pilot,
            lambda: cell(app, "services", service_id, "desired") == "2 (label)",
            "desired 2 (label) in the row",
        )
        assert "consul: not configured" in app.status_text().plain
    spec = docker_api.inspect_service(service_id)["Spec"]
    assert labels()["keep"] == "me"
    assert spec["Mode"]["Replicated"]["Replicas"] == 1


async def test_drain_records_desired_availability_in_consul(
    sandbox: SandboxInfo,
    tracker: Tracker,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    prefix: str,
) -> None:
    node = worker_node(docker_api)
    tracker.node(node["ID"])
    hostname = node["Description"]["Hostname"]
    service_id = tracker.create_service(
        unique("tui-drain"), replicas=1, constraints=[f"node.hostname=={hostname}"]
    )
    app = make_app(sandbox, prefix)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await eventually(
            pilot,
            lambda: (
                app.snapshot.services.get(service_id)
                and app.snapshot.services[service_id].running == 1
            ),
            "the pinned task to run",
        )
        await show_row(pilot, app, "nodes", node["ID"])
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, ConfirmAvailabilityScreen)
        assert service_id in {t.service_id for t in screen.impact.moving}
        assert any("operator not running" in w for w in screen.impact.warnings)
        await pilot.press("y")
        key = f"{prefix}/nodes/{hostname}/availability"
        await eventually(pilot, lambda: consul_value(consul_client, key) == "drain", key)
        await eventually(
            pilot,
            lambda: cell(app, "nodes", node["ID"], "desired") == "drain (consul)",
            "desired drain (consul) in the node row",
        )
    # Nothing but the desired state changed: no operator runs under this prefix.
    assert docker_api.inspect_node(node["ID"])["Spec"]["Availability"] == "active"


async def test_read_only_refuses_scale_and_drain(
    sandbox: SandboxInfo,
    tracker: Tracker,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    prefix: str,
) -> None:
    name = unique("tui-ro")
    service_id = tracker.create_service(name, replicas=1)
    node = worker_node(docker_api)
    tracker.node(node["ID"])
    app = make_app(sandbox, prefix, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await show_row(pilot, app, "services", service_id)
        await pilot.press("s")
        assert not isinstance(app.screen, ScaleScreen)
        app.run_command(f":scale {name} 4")
        await show_row(pilot, app, "nodes", node["ID"])
        await pilot.press("d")
        assert not isinstance(app.screen, ConfirmAvailabilityScreen)
        app.run_command(f":drain {node['Description']['Hostname']}")
        await app.actions_done()
        assert "READ-ONLY" in app.status_text().plain
    _, keys = consul_client.kv.get(f"{prefix}/", recurse=True)
    assert keys is None
    assert "swarmop.replicas" not in (docker_api.inspect_service(service_id)["Spec"]["Labels"])
    assert "swarmop.availability" not in (docker_api.inspect_node(node["ID"])["Spec"]["Labels"])


async def test_filter_and_operator_event_in_the_log(
    sandbox: SandboxInfo, tracker: Tracker, consul_client: consul.Consul, prefix: str
) -> None:
    wanted = tracker.create_service(unique("tui-find"), replicas=0)
    other = tracker.create_service(unique("tui-other"), replicas=0)
    event = status_contract.OperatorEvent(
        time=time.time(),
        kind="service",
        object="tui-find",
        level=status_contract.EventLevel.INFO,
        message="published by the test",
    )
    consul_client.kv.put(status_contract.events_key(prefix), status_contract.encode_events([event]))
    app = make_app(sandbox, prefix)
    async with app.run_test(size=SIZE) as pilot:
        await show_row(pilot, app, "services", wanted)
        await eventually(pilot, lambda: other in app.table("services").shown, "both services")
        await pilot.press("slash", *"tui-find", "enter")
        shown = set(app.table("services").shown)
        assert wanted in shown and other not in shown
        await pilot.press("3")
        table = app.table("events")
        await eventually(
            pilot,
            lambda: any(
                table.get_row_at(i)[5].plain == "published by the test"
                for i in range(table.row_count)
            ),
            "the operator event in the log",
        )


async def test_scale_from_the_tui_converges_with_the_operator_running(
    sandbox: SandboxInfo,
    tracker: Tracker,
    docker_api: docker.APIClient,
    prefix: str,
) -> None:
    import swarmop.handlers  # noqa: F401, PLC0415 - registers the built-in handlers

    from swarmop.settings import Settings, resolve_consul, resolve_docker  # noqa: PLC0415
    from swarmop.testing import OperatorRunner  # noqa: PLC0415

    name = unique("tui-converge")
    service_id = tracker.create_service(
        name, replicas=1, labels={"swarmop.replicas": "1"}, command=["sleep", "3600"]
    )
    settings = Settings(
        docker=resolve_docker(host=sandbox.manager_docker_host, env={}),
        consul=resolve_consul(addr=sandbox.consul_http_addr, env={}),
        prefix=prefix,
        resync_interval=20.0,
    )
    with OperatorRunner(settings):
        app = make_app(sandbox, prefix)
        async with app.run_test(size=SIZE) as pilot:
            await show_row(pilot, app, "services", service_id)
            await pilot.press("s", "2", "enter")
            await eventually(
                pilot,
                lambda: cell(app, "services", service_id, "replicas") == "2/2",
                "the service to converge at 2/2 in the row",
                limit=90,
            )
            assert cell(app, "services", service_id, "desired") == "2 (consul)"
            assert service_id not in app.scaling
    spec = docker_api.inspect_service(service_id)["Spec"]
    assert spec["Mode"]["Replicated"]["Replicas"] == 2


async def test_drain_from_the_tui_moves_tasks_with_the_operator_running(
    sandbox: SandboxInfo,
    tracker: Tracker,
    docker_api: docker.APIClient,
    prefix: str,
) -> None:
    import swarmop.handlers  # noqa: F401, PLC0415 - registers the built-in handlers

    from swarmop.settings import Settings, resolve_consul, resolve_docker  # noqa: PLC0415
    from swarmop.testing import OperatorRunner  # noqa: PLC0415

    node = worker_node(docker_api)
    tracker.node(node["ID"])
    hostname = node["Description"]["Hostname"]
    service_id = tracker.create_service(unique("tui-move"), replicas=3, command=["sleep", "3600"])
    settings = Settings(
        docker=resolve_docker(host=sandbox.manager_docker_host, env={}),
        consul=resolve_consul(addr=sandbox.consul_http_addr, env={}),
        prefix=prefix,
        resync_interval=20.0,
    )

    def tasks_on_node() -> int:
        tasks = docker_api.tasks(filters={"service": service_id, "desired-state": "running"})
        return sum(1 for t in tasks if t.get("NodeID") == node["ID"])

    with OperatorRunner(settings):
        app = make_app(sandbox, prefix)
        async with app.run_test(size=SIZE) as pilot:
            await eventually(
                pilot,
                lambda: (
                    app.snapshot.services.get(service_id)
                    and app.snapshot.services[service_id].running == 3
                ),
                "3 running tasks",
            )
            await show_row(pilot, app, "nodes", node["ID"])
            await pilot.press("d", "y")
            await eventually(
                pilot,
                lambda: cell(app, "nodes", node["ID"], "availability") == "drain",
                f"{hostname} drained by the operator",
                limit=90,
            )
            await eventually(pilot, lambda: tasks_on_node() == 0, "tasks to leave the node", 90)
