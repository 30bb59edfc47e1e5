"""Docker API faults against the real sandbox, injected by a loopback proxy in front of
the manager's Docker endpoint (docker_fault_proxy.py): a half-open event stream (R6),
a service update whose response is lost after the daemon applied it (R11), and
replayed, reordered events (R5).

The operator talks to Docker only through the proxy; the tests change the swarm
and read the truth through the real socket.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from docker_fault_proxy import EVENTS, SERVICE_INSPECT, SERVICE_UPDATE, DockerFaultProxy

import swarmop
from swarmop.clients.swarm_write import update_service
from swarmop.registry import Registry
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.status import Outcome
from swarmop.testing import OperatorRunner

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
WATCHDOG = 3.0
"""Seconds without an event before the operator recycles its event stream (R6)."""


@pytest.fixture
def fault_proxy(sandbox: SandboxInfo) -> Iterator[DockerFaultProxy]:
    with DockerFaultProxy(sandbox.manager_docker_host) as proxy:
        yield proxy


def proxied_settings(
    sandbox: SandboxInfo, prefix: str, proxy: DockerFaultProxy, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        # Loopback tcp:// without TLS is accepted: the proxy is on 127.0.0.1.
        "docker": resolve_docker(host=proxy.url, env={}),
        "consul": resolve_consul(addr=sandbox.consul_http_addr, env={}),
        "prefix": prefix,
        "resync_interval": 600.0,  # only events and reconnect relists drive these tests
    }
    values.update(extra)
    return Settings(**values)


def call(runner: OperatorRunner, fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn` on the operator's event loop."""
    assert runner._portal is not None
    return runner._portal.call(fn, *args)


def idle(runner: OperatorRunner) -> bool:
    queue = runner.operator.queue  # type: ignore[union-attr]
    assert queue is not None
    return bool(call(runner, queue.busy) == 0)


def set_label(api: docker.APIClient, service_id: str, name: str, value: str) -> None:
    update_service(api, service_id, lambda spec: spec["Labels"].__setitem__(name, value))


def bump_force_update(spec: dict[str, Any]) -> None:
    """A relative change: applied twice, it shows (ForceUpdate +2)."""
    task = spec.setdefault("TaskTemplate", {})
    task["ForceUpdate"] = int(task.get("ForceUpdate") or 0) + 1


def service_update_events(api: docker.APIClient, service_id: str, since: float) -> int:
    """`update` events the daemon recorded for this service since `since`."""
    events = api.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": ["service"], "service": [service_id]},
    )
    return sum(
        1
        for event in events
        if event.get("Action") == "update" and int(event.get("timeNano", 0)) >= since * 1e9
    )


class Calls:
    """Handler calls by (handler, object), from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self.values: dict[str, list[str]] = {}

    def add(self, handler: str, name: str, value: str | None = None) -> None:
        with self._lock:
            self._counts[(handler, name)] += 1
            if value is not None:
                self.values.setdefault(name, []).append(value)

    def count(self, handler: str, name: str | None = None) -> int:
        with self._lock:
            return sum(
                n for (h, o), n in self._counts.items() if h == handler and name in (None, o)
            )

    def snapshot(self, *handlers: str) -> dict[tuple[str, str], int]:
        with self._lock:
            return {key: n for key, n in self._counts.items() if key[0] in handlers}

    def seen(self, name: str) -> list[str]:
        with self._lock:
            return list(self.values.get(name, []))


def follow_label(registry: Registry, marker: str, calls: Calls) -> None:
    """A field handler on label `n` of the test's services."""

    @swarmop.on.field("service", field="spec.Labels.n", labels={"test": marker}, registry=registry)
    def follow(name: str, new: Any, **_: Any) -> None:
        calls.add("follow", name, str(new))


