"""Retries, update detection and what reaches the status, against the real sandbox."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import docker
import pytest

import swarmop
from swarmop.clients.swarm_write import update_service
from swarmop.registry import Registry
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.settings import Settings
from swarmop.status import ObjectStatus, Outcome
from swarmop.testing import OperatorRunner

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


class Calls:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[str, str]] = []

    def add(self, handler: str, reason: str) -> None:
        with self.lock:
            self.items.append((handler, reason))

    def count(self, handler: str, reason: str | None = None) -> int:
        with self.lock:
            return sum(h == handler and reason in (None, r) for h, r in self.items)


@pytest.fixture
def calls() -> Iterator[Calls]:
    yield Calls()


def status_of(runner: OperatorRunner, name: str) -> ObjectStatus | None:
    return runner.board.get(("service", name))


def wait_status(runner: OperatorRunner, name: str, outcome: Outcome, text: str = "") -> None:
    def matches() -> ObjectStatus | None:
        found = status_of(runner, name)
        return found if found and found.outcome is outcome and text in found.message else None

    wait_until(matches, timeout=60, what=f"{name}: {outcome.value} status with {text!r}")


def set_label(api: docker.APIClient, service_id: str, name: str, value: str) -> None:
    update_service(api, service_id, lambda spec: spec["Labels"].__setitem__(name, value))


def test_temporary_error_is_retried_after_its_delay(
    *, settings: Settings, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()
    left = {"failures": 2}

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="flaky")
    def flaky(**_: Any) -> str:
        calls.add("flaky", "create")
        if left["failures"]:
            left["failures"] -= 1
            raise swarmop.TemporaryError("not yet", delay=1)
        return "done after retries"

    name = unique("tmp")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry) as runner:
        wait_status(runner, name, Outcome.OK, "done after retries")
        assert calls.count("flaky") == 3


def test_change_during_an_unfinished_create_keeps_the_create_retry(
    *, settings: Settings, docker_api: docker.APIClient, tracker: Tracker, calls: Calls
) -> None:
    """A create handler writes to its service and asks to be looked at again: the
    write's own event must not turn the unfinished create into an update (for which
    this module has no handler), which would drop the retry for good."""
    marker = unique("m")
    registry = Registry()

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="converge")
    def converge(service: swarmop.ServiceView, cluster: Any, **_: Any) -> str:
        calls.add("converge", "create")
        if service.labels.get("step") != "written":
            update_service(
                cluster.api, service.id, lambda spec: spec["Labels"].__setitem__("step", "written")
            )
            raise swarmop.TemporaryError("written, converging", delay=1)
        return "converged"

    name = unique("cnv")
    service_id = tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry) as runner:
        wait_status(runner, name, Outcome.OK, "converged")
        assert calls.count("converge") == 2
    assert docker_api.inspect_service(service_id)["Spec"]["Labels"]["step"] == "written"


def test_label_change_after_create_fires_update_and_its_result_shows(
    *, settings: Settings, docker_api: docker.APIClient, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="made")
    def made(**_: Any) -> str:
        calls.add("made", "create")
        return "created"

    @swarmop.on.update("service", labels={"test": marker}, registry=registry, id="changed")
    def changed(labels: dict[str, str], **_: Any) -> None:
        calls.add("changed", "update")
        if labels.get("colour") == "red":
            raise swarmop.BlockedError("red is not allowed")

    name = unique("upd")
    service_id = tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry) as runner:
        wait_status(runner, name, Outcome.OK, "created")
        set_label(docker_api, service_id, "colour", "red")
        wait_status(runner, name, Outcome.BLOCKED, "red is not allowed")
        found = status_of(runner, name)
        assert found is not None and found.handler == "changed"
        set_label(docker_api, service_id, "colour", "blue")
        wait_until(lambda: calls.count("changed") == 2, what="second update")
        wait_status(runner, name, Outcome.OK)
    assert calls.count("made") == 1


def test_blocked_with_recheck_is_looked_at_again(
    *, settings: Settings, tracker: Tracker, calls: Calls
) -> None:
    """Blocked by another object's state: no event on this one announces the fix."""
    marker = unique("m")
    registry = Registry()
    other = unique("dep")

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="needs")
    def needs(cluster: Any, **_: Any) -> str:
        calls.add("needs", "create")
        if cluster.service(other) is None:
            raise swarmop.BlockedError(f"{other} does not exist yet", recheck=1)
        return f"{other} found"

    name = unique("blk")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry) as runner:
        wait_status(runner, name, Outcome.BLOCKED, "does not exist yet")
        found = status_of(runner, name)
        assert found is not None and found.next_retry is not None
        tracker.create_service(other, command=SLEEPER, replicas=0)
        wait_status(runner, name, Outcome.OK, f"{other} found")
    assert calls.count("needs") >= 2


