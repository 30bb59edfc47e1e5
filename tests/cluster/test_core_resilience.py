"""Faults and load against the real sandbox: bursts, concurrent writers, a dropped event
stream, restarted dockerd and Consul, the HTTP endpoint, and --state-dir without Consul."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import http.client
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import consul
import docker
import pytest
from core_state import stored_state

import swarmop
from swarmop.clients.swarm_write import update_service
from swarmop.registry import Registry
from swarmop.sandbox import Sandbox, SandboxInfo
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.status import Outcome, decode_events, operator_key, status_key
from swarmop.testing import OperatorRunner

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def make_settings(
    sandbox: SandboxInfo, prefix: str, *, with_consul: bool = True, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "docker": resolve_docker(host=sandbox.manager_docker_host, env={}),
        "consul": resolve_consul(addr=sandbox.consul_http_addr, env={}) if with_consul else None,
        "prefix": prefix,
        "resync_interval": 600.0,  # so only events and reconnect relists drive these tests
    }
    values.update(extra)
    return Settings(**values)


def call(runner: OperatorRunner, fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn` on the operator's event loop."""
    assert runner._portal is not None
    return runner._portal.call(fn, *args)


def set_label(api: docker.APIClient, service_id: str, name: str, value: str) -> None:
    update_service(api, service_id, lambda spec: spec["Labels"].__setitem__(name, value))