def test_half_open_event_stream_is_recycled_and_the_change_applied(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    tracker: Tracker,
    prefix: str,
    fault_proxy: DockerFaultProxy,
) -> None:
    """R6: the event connection stays open but goes silent; the watchdog recycles it."""
    marker = unique("m")
    registry = Registry()
    calls = Calls()
    follow_label(registry, marker, calls)
    name = unique("half")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=0, labels={"test": marker, "n": "start"}
    )
    settings = proxied_settings(sandbox, prefix, fault_proxy, watchdog_interval=WATCHDOG)
    with OperatorRunner(settings, registry=registry) as runner:
        ctx = runner.operator.context  # type: ignore[union-attr]
        assert ctx is not None
        wait_until(lambda: calls.seen(name) == ["start"], what="the first pass")
        wait_until(lambda: fault_proxy.event_streams() >= 1, what="an event stream via the proxy")
        stream = ctx.event_stream
        connects = ctx.docker_connects
        silenced = wait_until(
            lambda: fault_proxy.black_hole(EVENTS), what="the event stream black-holed"
        )
        assert silenced == 1
        set_label(docker_api, service_id, "n", "in-silence")  # the real socket, not the proxy
        wait_until(
            lambda: "in-silence" in calls.seen(name),
            timeout=120,
            what="the change made while the stream was silent",
        )
        wait_until(lambda: ctx.docker_connects > connects, what="a new event connection")
        assert ctx.event_stream is not stream
        assert any(e.silenced for e in fault_proxy.matching(EVENTS))
        # The replacement stream (or the next recycle) carries later changes.
        set_label(docker_api, service_id, "n", "later")
        wait_until(lambda: "later" in calls.seen(name), timeout=120, what="a later change")
        assert runner.exception is None
    assert calls.seen(name) == ["start", "in-silence", "later"]


def test_black_holed_event_requests_never_hang_the_operator(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    tracker: Tracker,
    prefix: str,
    fault_proxy: DockerFaultProxy,
) -> None:
    """R6: every /events request is swallowed for a while (the daemon never answers it);
    the operator keeps recycling and relisting, applies changes, and recovers on heal."""
    marker = unique("m")
    registry = Registry()
    calls = Calls()
    follow_label(registry, marker, calls)
    name = unique("hole")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=0, labels={"test": marker, "n": "start"}
    )
    settings = proxied_settings(sandbox, prefix, fault_proxy, watchdog_interval=WATCHDOG)
    with OperatorRunner(settings, registry=registry) as runner:
        ctx = runner.operator.context  # type: ignore[union-attr]
        assert ctx is not None
        wait_until(lambda: calls.seen(name) == ["start"], what="the first pass")
        wait_until(lambda: fault_proxy.event_streams() >= 1, what="an event stream via the proxy")
        try:
            fault_proxy.black_hole(EVENTS, new=True)
            connects = ctx.docker_connects
            set_label(docker_api, service_id, "n", "in-silence")
            wait_until(
                lambda: "in-silence" in calls.seen(name),
                timeout=120,
                what="the change, found by a relist while no event request is answered",
            )
            # Still cycling: each recycle opens a request the proxy swallows, and the
            # operator must give up on it without blocking its event loop.
            wait_until(
                lambda: ctx.docker_connects >= connects + 3,
                timeout=120,
                what="three more reconnects during the black-hole",
            )
            swallowed = [e for e in fault_proxy.matching(EVENTS) if e.silenced and e.status is None]
            assert len(swallowed) >= 2, swallowed
        finally:
            fault_proxy.heal()
        wait_until(lambda: fault_proxy.event_streams() >= 1, what="a live event stream again")
        set_label(docker_api, service_id, "n", "healed")
        wait_until(lambda: "healed" in calls.seen(name), timeout=120, what="a change after heal")
        assert runner.exception is None


