"""The handler API's pieces, each doing what docs/api.md says, against the real sandbox:
operator handlers, filters, retry limits, error kinds, keyword arguments, nodes, and
objects that do not wait for each other."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

import swarmop
from swarmop.clients.swarm_write import update_node, update_service
from swarmop.planning.diff import DiffItem
from swarmop.registry import Registry
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.settings import Settings
from swarmop.status import ObjectStatus, Outcome
from swarmop.testing import OperatorRunner

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


class Calls:
    """What handlers were called with, in call order (handlers run in worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, Any]] = []

    def add(self, handler: str, value: Any = None) -> None:
        with self.lock:
            self.items.append((handler, value))

    def of(self, handler: str) -> list[Any]:
        with self.lock:
            return [value for name, value in self.items if name == handler]


@pytest.fixture
def calls() -> Iterator[Calls]:
    yield Calls()


def wait_status(
    runner: OperatorRunner, name: str, outcome: Outcome, text: str = "", kind: str = "service"
) -> ObjectStatus:
    def matches() -> ObjectStatus | None:
        found = runner.board.get((kind, name))  # type: ignore[arg-type]
        return found if found and found.outcome is outcome and text in found.message else None

    status = wait_until(matches, timeout=60, what=f"{name}: {outcome.value} status with {text!r}")
    assert status is not None
    return status


def wait_idle(runner: OperatorRunner) -> None:
    """Until no object has a worker or a scheduled retry left."""
    queue = runner.operator.queue  # type: ignore[union-attr]
    assert queue is not None and runner._portal is not None
    portal = runner._portal
    wait_until(lambda: portal.call(queue.depth) == (0, 0), what="an idle queue")


def set_label(api: docker.APIClient, service_id: str, name: str, value: str | None) -> None:
    def change(spec: dict[str, Any]) -> None:
        labels = spec.setdefault("Labels", {})
        if value is None:
            labels.pop(name, None)
        else:
            labels[name] = value

    update_service(api, service_id, change)


def test_startup_memo_create_resume_and_cleanup(
    *, settings: Settings, tracker: Tracker, calls: Calls
) -> None:
    """startup runs (and is retried) before any object handler and fills `memo`;
    cleanup runs at shutdown; a second start resumes the handled object instead of
    creating it again."""
    marker = unique("m")
    registry = Registry()
    startups = {"count": 0}

    @swarmop.on.startup(registry=registry)
    def start(memo: Any, retry: int, **_: Any) -> None:
        startups["count"] += 1
        calls.add("startup", retry)
        if startups["count"] == 1:
            raise swarmop.TemporaryError("not ready", delay=0.2)
        memo.greeting = f"hello {startups['count']}"

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="made")
    def made(name: str, memo: Any, **_: Any) -> None:
        calls.add("create", (name, memo.greeting))
        memo.handled = name

    @swarmop.on.resume("service", labels={"test": marker}, registry=registry, id="back")
    def back(name: str, memo: Any, reason: str, **_: Any) -> None:
        calls.add("resume", (name, memo.greeting, reason))

    @swarmop.on.cleanup(registry=registry)
    def stop(memo: Any, **_: Any) -> None:
        calls.add("cleanup", getattr(memo, "handled", None))

    name = unique("life")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry):
        wait_until(lambda: calls.of("create"), what="the create handler")
        assert calls.of("cleanup") == []
    assert [handler for handler, _ in calls.items] == ["startup", "startup", "create", "cleanup"]
    assert calls.of("startup") == [0, 1]  # the retry argument counts startup attempts
    assert calls.of("create") == [(name, "hello 2")]
    assert calls.of("cleanup") == [name]

    with OperatorRunner(settings, registry=registry):
        wait_until(lambda: calls.of("resume"), what="the resume handler")
    assert calls.of("resume") == [(name, "hello 3", "resume")]
    assert calls.of("create") == [(name, "hello 2")]  # not created again
    assert calls.of("cleanup") == [name, None]  # a new operator has a new memo