class InFlight:
    """Handler calls per object, the most that ever ran at once for one object, and
    the values each call saw, in call order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.seen: dict[str, str] = {}
        self.values: dict[str, list[str]] = {}

    def enter(self, name: str) -> None:
        with self.lock:
            self.now[name] = self.now.get(name, 0) + 1
            self.most[name] = max(self.most.get(name, 0), self.now[name])
            self.calls[name] = self.calls.get(name, 0) + 1

    def leave(self, name: str, value: str) -> None:
        with self.lock:
            self.now[name] -= 1
            self.seen[name] = value
            self.values.setdefault(name, []).append(value)


def test_burst_of_updates_coalesces(
    *, sandbox: SandboxInfo, docker_api: docker.APIClient, tracker: Tracker, prefix: str
) -> None:
    """R2: >1000 service updates while the handler sleeps 200 ms per call."""
    marker = unique("m")
    registry = Registry()
    flight = InFlight()

    @swarmop.on.update("service", labels={"test": marker}, registry=registry, id="slow")
    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="slow-c")
    def slow(name: str, labels: dict[str, str], **_: Any) -> None:
        flight.enter(name)
        time.sleep(0.2)
        flight.leave(name, labels.get("n", ""))

    names = [unique("burst") for _ in range(8)]
    ids = [
        tracker.create_service(n, command=SLEEPER, replicas=0, labels={"test": marker})
        for n in names
    ]
    per_service = 130  # 8 x 130 = 1040 updates
    depths: list[tuple[int, int]] = []
    with OperatorRunner(make_settings(sandbox, prefix), registry=registry) as runner:
        queue = runner.operator.queue  # type: ignore[union-attr]
        assert queue is not None
        wait_until(lambda: len(flight.calls) == len(names), what="every service created")

        def hammer(service_id: str) -> None:
            for value in range(1, per_service + 1):
                set_label(docker_api, service_id, "n", str(value))

        with concurrent.futures.ThreadPoolExecutor(len(ids)) as pool:
            futures = [pool.submit(hammer, service_id) for service_id in ids]
            while not all(f.done() for f in futures):
                depths.append(call(runner, queue.depth))
                time.sleep(0.05)
            for future in futures:
                future.result()
        final = str(per_service)
        wait_until(
            lambda: all(flight.seen.get(n) == final for n in names),
            timeout=120,
            what="every service handled at its last value",
        )

        def stored_final(name: str) -> bool:
            # The handler returns before the operator stores the closed cycle.
            state = stored_state(sandbox, prefix, "service", name)
            return (
                state is not None
                and state.cycle is None
                and state.last is not None
                and state.last["spec"]["Labels"]["n"] == final
            )

        for name in names:
            wait_until(
                lambda name=name: stored_final(name),
                timeout=30,
                what=f"{name}: the closed cycle and the last value stored",
            )
            status = runner.board.get(("service", name))
            assert status is not None and status.outcome is Outcome.OK, status
        # Idle again: every worker ended and gave up its slot and hints.
        wait_until(lambda: call(runner, queue.depth) == (0, 0), what="an empty queue")
        assert runner.exception is None
    assert max(flight.most.values()) == 1, flight.most
    # In order: no call saw an older value than the call before it.
    for name, values in flight.values.items():
        numbers = [int(value or 0) for value in values]
        assert numbers == sorted(numbers), (name, numbers)
    # Coalesced: far fewer handler calls than updates.
    assert sum(flight.calls.values()) < len(names) * per_service / 2, flight.calls
    objects, _hints = max(depths)
    assert objects <= len(names) + 3 + 10  # our services, the nodes, a few others at most


def test_concurrent_writer_between_read_and_write_survives(
    *, sandbox: SandboxInfo, docker_api: docker.APIClient, tracker: Tracker, prefix: str
) -> None:
    """R7: another client changes env and image between the patch's read and write."""
    marker = unique("m")
    registry = Registry()
    other_writes = {"count": 0}
    service_id = tracker.create_service(
        command=SLEEPER, replicas=0, labels={"test": marker}, env=["A=1"]
    )
    other = docker.APIClient(base_url=sandbox.manager_docker_host, version="1.41")

    def interfere(spec: dict[str, Any]) -> None:
        # Runs inside the operator's write, after its read: the first time, another
        # client writes first, so the operator's write is out of sequence.
        if other_writes["count"] == 0:
            other_writes["count"] += 1

            def theirs(their_spec: dict[str, Any]) -> None:
                container = their_spec["TaskTemplate"]["ContainerSpec"]
                container["Env"] = ["A=1", "B=2"]
                container["Image"] = container["Image"].split("@")[0] + "@sha256:" + "0" * 64

            update_service(other, service_id, theirs)
        spec.setdefault("Labels", {})["ours"] = "yes"

    @swarmop.on.create("service", labels={"test": marker}, registry=registry)
    def write(patch: swarmop.Patch, **_: Any) -> None:
        patch.mutate(interfere)

    with OperatorRunner(make_settings(sandbox, prefix), registry=registry):
        wait_until(
            lambda: docker_api.inspect_service(service_id)["Spec"]["Labels"].get("ours") == "yes",
            what="our label written",
        )
    other.close()
    container = docker_api.inspect_service(service_id)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Env"] == ["A=1", "B=2"]
    assert container["Image"].endswith("@sha256:" + "0" * 64)
    assert other_writes["count"] == 1