def test_lost_update_response_is_settled_by_rereading(
    *, sandbox: SandboxInfo, docker_api: docker.APIClient, tracker: Tracker
) -> None:
    """R11 for swarm_write: the update is applied, its response lost; the writer
    re-inspects and does not write again (a relative ForceUpdate bump would show)."""
    service_id = tracker.create_service(command=SLEEPER, replicas=0, labels={"keep": "me"})
    before = docker_api.inspect_service(service_id)
    force = int(before["Spec"]["TaskTemplate"].get("ForceUpdate") or 0)

    def change(spec: dict[str, Any]) -> None:
        bump_force_update(spec)
        spec.setdefault("Labels", {})["rolled"] = "yes"

    with DockerFaultProxy(sandbox.manager_docker_host) as proxy:
        api = docker.APIClient(base_url=proxy.url, version="1.41", timeout=30)
        try:
            proxy.reset_after_forward(SERVICE_UPDATE, times=1)
            since = time.time()
            result = update_service(api, service_id, change)
        finally:
            api.close()
        requests = [e.request for e in proxy.exchanges]
        updates = proxy.matching(SERVICE_UPDATE)
    after = docker_api.inspect_service(service_id)
    assert result.changed and result.indeterminate == 1, result
    assert [(u.status, u.reset) for u in updates] == [(200, True)], updates
    # Read, write (response lost), read again: nothing after it is a write.
    written = requests.index(updates[0].request)
    assert any(SERVICE_INSPECT.search(r) for r in requests[:written]), requests
    assert any(SERVICE_INSPECT.search(r) for r in requests[written + 1 :]), requests
    assert after["Spec"]["TaskTemplate"]["ForceUpdate"] == force + 1
    assert after["Spec"]["Labels"] == {"keep": "me", "rolled": "yes"}
    assert after["PreviousSpec"] == before["Spec"]  # exactly one update since `before`
    assert after["Version"]["Index"] == before["Version"]["Index"] + 1
    assert service_update_events(docker_api, service_id, since) == 1


def test_lost_patch_response_is_not_written_twice(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    tracker: Tracker,
    prefix: str,
    fault_proxy: DockerFaultProxy,
) -> None:
    """R11 for a handler's `patch`: the operator's write is applied but its response
    reset; the handler's change lands once, the handler is not called again."""
    marker = unique("m")
    registry = Registry()
    calls = Calls()

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="roll")
    def roll(name: str, patch: swarmop.Patch, **_: Any) -> str:
        calls.add("roll", name)
        patch.set_label("rolled", "yes")
        patch.mutate(bump_force_update)
        return "rolled"

    name = unique("lost")
    service_id = tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    before = docker_api.inspect_service(service_id)
    force = int(before["Spec"]["TaskTemplate"].get("ForceUpdate") or 0)
    fault_proxy.reset_after_forward(SERVICE_UPDATE, times=1)
    since = time.time()
    with OperatorRunner(
        proxied_settings(sandbox, prefix, fault_proxy), registry=registry
    ) as runner:

        def done() -> bool:
            status = runner.board.get(("service", name))
            return (
                status is not None and status.outcome is Outcome.OK and "rolled" in status.message
            )

        wait_until(done, timeout=120, what="the handler's write settled and reported ok")
        # Our own write's event comes back; it must find nothing to do.
        wait_until(
            lambda: service_update_events(docker_api, service_id, since) >= 1,
            what="the update event",
        )
        wait_until(lambda: idle(runner), what="the operator idle")
        assert runner.exception is None
    after = docker_api.inspect_service(service_id)
    updates = fault_proxy.matching(SERVICE_UPDATE)
    assert [(u.status, u.reset) for u in updates] == [(200, True)], updates
    assert calls.count("roll") == 1
    assert after["Spec"]["TaskTemplate"]["ForceUpdate"] == force + 1
    assert after["Spec"]["Labels"] == {"test": marker, "rolled": "yes"}
    assert after["PreviousSpec"] == before["Spec"]
    assert after["Version"]["Index"] == before["Version"]["Index"] + 1
    assert service_update_events(docker_api, service_id, since) == 1


def _event_name(payload: bytes) -> str:
    event = json.loads(payload)
    return str(((event.get("Actor") or {}).get("Attributes") or {}).get("name") or "")


