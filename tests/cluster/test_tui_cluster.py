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

import swarmop
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.info import BUSYBOX_IMAGE
from swarmop.sandbox.testing import Tracker, unique
from swarmop.settings import Settings, resolve_consul, resolve_docker

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


def one_task_per_node(tracker: Tracker, api: docker.APIClient, name: str, replicas: int) -> str:
    """A replicated sleeper with at most one task per node (Tracker removes it)."""
    task = docker.types.TaskTemplate(
        container_spec=docker.types.ContainerSpec(BUSYBOX_IMAGE, command=["sleep", "3600"]),
        placement=docker.types.Placement(maxreplicas=1),
        restart_policy=docker.types.RestartPolicy(condition="any", delay=1_000_000_000),
    )
    created = api.create_service(
        task, name=name, mode=docker.types.ServiceMode("replicated", replicas=replicas)
    )
    return tracker.service(str(created["ID"]))


def operator_settings(sandbox: SandboxInfo, prefix: str) -> Settings:
    """An operator under the test's own prefix (its keys, status and event log)."""
    return Settings(
        docker=resolve_docker(host=sandbox.manager_docker_host, env={}),
        consul=resolve_consul(addr=sandbox.consul_http_addr, env={}),
        prefix=prefix,
        resync_interval=20.0,
    )


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


async def test_filter_and_an_event_of_a_running_operator_in_the_log(
    sandbox: SandboxInfo, tracker: Tracker, prefix: str
) -> None:
    """The event comes from a real operator: its handler logs, the operator
    publishes its event log under the prefix, and the TUI shows that line."""
    from swarmop.registry import Registry  # noqa: PLC0415
    from swarmop.testing import OperatorRunner  # noqa: PLC0415

    marker = unique("tuimark")
    wanted_name = unique("tui-find")
    registry = Registry()

    @swarmop.on.create("service", labels={"tuitest": marker}, registry=registry, id="greet")
    def greet(name: str, logger: Any, **_: Any) -> None:
        logger.info(f"greeted by the handler ({marker})")

    wanted = tracker.create_service(wanted_name, replicas=0, labels={"tuitest": marker})
    other = tracker.create_service(unique("tui-other"), replicas=0)
    with OperatorRunner(operator_settings(sandbox, prefix), registry=registry):
        app = make_app(sandbox, prefix)
        async with app.run_test(size=SIZE) as pilot:
            await show_row(pilot, app, "services", wanted)
            await eventually(pilot, lambda: other in app.table("services").shown, "both services")
            await pilot.press("slash", *"tui-find", "enter")
            shown = set(app.table("services").shown)
            assert wanted in shown and other not in shown
            await pilot.press("3")
            table = app.table("events")

            def handler_line() -> tuple[str, ...] | None:
                for i in range(table.row_count):
                    row = tuple(cell.plain for cell in table.get_row_at(i))
                    if row[5] == f"greeted by the handler ({marker})":
                        return row
                return None

            row = await eventually(pilot, handler_line, "the operator's event in the log")
            assert row[1] == "operator" and row[2] == "service" and row[4] == wanted_name


async def test_scale_from_the_tui_converges_with_the_operator_running(
    sandbox: SandboxInfo,
    tracker: Tracker,
    docker_api: docker.APIClient,
    prefix: str,
) -> None:
    import swarmop.handlers  # noqa: F401, PLC0415 - registers the built-in handlers

    from swarmop.testing import OperatorRunner  # noqa: PLC0415

    name = unique("tui-converge")
    service_id = tracker.create_service(
        name, replicas=1, labels={"swarmop.replicas": "1"}, command=["sleep", "3600"]
    )
    with OperatorRunner(operator_settings(sandbox, prefix)):
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

    from swarmop.testing import OperatorRunner  # noqa: PLC0415

    node = worker_node(docker_api)
    tracker.node(node["ID"])
    hostname = node["Description"]["Hostname"]
    replicas = 3
    # One task per node at most, on as many nodes as the service has tasks: the
    # worker certainly runs one, and after the drain the others still have room.
    service_id = one_task_per_node(tracker, docker_api, unique("tui-move"), replicas)
    others = {n["ID"] for n in docker_api.nodes() if n["ID"] != node["ID"]}

    def running_by_node() -> dict[str, int]:
        tasks = docker_api.tasks(filters={"service": service_id, "desired-state": "running"})
        counts: dict[str, int] = {}
        for task in tasks:
            if task["Status"]["State"] == "running":
                counts[task["NodeID"]] = counts.get(task["NodeID"], 0) + 1
        return counts

    with OperatorRunner(operator_settings(sandbox, prefix)):
        app = make_app(sandbox, prefix)
        async with app.run_test(size=SIZE) as pilot:
            await eventually(
                pilot,
                lambda: (
                    app.snapshot.services.get(service_id)
                    and app.snapshot.services[service_id].running == replicas
                ),
                f"{replicas} running tasks",
            )
            before = running_by_node()
            assert before.get(node["ID"], 0) >= 1, f"no task on {hostname} to move: {before}"
            await show_row(pilot, app, "nodes", node["ID"])
            await pilot.press("d")
            screen = app.screen
            assert isinstance(screen, ConfirmAvailabilityScreen)
            assert service_id in {t.service_id for t in screen.impact.moving}
            await pilot.press("y")
            await eventually(
                pilot,
                lambda: cell(app, "nodes", node["ID"], "availability") == "drain",
                f"{hostname} drained by the operator",
                limit=90,
            )
            await eventually(
                pilot, lambda: node["ID"] not in running_by_node(), "tasks to leave the node", 90
            )
    # The service still runs elsewhere: every task Swarm could place is running on
    # the other nodes (one per node, so as many as there are other nodes).
    after = running_by_node()
    assert set(after) <= others
    assert sum(after.values()) == min(replicas, len(others)), after