def test_closed_event_stream_reconnects_relists_and_applies_the_gap(
    *, sandbox: SandboxInfo, docker_api: docker.APIClient, tracker: Tracker, prefix: str
) -> None:
    """R3: the events connection ends from outside; a change made then is applied."""
    marker = unique("m")
    registry = Registry()
    seen: list[str] = []

    @swarmop.on.field("service", field="spec.Labels.n", labels={"test": marker}, registry=registry)
    def follow(new: Any, **_: Any) -> None:
        seen.append(str(new))

    service_id = tracker.create_service(command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(make_settings(sandbox, prefix), registry=registry) as runner:
        ctx = runner.operator.context  # type: ignore[union-attr]
        assert ctx is not None and ctx.event_stream is not None
        connects = ctx.docker_connects
        resynced = runner.board.info.last_resync
        stream = ctx.event_stream
        stream.close()  # from this thread, as a dropped connection would end it
        set_label(docker_api, service_id, "n", "gap")
        wait_until(lambda: ctx.docker_connects > connects, what="a new event connection")
        assert ctx.event_stream is not stream
        last = runner.board.info.last_resync
        assert last is not None and resynced is not None and last > resynced  # relisted
        wait_until(lambda: "gap" in seen, what="the change made in the gap")
        # And the new stream delivers events (the resync timer is 10 minutes away).
        set_label(docker_api, service_id, "n", "after")
        wait_until(lambda: "after" in seen, what="a change after the reconnect")


def test_restarted_dockerd_and_consul_are_survived(
    *,
    sandbox: SandboxInfo,
    sandbox_control: Sandbox,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
) -> None:
    """R4: desired state changed while the manager's dockerd / Consul are down is
    applied once they are back. With dockerd down only Consul can change (there is
    no other manager): a key is written; with Consul down a label is changed."""
    marker = unique("m")
    registry = Registry()
    seen: dict[str, Any] = {}

    @swarmop.on.field(
        "service", field="desired.replicas", labels={"test": marker}, registry=registry
    )
    def replicas(new: Any, desired: Any, **_: Any) -> None:
        seen["replicas"] = (new, desired.get("replicas").source.value)

    @swarmop.on.field(
        "service", field="spec.Labels.colour", labels={"test": marker}, registry=registry
    )
    def colour(new: Any, **_: Any) -> None:
        seen["colour"] = new

    name = unique("rst")
    service_id = tracker.create_service(
        name,
        command=SLEEPER,
        replicas=0,
        labels={"test": marker, "swarmop.replicas": "0", "colour": "red"},
    )
    manager = sandbox.nodes[0].hostname
    with OperatorRunner(make_settings(sandbox, prefix), registry=registry) as runner:
        wait_until(lambda: seen == {"replicas": (0, "label"), "colour": "red"}, what="first pass")
        # Docker down: the Consul key changes meanwhile.
        listed = runner.board.info.last_resync
        sandbox_control.stop_node(manager)
        wait_until(
            lambda: runner.board.info.docker_error is not None, what="the Docker outage reported"
        )
        consul_client.kv.put(f"{prefix}/services/{name}/replicas", "1")
        sandbox_control.start_node(manager)
        sandbox_control.wait_swarm_ready()
        wait_until(
            lambda: seen.get("replicas") == (1, "consul"),
            timeout=120,
            what="the key written during the Docker outage applied",
        )
        wait_until(lambda: runner.board.info.docker_error is None, what="Docker back")
        relisted = runner.board.info.last_resync
        assert listed is not None and relisted is not None and relisted > listed
        # Consul down: a label changes meanwhile. The dev agent comes back empty, so
        # its key is gone: the label is the source again once everything is re-read.
        sandbox_control.stop_consul()
        wait_until(
            lambda: runner.board.info.consul_error is not None, what="the Consul outage reported"
        )
        set_label(docker_api, service_id, "colour", "green")
        sandbox_control.start_consul()
        wait_until(lambda: runner.board.info.consul_error is None, what="Consul back")
        wait_until(
            lambda: seen == {"replicas": (0, "label"), "colour": "green"},
            timeout=120,
            what="the label changed during the Consul outage and the lost key applied",
        )
        # The progress store is Consul itself: the handled state is written again.
        stored = wait_until(
            lambda: (
                (state := stored_state(sandbox, prefix, "service", name))
                and state.cycle is None
                and state.last is not None
                and state.last["spec"]["Labels"].get("colour") == "green"
                and state
            ),
            timeout=120,
            what="the handled state stored in the restarted Consul",
        )
        assert stored.last is not None and stored.last["desired"]["replicas"] == 0
        messages = [event.message for event in runner.snapshot().events]
        assert any(m.startswith("Docker unavailable") for m in messages), messages
        assert any(m.startswith("Consul unavailable") for m in messages), messages
        assert runner.exception is None


def test_operator_started_while_docker_is_unreachable_waits_for_it(
    *, sandbox: SandboxInfo, tracker: Tracker, prefix: str, tmp_path: Path
) -> None:
    """Started before Docker answers, the operator reports the outage instead of
    crashing, and reconciles once the daemon is reachable."""
    assert sandbox.manager_docker_host.startswith("unix://")
    real_socket = sandbox.manager_docker_host.removeprefix("unix://")
    late_socket = tmp_path / "docker.sock"  # absent until the test links it
    marker = unique("m")
    registry = Registry()
    seen: list[str] = []

    @swarmop.on.create("service", labels={"test": marker}, registry=registry)
    def hello(name: str, **_: Any) -> None:
        seen.append(name)

    name = unique("late")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    settings = dataclasses.replace(
        make_settings(sandbox, prefix),
        docker=resolve_docker(host=f"unix://{late_socket}", env={}),
    )
    runner = OperatorRunner(settings, registry=registry, ready_timeout=120)

    def link_once_the_outage_is_reported() -> None:
        wait_until(
            lambda: runner.operator is not None and runner.board.info.docker_error is not None,
            timeout=60,
            what="the operator to report Docker unreachable",
        )
        late_socket.symlink_to(real_socket)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        linker = pool.submit(link_once_the_outage_is_reported)
        with runner:  # returns once the operator is ready, which needs the link
            linker.result(timeout=1)
            wait_until(lambda: name in seen, what="the handler once Docker answered")
            wait_until(lambda: runner.board.info.docker_error is None, what="the outage cleared")
            assert runner.exception is None
            messages = [event.message for event in runner.snapshot().events]
            assert any(m.startswith("Docker unavailable") for m in messages), messages


def http_get_text(port: int, path: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200, response.status
        return response.read().decode()
    finally:
        connection.close()


def http_get(port: int, path: str) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_http_endpoint_event_log_timer_and_daemon(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
) -> None:
    marker = unique("m")
    registry = Registry()
    ticks: list[str] = []
    daemon_runs: list[str] = []
    stopped_cleanly = threading.Event()

    @swarmop.on.probe(registry=registry, id="answer")
    def answer(**_: Any) -> int:
        return 42

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="hello")
    def hello(logger: Any, **_: Any) -> str:
        logger.info("said hello")
        return "greeted"

    @swarmop.timer("service", interval=0.5, labels={"test": marker}, registry=registry, id="tick")
    def tick(name: str, **_: Any) -> None:
        ticks.append(name)

    @swarmop.daemon("service", labels={"test": marker}, registry=registry, id="watcher")
    def watcher(name: str, stopped: Any, **_: Any) -> None:
        daemon_runs.append(name)
        while not stopped.wait(0.2):
            pass
        stopped_cleanly.set()

    name = unique("web")
    service_id = tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    settings = make_settings(sandbox, prefix, http=("127.0.0.1", 0))
    with OperatorRunner(settings, registry=registry) as runner:
        port = runner.operator.http_port  # type: ignore[union-attr]
        assert port is not None
        assert http_get(port, "/readyz") == (200, {"ready": True})
        code, health = http_get(port, "/healthz")
        assert code == 200 and health["answer"] == 42
        assert http_get(port, "/nope")[0] == 404

        def published() -> dict[str, Any] | None:
            _, body = http_get(port, "/status")
            for item in body["objects"]:
                if item["name"] == name and item["message"] == "greeted":
                    return body
            return None

        body = wait_until(published, what="status over HTTP")
        assert any(e["object"] == name and e["message"] == "said hello" for e in body["events"])
        metrics = http_get_text(port, "/metrics")
        assert "\nswarmop_ready 1\n" in metrics
        ok_services = re.search(r'swarmop_objects\{kind="service",outcome="ok"\} (\d+)', metrics)
        assert ok_services is not None and int(ok_services.group(1)) >= 1, metrics

        def event_log() -> bool:
            _, item = consul_client.kv.get(f"{prefix}/events")
            return item is not None and any(
                e.object == name and e.message == "said hello" for e in decode_events(item["Value"])
            )

        wait_until(event_log, what="the operator event log in Consul")
        wait_until(lambda: ticks.count(name) >= 3, what="the timer ticking")
        wait_until(lambda: daemon_runs == [name], what="the daemon running")
        # The object goes away: its daemon is told to stop.
        docker_api.remove_service(service_id)
        assert stopped_cleanly.wait(30), "the daemon was not stopped"
    assert daemon_runs == [name]


def test_state_dir_without_consul_does_not_rerun_finished_handlers(
    *, sandbox: SandboxInfo, tracker: Tracker, prefix: str, tmp_path: Path
) -> None:
    marker = unique("m")
    registry = Registry()
    counts: dict[str, int] = {"first": 0, "second": 0}
    fail = {"second": True}

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="first")
    def first(**_: Any) -> None:
        counts["first"] += 1

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="second")
    def second(**_: Any) -> None:
        counts["second"] += 1
        if fail["second"]:
            raise swarmop.TemporaryError("later", delay=2)

    name = unique("fs")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    settings = make_settings(sandbox, prefix, with_consul=False, state_dir=str(tmp_path))
    with OperatorRunner(settings, registry=registry):
        wait_until(lambda: counts["second"] >= 1, what="second tried")
    assert counts["first"] == 1
    assert (tmp_path / "services" / f"{name}.json").is_file()
    # Restarted mid-work: the finished handler is not rerun, the unfinished one is.
    fail["second"] = False
    tried = counts["second"]
    with OperatorRunner(settings, registry=registry) as runner:
        wait_until(
            lambda: (s := runner.board.get(("service", name))) and s.outcome is Outcome.OK,
            what="second finished after the restart",
        )
    assert counts == {"first": 1, "second": tried + 1}
    # And once more: nothing left to do.
    with OperatorRunner(settings, registry=registry) as runner:
        wait_until(lambda: runner.board.get(("service", name)), what="status")
        time.sleep(1)  # room for a wrong rerun to happen (not a timing assertion)
    assert counts == {"first": 1, "second": tried + 1}