def test_when_filter_sees_the_kwargs_and_a_failing_one_skips_its_handler(
    *, settings: Settings, docker_api: docker.APIClient, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()

    def go(labels: dict[str, str], reason: str, name: str, **_: Any) -> bool:
        calls.add("when", (name, reason))
        return labels.get("go") == "yes"

    def broken(**_: Any) -> bool:
        raise LookupError("no such thing")

    @swarmop.on.update("service", labels={"test": marker}, when=go, registry=registry, id="gated")
    def gated(labels: dict[str, str], **_: Any) -> None:
        calls.add("gated", labels.get("n"))

    @swarmop.on.update(
        "service", labels={"test": marker}, when=broken, registry=registry, id="broken"
    )
    def never(**_: Any) -> None:
        calls.add("broken")

    # Registered last, so when it has run for a change the others had their chance.
    @swarmop.on.update("service", labels={"test": marker}, registry=registry, id="always")
    def always(labels: dict[str, str], **_: Any) -> None:
        calls.add("always", labels.get("n"))

    name = unique("when")
    service_id = tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry) as runner:
        wait_status(runner, name, Outcome.OK)
        set_label(docker_api, service_id, "n", "1")
        wait_until(lambda: calls.of("always") == ["1"], what="the first update")
        assert calls.of("gated") == []
        set_label(docker_api, service_id, "go", "yes")
        wait_until(lambda: calls.of("always") == ["1", "1"], what="the second update")
        assert calls.of("gated") == ["1"]
        assert calls.of("broken") == []
        assert set(calls.of("when")) == {(name, "update")}
        messages = [event.message for event in runner.snapshot().events if event.object == name]
        assert any("when= filter of broken failed: no such thing" in m for m in messages), messages


def test_field_handlers_filter_on_old_and_new_and_get_the_field_diff(
    *, settings: Settings, docker_api: docker.APIClient, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()
    colour = "spec.Labels.colour"

    def on_colour(handler: str, **filters: Any) -> Callable[..., None]:
        @swarmop.on.field(
            "service",
            field=colour,
            labels={"test": marker},
            registry=registry,
            id=handler,
            **filters,
        )
        def record(old: Any, new: Any, diff: Any, **_: Any) -> None:
            calls.add(handler, (old, new, diff))

        return record

    on_colour("red-to-blue", old="red", new="blue")
    on_colour("appeared", old=swarmop.ABSENT, new=swarmop.PRESENT)
    on_colour("removed", new=swarmop.ABSENT)
    on_colour("greenish", new=lambda value: value is not None and value.startswith("g"))
    on_colour("any")  # last: once it ran for a change, the filtered ones had their chance

    name = unique("fld")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=0, labels={"test": marker, "colour": "red"}
    )
    steps = ["green", "blue", "red", "blue", None]
    with OperatorRunner(settings, registry=registry):
        wait_until(lambda: len(calls.of("any")) == 1, what="the field on creation")
        for handled, value in enumerate(steps, start=2):
            set_label(docker_api, service_id, "colour", value)
            wait_until(
                functools.partial(lambda n: len(calls.of("any")) == n, handled),
                what=f"colour {value}",
            )
    transitions = [(old, new) for old, new, _ in calls.of("any")]
    assert transitions == [
        (None, "red"),
        ("red", "green"),
        ("green", "blue"),
        ("blue", "red"),
        ("red", "blue"),
        ("blue", None),
    ]
    assert calls.of("red-to-blue") == [("red", "blue", (DiffItem("change", (), "red", "blue"),))]
    assert [(old, new) for old, new, _ in calls.of("appeared")] == [(None, "red")]
    assert [(old, new) for old, new, _ in calls.of("greenish")] == [("red", "green")]
    assert calls.of("removed") == [("blue", None, (DiffItem("remove", (), "blue", None),))]