def test_replayed_and_reordered_events_change_nothing(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    tracker: Tracker,
    prefix: str,
    fault_proxy: DockerFaultProxy,
) -> None:
    """R5: once converged, the same events again, twice and shuffled, through the
    operator's real event stream; then the daemon's own replay from a whole-second
    `since`. Nothing is written and no change handler runs again."""
    marker = unique("m")
    registry = Registry()
    calls = Calls()
    change_handlers = ("create", "update", "colour", "delete")

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="create")
    def created(name: str, patch: swarmop.Patch, **_: Any) -> None:
        calls.add("create", name)
        patch.set_label("seen", "1")  # a write of the operator's own

    @swarmop.on.update("service", labels={"test": marker}, registry=registry, id="update")
    def updated(name: str, **_: Any) -> None:
        calls.add("update", name)

    @swarmop.on.field(
        "service", field="spec.Labels.colour", labels={"test": marker}, registry=registry
    )
    def colour(name: str, new: Any, **_: Any) -> None:
        calls.add("colour", name, str(new))

    @swarmop.on.delete("service", labels={"test": marker}, registry=registry, id="delete")
    def deleted(name: str, **_: Any) -> None:
        calls.add("delete", name)

    @swarmop.on.event("service", labels={"test": marker}, registry=registry, id="event")
    def noticed(name: str, **_: Any) -> None:
        calls.add("event", name)

    started = time.time()
    names = [unique("rep") for _ in range(3)]
    gone = unique("gone")
    with OperatorRunner(
        proxied_settings(sandbox, prefix, fault_proxy), registry=registry
    ) as runner:
        ids = {
            name: tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
            for name in [*names, gone]
        }

        def labelled(name: str) -> bool:
            labels = docker_api.inspect_service(ids[name])["Spec"]["Labels"]
            return bool(labels.get("seen") == "1")

        wait_until(lambda: all(labelled(n) for n in ids), timeout=120, what="every create write")
        for service_id in ids.values():
            set_label(docker_api, service_id, "colour", "blue")
        wait_until(
            lambda: all(calls.seen(n) == ["blue"] for n in ids), timeout=120, what="the colours"
        )
        # One service goes away: its replayed create/update must not bring it back.
        docker_api.remove_service(ids[gone])
        wait_until(lambda: calls.count("delete", gone) == 1, what="the delete handler")
        wait_until(
            lambda: {_event_name(p) for p in fault_proxy.events} >= set(ids),
            what="events for every service captured on the operator's stream",
        )
        wait_until(lambda: idle(runner), what="the operator idle")

        def versions() -> dict[str, int]:
            return {n: int(docker_api.inspect_service(ids[n])["Version"]["Index"]) for n in names}

        converged = versions()
        handled = calls.snapshot(*change_handlers)
        writes = len(fault_proxy.matching(SERVICE_UPDATE))
        assert writes == len(ids)  # the create handlers' own writes, one each
        ours = [p for p in fault_proxy.events if _event_name(p) in ids]
        assert len(ours) >= 3 * len(ids)  # create, our label, their label (+ remove)

        # Replay 1: the captured events twice, shuffled, injected into the live stream.
        replay = ours * 2
        random.Random(5).shuffle(replay)
        noticed_before = calls.count("event")
        assert fault_proxy.inject_events(replay) == 1
        wait_until(lambda: fault_proxy.injected() == len(replay), what="the replay written")
        # Events for the removed service reach no handler (nothing to filter on).
        live = sum(1 for p in replay if _event_name(p) in names)
        wait_until(
            lambda: calls.count("event") == noticed_before + live,
            timeout=120,
            what="every replayed event of a live service handed to the event handler",
        )
        wait_until(lambda: idle(runner), what="the operator idle after the replay")
        assert versions() == converged
        assert calls.snapshot(*change_handlers) == handled
        assert len(fault_proxy.matching(SERVICE_UPDATE)) == writes

        # Replay 2: the daemon's own, on a reconnect that resumes at a whole-second
        # `since` from before the services existed (the relist comes with it).
        ctx = runner.operator.context  # type: ignore[union-attr]
        assert ctx is not None and ctx.event_stream is not None
        connects = ctx.docker_connects
        noticed_before = calls.count("event")
        fault_proxy.replay_since(started)
        ctx.event_stream.close()
        wait_until(lambda: ctx.docker_connects > connects, what="the reconnect")
        replayed = [e for e in fault_proxy.matching(EVENTS) if f"since={int(started)}" in e.request]
        assert len(replayed) == 1
        wait_until(
            lambda: calls.count("event") >= noticed_before + len(names) * 3,
            timeout=120,
            what="the daemon's replay handed to the event handler",
        )
        wait_until(lambda: idle(runner), what="the operator idle after the daemon's replay")
        assert versions() == converged
        assert calls.snapshot(*change_handlers) == handled
        assert len(fault_proxy.matching(SERVICE_UPDATE)) == writes
        for name in names:
            status = runner.board.get(("service", name))
            assert status is not None and status.outcome is Outcome.OK
        assert runner.board.get(("service", gone)) is None
        assert runner.exception is None