def test_what_a_restarted_consul_lost_is_written_back(
    *,
    sandbox: SandboxInfo,
    sandbox_control: Sandbox,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
) -> None:
    """The dev agent comes back empty. Without any object changing, the statuses, the
    operator info and the stored handler state reappear, so an operator started
    afterwards does not run the finished create handlers again."""
    marker = unique("m")
    registry = Registry()
    created: Counter[str] = Counter()

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="created")
    def create(name: str, **_: Any) -> None:
        created[name] += 1

    names = [unique("lost") for _ in range(2)]
    for name in names:
        tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})

    def written(name: str) -> bool:
        state = stored_state(sandbox, prefix, "service", name)
        _, status = consul_client.kv.get(status_key(prefix, "service", name))
        return state is not None and state.cycle is None and status is not None

    settings = make_settings(sandbox, prefix)
    with OperatorRunner(settings, registry=registry) as runner:
        wait_until(lambda: all(written(name) for name in names), what="state and statuses")
        sandbox_control.stop_consul()
        wait_until(
            lambda: runner.board.info.consul_error is not None, what="the Consul outage reported"
        )
        sandbox_control.start_consul()
        wait_until(
            lambda: all(written(name) for name in names),
            timeout=120,
            what="state and statuses written back to the emptied Consul",
        )
        wait_until(
            lambda: consul_client.kv.get(operator_key(prefix))[1] is not None,
            what="the operator info published again",
        )
        assert runner.exception is None
    assert created == {name: 1 for name in names}
    with OperatorRunner(settings, registry=registry) as runner:
        for name in names:
            # A status means the object's pass has decided (after any handler ran).
            wait_until(lambda name=name: runner.board.get(("service", name)), what="status")
    assert created == {name: 1 for name in names}
