"""Passes over objects, timers and daemons, driven against an in-memory Docker."""

from __future__ import annotations

import copy
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest

import swarmop
from swarmop.ha.gate import NotLeaderError
from swarmop.reactor import processing
from swarmop.reactor.board import StatusBoard
from swarmop.reactor.context import Cluster, Context
from swarmop.reactor.invocation import invoke
from swarmop.reactor.processing import process
from swarmop.reactor.spawner import Spawner, StopFlag
from swarmop.reactor.store import MemoryStateStore
from swarmop.registry import Registry
from swarmop.settings import Settings
from swarmop.status import OperatorInfo, Outcome

HANG_GUARD = 30.0  # seconds: only ends a test that would otherwise never finish


class MemoryDocker:
    """Services and nodes looked up the way the Docker daemon does: by full ID, then
    by name (a node's is its hostname), then by a unique ID prefix."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}

    def add_service(self, service_id: str, name: str, **labels: str) -> dict[str, Any]:
        attrs = {
            "ID": service_id,
            "Version": {"Index": 1},
            "Spec": {"Name": name, "Labels": dict(labels)},
        }
        self.services[service_id] = attrs
        return attrs

    def set_labels(self, service_id: str, **labels: str) -> dict[str, Any]:
        self.services[service_id]["Spec"]["Labels"] = dict(labels)
        return self.inspect_service(service_id) or {}

    def add_node(self, node_id: str, hostname: str) -> None:
        self.nodes[node_id] = {
            "ID": node_id,
            "Version": {"Index": 1},
            "Spec": {"Labels": {}, "Role": "worker", "Availability": "active"},
            "Description": {"Hostname": hostname},
        }

    @staticmethod
    def _lookup(
        objects: dict[str, dict[str, Any]], wanted: str, name: Callable[[dict[str, Any]], str]
    ) -> dict[str, Any] | None:
        if wanted in objects:
            return copy.deepcopy(objects[wanted])
        for attrs in objects.values():
            if name(attrs) == wanted:
                return copy.deepcopy(attrs)
        by_prefix = [attrs for object_id, attrs in objects.items() if object_id.startswith(wanted)]
        return copy.deepcopy(by_prefix[0]) if len(by_prefix) == 1 else None

    def inspect_service(self, name_or_id: str) -> dict[str, Any] | None:
        return self._lookup(self.services, name_or_id, lambda attrs: attrs["Spec"]["Name"])

    def inspect_node(self, name_or_id: str) -> dict[str, Any] | None:
        return self._lookup(self.nodes, name_or_id, lambda attrs: attrs["Description"]["Hostname"])

    def list_tasks(self, service_id: str) -> list[dict[str, Any]]:
        return []


def make_context(registry: Registry, docker: MemoryDocker, *, max_workers: int = 8) -> Context:
    info = OperatorInfo(instance="test", pid=1, host="test", started=0.0, leader=True)
    return Context(
        settings=Settings(max_workers=max_workers),
        registry=registry,
        api=None,
        reader=docker,  # type: ignore[arg-type]
        kv=None,
        store=MemoryStateStore(),
        board=StatusBoard(info),
    )


def with_spawner(ctx: Context, body: Callable[[Spawner], Awaitable[None]]) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as group:
            spawner = Spawner(ctx, group)
            try:
                await body(spawner)
            finally:
                spawner.stop_all()

    anyio.run(main)


class Counter:
    """A count that handler threads raise and a test can wait for."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.value = 0

    def add(self) -> None:
        with self.changed:
            self.value += 1
            self.changed.notify_all()

    def __int__(self) -> int:
        with self.changed:
            return self.value

    async def reaches(self, wanted: int) -> bool:
        """Whether the count reaches `wanted` (False only if it never does)."""

        def wait() -> bool:
            with self.changed:
                return self.changed.wait_for(lambda: self.value >= wanted, HANG_GUARD)

        return await anyio.to_thread.run_sync(wait)


# --- daemons ------------------------------------------------------------


def test_sync_daemons_leave_the_handler_slots_to_change_handlers() -> None:
    slots = 2
    registry = Registry()
    running = Counter()

    def keep_running(stopped: StopFlag, **_: Any) -> None:
        running.add()
        while not stopped.wait(0.01):
            pass

    for number in range(slots + 1):
        swarmop.daemon("service", id=f"daemon-{number}", registry=registry)(keep_running)
    docker = MemoryDocker()
    attrs = docker.add_service("svc1", "web")
    ctx = make_context(registry, docker, max_workers=slots)

    async def body(spawner: Spawner) -> None:
        spawner.sync(("service", "web"), attrs)
        assert await running.reaches(slots)
        assert ctx.handler_limiter.borrowed_tokens == 0
        assert await running.reaches(slots + 1)
        result = await invoke(lambda: "change handler ran", {}, ctx.handler_limiter)
        assert result == "change handler ran"

    with_spawner(ctx, body)


def test_a_daemon_follows_its_when_filter() -> None:
    registry = Registry()
    starts = Counter()
    flags: list[StopFlag] = []

    def watch(stopped: StopFlag, **_: Any) -> None:
        flags.append(stopped)
        starts.add()
        while not stopped.wait(0.01):
            pass

    swarmop.daemon(
        "service", registry=registry, when=lambda labels, **_: labels.get("watch") == "yes"
    )(watch)
    docker = MemoryDocker()
    key = ("service", "web")
    ctx = make_context(registry, docker)

    async def body(spawner: Spawner) -> None:
        spawner.sync(key, docker.add_service("svc1", "web", watch="no"))
        spawner.sync(key, docker.set_labels("svc1", watch="yes"))
        assert await starts.reaches(1)
        assert not flags[0].is_set()

        spawner.sync(key, docker.set_labels("svc1", watch="no"))
        assert flags[0].is_set()

        spawner.sync(key, docker.set_labels("svc1", watch="yes"))
        assert await starts.reaches(2)
        assert not flags[1].is_set()

    with_spawner(ctx, body)
    assert int(starts) == 2