def test_silently_lost_events_are_made_up_by_the_resync(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    consul_client: Any,
    tracker: Tracker,
    prefix: str,
    fault_proxy: DockerFaultProxy,
) -> None:
    """R1: no Docker event reaches the operator (the stream stays open and silent,
    and the watchdog is far away), while a label and a Consul key change. Both are
    applied within the resync interval; the objects nobody changed see no handler
    call from the relists."""
    resync = 5.0
    marker = unique("m")
    registry = Registry()
    calls = Calls()

    @swarmop.on.update("service", labels={"test": marker}, registry=registry, id="update")
    def updated(name: str, **_: Any) -> None:
        calls.add("update", name)

    @swarmop.on.field(
        "service", field="desired.replicas", labels={"test": marker}, registry=registry
    )
    def replicas(name: str, new: Any, **_: Any) -> None:
        calls.add("replicas", name, str(new))

    @swarmop.on.event("service", labels={"test": marker}, registry=registry, id="event")
    def event(name: str, **_: Any) -> None:
        calls.add("event", name)

    follow_label(registry, marker, calls)
    names = [unique("lost") for _ in range(4)]
    ids = {
        name: tracker.create_service(
            name, command=SLEEPER, replicas=0, labels={"test": marker, "n": "start"}
        )
        for name in names
    }
    changed_by_label, changed_by_key, *untouched = names
    settings = proxied_settings(sandbox, prefix, fault_proxy, resync_interval=resync)
    with OperatorRunner(settings, registry=registry) as runner:
        wait_until(
            lambda: all(calls.seen(name) == ["start"] for name in names), what="the first pass"
        )
        wait_until(lambda: fault_proxy.event_streams() >= 1, what="an event stream via the proxy")
        before = calls.snapshot("update", "follow", "replicas")
        fault_proxy.black_hole(EVENTS, new=True)
        events_before = calls.count("event", changed_by_label)
        try:
            set_label(docker_api, ids[changed_by_label], "n", "while-deaf")
            consul_client.kv.put(f"{prefix}/services/{changed_by_key}/replicas", "0")
            wait_until(
                lambda: "while-deaf" in calls.seen(changed_by_label),
                timeout=resync * 6,
                what="the label change, found by a resync",
            )
            wait_until(
                lambda: calls.count("replicas", changed_by_key) > 0,
                timeout=resync * 6,
                what="the Consul key change",
            )
            # Two more full relists, then compare the objects nobody changed.
            resynced = runner.board.info.last_resync or 0.0
            wait_until(
                lambda: (runner.board.info.last_resync or 0.0) > resynced + resync,
                timeout=resync * 6,
                what="two more resyncs",
            )
            after = calls.snapshot("update", "follow", "replicas")
            for name in untouched:
                mine = {key: n for key, n in after.items() if key[1] == name}
                assert mine == {k: n for k, n in before.items() if k[1] == name}, name
            # The stream really was silent: the change's own event never arrived.
            assert calls.count("event", changed_by_label) == events_before
        finally:
            fault_proxy.heal()
        assert runner.exception is None