def test_timer_reports_on_the_status_and_withdraws(
    *, settings: Settings, tracker: Tracker, calls: Calls
) -> None:
    marker = unique("m")
    registry = Registry()
    verdict = {"outcome": "error", "message": "backend unreachable"}

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="made")
    def made(**_: Any) -> str:
        return "created"

    @swarmop.timer("service", interval=0.5, labels={"test": marker}, registry=registry, id="check")
    def check(name: str, cluster: Any, **_: Any) -> None:
        calls.add("check", "timer")
        cluster.report("service", name, verdict["outcome"], verdict["message"])

    name = unique("rep")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry) as runner:
        # The worse finding leads the message.
        wait_status(runner, name, Outcome.ERROR, "backend unreachable; created")
        verdict.update(outcome="ok", message="")
        wait_status(runner, name, Outcome.OK)
        found = status_of(runner, name)
        assert found is not None and found.message == "created"


def test_a_deleted_short_named_service_is_not_confused_with_another_by_id_prefix(
    *, settings: Settings, docker_api: docker.APIClient, tracker: Tracker, calls: Calls
) -> None:
    """Docker answers a name no service has with the service whose ID starts with it:
    once the short-named service is gone, its name must not find the other one."""
    marker = unique("m")
    registry = Registry()

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="mark")
    def mark(name: str, patch: swarmop.Patch, **_: Any) -> None:
        calls.add(name, "create")
        patch.set_label("handled-as", name)

    @swarmop.on.delete("service", labels={"test": marker}, registry=registry, id="gone")
    def gone(name: str, **_: Any) -> None:
        calls.add(name, "delete")

    other = unique("idp")
    other_id = tracker.create_service(other, command=SLEEPER, replicas=0, labels={"test": marker})
    short = other_id[:8]  # a name that is the start of the other service's ID
    short_id = tracker.create_service(short, command=SLEEPER, replicas=0, labels={"test": marker})
    with OperatorRunner(settings, registry=registry):
        wait_until(
            lambda: calls.count(other, "create") and calls.count(short, "create"),
            what="both services created",
        )
        docker_api.remove_service(short_id)
        assert docker_api.inspect_service(short)["ID"] == other_id  # what the operator gets
        wait_until(lambda: calls.count(short, "delete"), what=f"{short}'s delete handler")
    assert calls.count(short, "create") == 1
    assert calls.count(other, "delete") == 0
    labels = docker_api.inspect_service(other_id)["Spec"]["Labels"]
    assert labels["handled-as"] == other


def test_daemons_follow_when_and_never_hold_up_change_handlers(
    *, settings: Settings, docker_api: docker.APIClient, tracker: Tracker, calls: Calls
) -> None:
    """More sync daemons than handler slots, one of them started only once its
    when= holds: change handlers still run, and the daemon starts and stops with when=."""
    marker = unique("m")
    registry = Registry()
    slots = 2
    watching = threading.Event()
    stopped_watching = threading.Event()

    def hold(stopped: Any, **_: Any) -> None:
        while not stopped.wait(0.2):
            pass

    for number in range(slots + 1):
        swarmop.daemon("service", labels={"test": marker}, registry=registry, id=f"hold-{number}")(
            hold
        )

    @swarmop.daemon(
        "service",
        labels={"test": marker},
        when=lambda labels, **_: labels.get("watch") == "yes",
        registry=registry,
        id="watch",
    )
    def watch(stopped: Any, **_: Any) -> None:
        watching.set()
        while not stopped.wait(0.2):
            pass
        stopped_watching.set()

    @swarmop.on.update("service", labels={"test": marker}, registry=registry, id="changed")
    def changed(labels: dict[str, str], **_: Any) -> str:
        calls.add("changed", labels.get("watch", ""))
        return f"watch={labels.get('watch')}"

    name = unique("dmn")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=0, labels={"test": marker, "watch": "no"}
    )
    with OperatorRunner(replace(settings, max_workers=slots), registry=registry) as runner:
        wait_status(runner, name, Outcome.OK)  # handled as created, its daemons started
        set_label(docker_api, service_id, "watch", "yes")
        wait_status(runner, name, Outcome.OK, "watch=yes")
        assert watching.wait(60), "the daemon did not start once its when= held"
        set_label(docker_api, service_id, "watch", "no")
        wait_status(runner, name, Outcome.OK, "watch=no")
        assert stopped_watching.wait(60), "the daemon was not stopped when its when= failed"
    assert calls.count("changed", "yes") == 1