def test_update_gets_the_essence_diff(
    *, settings: Settings, docker_api: docker.APIClient, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()

    @swarmop.on.update("service", labels={"test": marker}, registry=registry, id="changed")
    def changed(old: Any, new: Any, diff: Any, **_: Any) -> None:
        calls.add("update", (old, new, diff))

    name = unique("dif")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=0, labels={"test": marker, "colour": "red"}
    )
    with OperatorRunner(settings, registry=registry) as runner:
        wait_status(runner, name, Outcome.OK)
        set_label(docker_api, service_id, "colour", "blue")
        wait_until(lambda: calls.of("update"), what="the update")
    ((old, new, diff),) = calls.of("update")
    assert diff == (DiffItem("change", ("spec", "Labels", "colour"), "red", "blue"),)
    assert old["spec"]["Labels"]["colour"] == "red" and new["spec"]["Labels"]["colour"] == "blue"
    assert {**old["spec"], "Labels": None} == {**new["spec"], "Labels": None}
    assert old["desired"] == new["desired"]  # defaults only: no desired state changed


def test_retries_and_timeout_end_in_error_and_report_started_and_runtime(
    *, settings: Settings, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()

    @swarmop.on.create(
        "service", labels={"test": marker}, registry=registry, id="limited", retries=2, backoff=0.1
    )
    def limited(retry: int, **_: Any) -> None:
        calls.add("limited", retry)
        raise ValueError("nope")

    @swarmop.on.create(
        "service", labels={"test": marker}, registry=registry, id="timed", timeout=1.0, backoff=0.2
    )
    def timed(retry: int, started: Any, runtime: Any, **_: Any) -> None:
        calls.add("timed", (retry, started, runtime))
        raise ValueError("still broken")

    name = unique("lim")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry) as runner:
        status = wait_status(runner, name, Outcome.ERROR)
        wait_idle(runner)  # nothing scheduled once both have given up
        assert runner.board.get(("service", name)) == status
    assert "retries exhausted: ValueError: nope" in status.message
    assert "timed out: ValueError: still broken" in status.message
    assert calls.of("limited") == [0, 1, 2]  # the first attempt and two retries
    timed_calls = calls.of("timed")
    assert len(timed_calls) >= 2
    assert [retry for retry, _, _ in timed_calls] == list(range(len(timed_calls)))
    assert len({started for _, started, _ in timed_calls}) == 1  # the first attempt's time
    runtimes = [runtime.total_seconds() for _, _, runtime in timed_calls]
    assert runtimes == sorted(runtimes) and runtimes[-1] > runtimes[0]
    events = [e.message for e in runner.snapshot().events if e.object == name]
    assert any("limited failed after 2 retries" in m for m in events), events
    assert any("timed timed out after 1s" in m for m in events), events


def test_permanent_error_is_not_retried_and_the_next_handler_runs(
    *, settings: Settings, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()

    @swarmop.on.create(
        "service", labels={"test": marker}, registry=registry, id="fatal", backoff=0.1
    )
    def fatal(**_: Any) -> None:
        calls.add("fatal")
        raise swarmop.PermanentError("bad configuration")

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="next")
    def following(**_: Any) -> str:
        calls.add("next")
        return "next ran"

    name = unique("perm")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry) as runner:
        status = wait_status(runner, name, Outcome.ERROR, "bad configuration")
        wait_idle(runner)
    assert status.handler == "next" and status.retries == 0
    assert len(calls.of("fatal")) == 1
    assert len(calls.of("next")) == 1