def test_a_failing_when_filter_keeps_the_daemon_stopped_and_says_why() -> None:
    registry = Registry()
    starts = Counter()

    def broken(**_: Any) -> bool:
        raise KeyError("replicas")

    swarmop.daemon("service", registry=registry, id="watch", when=broken)(lambda **_: starts.add())
    docker = MemoryDocker()
    ctx = make_context(registry, docker)

    async def body(spawner: Spawner) -> None:
        spawner.sync(("service", "web"), docker.add_service("svc1", "web"))

    with_spawner(ctx, body)
    assert int(starts) == 0
    messages = [event.message for event in ctx.board.snapshot().events]
    assert any("when= filter of watch failed" in text for text in messages)


# --- looking objects up by name ----------------------------------------


def test_a_deleted_services_name_that_finds_another_by_id_prefix_means_deleted() -> None:
    registry = Registry()
    created: list[tuple[str, str]] = []
    deleted: list[str] = []

    @swarmop.on.create("service", registry=registry)
    def on_create(name: str, id: str, **_: Any) -> None:
        created.append((name, id))

    @swarmop.on.delete("service", registry=registry)
    def on_delete(name: str, **_: Any) -> None:
        deleted.append(name)

    docker = MemoryDocker()
    docker.add_service("x7q2", "abc")
    docker.add_service("abc9f3k1", "web")  # its ID starts with the other's name
    ctx = make_context(registry, docker)
    key = ("service", "abc")

    anyio.run(process, ctx, key, [])
    assert created == [("abc", "x7q2")]

    del docker.services["x7q2"]
    assert docker.inspect_service("abc") is not None  # what Docker answers now
    anyio.run(process, ctx, key, [])
    assert deleted == ["abc"]
    assert created == [("abc", "x7q2")]
    assert ctx.board.get(key) is None


def test_cluster_lookups_return_only_the_object_named() -> None:
    docker = MemoryDocker()
    docker.add_service("abc9f3k1", "web")
    docker.add_node("n0d3id", "manager-1")
    cluster = Cluster(make_context(Registry(), docker))

    assert cluster.service("abc") is None
    found = cluster.service("web")
    assert found is not None and found.id == "abc9f3k1"

    assert cluster.node("n0d") is None
    by_hostname = cluster.node("manager-1")
    by_id = cluster.node("n0d3id")
    assert by_hostname is not None and by_hostname.id == "n0d3id"
    assert by_id is not None and by_id.hostname == "manager-1"


# --- TemporaryError against retries= and timeout= ------------------------


def failing_service(error: Exception | None = None, **decorator: Any) -> tuple[Context, Counter]:
    registry = Registry()
    attempts = Counter()

    @swarmop.on.create("service", registry=registry, id="converge", **decorator)
    def converge(**_: Any) -> None:
        attempts.add()
        raise error or swarmop.TemporaryError("not converged yet", delay=0)

    docker = MemoryDocker()
    docker.add_service("svc1", "web")
    return make_context(registry, docker), attempts


def test_temporary_errors_use_up_retries() -> None:
    ctx, attempts = failing_service(retries=2)
    key = ("service", "web")
    for _ in range(3):
        anyio.run(process, ctx, key, [])
        status = ctx.board.get(key)
        assert status is not None
        if int(attempts) < 3:
            assert status.outcome is Outcome.PENDING

    assert status.outcome is Outcome.ERROR
    assert status.message == "retries exhausted: not converged yet"
    anyio.run(process, ctx, key, [])
    assert int(attempts) == 3  # given up: not called again for this change


def test_temporary_errors_stop_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(processing, "time", types.SimpleNamespace(time=lambda: now[0]))
    ctx, attempts = failing_service(timeout=10)
    key = ("service", "web")

    for clock, outcome in ((1000.0, Outcome.PENDING), (1009.0, Outcome.PENDING)):
        now[0] = clock
        anyio.run(process, ctx, key, [])
        status = ctx.board.get(key)
        assert status is not None and status.outcome is outcome

    now[0] = 1011.0
    anyio.run(process, ctx, key, [])
    status = ctx.board.get(key)
    assert status is not None and status.outcome is Outcome.ERROR
    assert status.message == "timed out: not converged yet"
    assert int(attempts) == 3


def test_a_write_refused_for_lost_leadership_uses_up_no_retries() -> None:
    refused = NotLeaderError()
    refused.delay = 0
    ctx, attempts = failing_service(refused, retries=0)
    key = ("service", "web")
    for _ in range(3):
        anyio.run(process, ctx, key, [])
    status = ctx.board.get(key)
    assert status is not None and status.outcome is Outcome.PENDING, status
    assert status.retries == 0
    assert int(attempts) == 3


def test_no_handler_starts_once_shutdown_has_begun() -> None:
    ctx, attempts = failing_service()
    key = ("service", "web")
    anyio.run(process, ctx, key, [])
    assert int(attempts) == 1
    ctx.stopping = True
    anyio.run(process, ctx, key, [])  # the retry is due, but the operator is stopping
    assert int(attempts) == 1
    stored = ctx.store.load(key)
    assert stored is not None and stored.cycle is not None
    assert not stored.cycle.handlers["converge"].done  # kept for the next run to resume
    ctx.stopping = False
    anyio.run(process, ctx, key, [])
    assert int(attempts) == 2