def test_a_crash_is_retried_after_its_backoff(*, settings: Settings, tracker: Tracker) -> None:
    marker = unique("m")
    registry = Registry()
    attempts: list[tuple[int, float, ObjectStatus | None]] = []
    holder: dict[str, OperatorRunner] = {}
    name = unique("bck")

    @swarmop.on.create(
        "service", labels={"test": marker}, registry=registry, id="crashy", backoff=1.0
    )
    def crashy(retry: int, **_: Any) -> str:
        # What the status said while this attempt waited for its turn.
        attempts.append((retry, time.time(), holder["runner"].board.get(("service", name))))
        if retry == 0:
            raise RuntimeError("boom")
        return "recovered"

    with OperatorRunner(settings, registry=registry) as runner:
        holder["runner"] = runner
        tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
        wait_status(runner, name, Outcome.OK, "recovered")
        events = [e.message for e in runner.snapshot().events if e.object == name]
    assert [retry for retry, _, _ in attempts] == [0, 1]
    (_, first_at, _), (_, second_at, waiting) = attempts
    assert waiting is not None and waiting.outcome is Outcome.PENDING
    assert waiting.retries == 1 and waiting.message == "RuntimeError: boom"
    assert waiting.next_retry is not None
    assert waiting.next_retry >= first_at + 1.0  # the backoff, from the crash on
    assert second_at >= waiting.next_retry  # not retried before it was due
    assert any(m == "crashy crashed (RuntimeError: boom); retry 1 in 1s" for m in events), events


def test_node_handlers_get_the_node_and_patch_it(
    *, sandbox: SandboxInfo, settings: Settings, docker_api: docker.APIClient, tracker: Tracker
) -> None:
    registry = Registry()
    label = unique("nodetest")
    created: set[str] = set()
    seen: list[tuple[str, str, str, Any]] = []

    @swarmop.on.create("node", registry=registry, id="node-made")
    def node_made(name: str, **_: Any) -> None:
        created.add(name)

    @swarmop.on.field("node", field=f"spec.Labels.{label}", registry=registry, id="node-label")
    def node_label(
        node: swarmop.NodeView, name: str, new: Any, patch: swarmop.Patch, **_: Any
    ) -> None:
        seen.append((name, node.hostname, node.role, new))
        if new == "ping":
            patch.set_label(f"{label}.seen", "pong")

    worker = sandbox.nodes[-1].hostname
    node_id = docker_api.inspect_node(worker)["ID"]
    tracker.node(node_id)  # its labels are put back afterwards
    with OperatorRunner(settings, registry=registry):
        hostnames = {node.hostname for node in sandbox.nodes}
        wait_until(lambda: created == hostnames, what="every node created")
        update_node(
            docker_api,
            node_id,
            lambda spec: spec.setdefault("Labels", {}).__setitem__(label, "ping"),
        )
        wait_until(
            lambda: (
                docker_api.inspect_node(node_id)["Spec"]["Labels"].get(f"{label}.seen") == "pong"
            ),
            what="the node label written by the handler",
        )
    assert seen == [(worker, worker, "worker", "ping")]


def test_a_stuck_or_failing_object_does_not_stall_another(
    *, settings: Settings, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()
    stuck, failing, fine = unique("stuck"), unique("fail"), unique("fine")
    release = threading.Event()
    inside = threading.Event()

    @swarmop.on.create(
        "service", labels={"test": marker}, registry=registry, id="work", backoff=0.1
    )
    def work(name: str, **_: Any) -> str:
        calls.add(name)
        if name == stuck:
            inside.set()
            release.wait(60)
            return "released"
        if name == failing and not release.is_set():
            raise RuntimeError("until the stuck one is released")
        return "done"

    with OperatorRunner(settings, registry=registry) as runner:
        try:
            tracker.create_service(stuck, command=SLEEPER, replicas=0, labels={"test": marker})
            tracker.create_service(failing, command=SLEEPER, replicas=0, labels={"test": marker})
            assert inside.wait(60), "the stuck handler never started"
            wait_until(lambda: len(calls.of(failing)) >= 3, what="the failing one retried")
            tracker.create_service(fine, command=SLEEPER, replicas=0, labels={"test": marker})
            wait_status(runner, fine, Outcome.OK, "done")
            # Still stuck, still failing: neither held the other object up.
            assert calls.of(stuck) == [None] and runner.board.get(("service", stuck)) is None
            found = runner.board.get(("service", failing))
            assert found is not None and found.outcome is Outcome.PENDING
        finally:
            release.set()
        wait_status(runner, stuck, Outcome.OK, "released")
        wait_status(runner, failing, Outcome.OK, "done")
