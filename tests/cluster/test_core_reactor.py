"""The reconciliation core against the real sandbox swarm and Consul."""

from __future__ import annotations

import functools
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import consul
import docker
import pytest
from core_state import stored_state  # next to this file, like the HA test harness
from ha_operators import Operators, operators

import swarmop
from swarmop.clients.swarm_write import update_service
from swarmop.registry import Registry
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.status import Outcome, decode_object_status, status_key
from swarmop.testing import OperatorRunner

__all__ = ["operators"]  # a fixture: used by name, not by reference

pytestmark = pytest.mark.cluster
KILL_HANDLERS = Path(__file__).with_name("kill_handlers.py")

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def make_settings(sandbox: SandboxInfo, prefix: str, with_consul: bool = True) -> Settings:
    return Settings(
        docker=resolve_docker(host=sandbox.manager_docker_host, env={}),
        consul=resolve_consul(addr=sandbox.consul_http_addr, env={}) if with_consul else None,
        prefix=prefix,
        resync_interval=20.0,
    )


class Calls:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[dict[str, Any]] = []

    def add(self, **item: Any) -> None:
        with self.lock:
            self.items.append(item)

    def count(self, **match: Any) -> int:
        with self.lock:
            return sum(all(i.get(k) == v for k, v in match.items()) for i in self.items)


@pytest.fixture
def calls() -> Iterator[Calls]:
    yield Calls()


def settle(runner: OperatorRunner, name: str) -> None:
    """Wait until the operator has handled the service's current essence and is idle."""
    op = runner.operator
    assert op is not None and op.context is not None and op.queue is not None
    ctx = op.context

    def handled() -> bool:
        attrs = ctx.reader.inspect_service(name)
        state = ctx.store.load(("service", name))
        if attrs is None or state is None or state.cycle is not None or state.last is None:
            return False
        return state.last["spec"] == attrs["Spec"] and op.queue is not None and not op.queue.busy()

    wait_until(handled, timeout=60, what=f"{name} handled and idle")


def test_patch_keeps_other_fields_and_own_write_does_not_loop(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    tracker: Tracker,
    prefix: str,
    calls: Calls,
) -> None:
    marker = unique("m")
    registry = Registry()

    @swarmop.on.create("service", labels={"test": marker}, registry=registry)
    @swarmop.on.update("service", labels={"test": marker}, registry=registry, id="upd")
    def mark(name: str, reason: str, patch: swarmop.Patch, **_: Any) -> None:
        calls.add(name=name, reason=reason)
        patch.set_label("seen", "yes")

    service_id = tracker.create_service(
        command=SLEEPER,
        replicas=2,
        labels={"test": marker, "keep": "me"},
        constraints=["node.role==worker"],
        endpoint_mode="vip",
        ports=[
            {"Protocol": "tcp", "PublishedPort": 18081, "TargetPort": 80, "PublishMode": "host"}
        ],
    )
    before = docker_api.inspect_service(service_id)["Spec"]
    name = before["Name"]
    with OperatorRunner(make_settings(sandbox, prefix), registry=registry) as runner:
        wait_until(
            lambda: docker_api.inspect_service(service_id)["Spec"]["Labels"].get("seen") == "yes",
            timeout=60,
            what="label written by the handler",
        )
        settle(runner, name)
        # A fresh pass over the object after our own write finds nothing new.
        assert runner.operator is not None and runner.operator.queue is not None
        passes = runner.operator.queue.passes
        runner._portal.call(runner.operator.queue.touch, ("service", name), None)  # type: ignore[union-attr]
        wait_until(lambda: runner.operator.queue.passes > passes, what="one more pass")  # type: ignore[union-attr]
        settle(runner, name)
        assert calls.count(name=name) == 1, calls.items
        status = runner.board.get(("service", name))
        assert status is not None and status.outcome is Outcome.OK
    after = docker_api.inspect_service(service_id)["Spec"]
    assert after["Mode"]["Replicated"]["Replicas"] == 2
    assert after["Labels"] == {**before["Labels"], "seen": "yes"}
    assert after["TaskTemplate"]["Placement"] == before["TaskTemplate"]["Placement"]
    assert after["EndpointSpec"] == before["EndpointSpec"]


def test_consul_key_triggers_update_like_a_label(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
    calls: Calls,
) -> None:
    marker = unique("m")
    registry = Registry()

    @swarmop.on.field(
        "service", field="desired.replicas", labels={"test": marker}, registry=registry
    )
    def replicas(name: str, old: Any, new: Any, desired: Any, **_: Any) -> None:
        source = desired.get("replicas").source.value if desired.get("replicas") else None
        calls.add(name=name, old=old, new=new, source=source)

    service_id = tracker.create_service(command=SLEEPER, replicas=1, labels={"test": marker})
    name = docker_api.inspect_service(service_id)["Spec"]["Name"]
    with OperatorRunner(make_settings(sandbox, prefix), registry=registry) as runner:
        # Label first.
        update_service(
            docker_api, service_id, lambda s: s["Labels"].__setitem__("swarmop.replicas", "2")
        )
        wait_until(
            lambda: calls.count(name=name, new=2, source="label") == 1, what="label change handled"
        )
        # Then a Consul key, which wins over the label.
        consul_client.kv.put(f"{prefix}/services/{name}/replicas", "3")
        wait_until(
            lambda: calls.count(name=name, old=2, new=3, source="consul") == 1,
            what="Consul key change handled",
        )
        # The status carries the desired value with its source.
        raw = wait_until(
            lambda: (
                (item := consul_client.kv.get(status_key(prefix, "service", name))[1])
                and b'"consul"' in item["Value"]
                and item
            ),
            what="status in Consul",
        )
        status = decode_object_status(raw["Value"])
        assert status.desired["replicas"].value == 3
        assert status.desired["replicas"].source == "consul"
        assert runner.exception is None


def test_progress_survives_restart_and_finished_handlers_do_not_rerun(
    *,
    sandbox: SandboxInfo,
    docker_api: docker.APIClient,
    tracker: Tracker,
    prefix: str,
    calls: Calls,
) -> None:
    marker = unique("m")
    registry = Registry()
    fail_first = {"left": 1}

    @swarmop.on.create("service", labels={"test": marker}, registry=registry, id="first")
    def first(name: str, **_: Any) -> None:
        calls.add(name=name, handler="first")

    @swarmop.on.create(
        "service", labels={"test": marker}, registry=registry, id="second", backoff=0.5
    )
    def second(name: str, **_: Any) -> None:
        calls.add(name=name, handler="second")
        if fail_first["left"]:
            raise swarmop.TemporaryError("not yet", delay=3600)

    service_id = tracker.create_service(command=SLEEPER, replicas=1, labels={"test": marker})
    name = docker_api.inspect_service(service_id)["Spec"]["Name"]
    settings = make_settings(sandbox, prefix)
    with OperatorRunner(settings, registry=registry):
        wait_until(lambda: calls.count(name=name, handler="second") == 1, what="second ran")
    # "Killed" mid-work: second is waiting for its retry. A new operator resumes it
    # (its delay is stored; we let it retry now by clearing the flag and waiting).
    fail_first["left"] = 0
    with OperatorRunner(settings, registry=registry) as runner:
        assert runner.operator is not None
        status = wait_until(lambda: (s := runner.board.get(("service", name))) and s, what="status")
        assert status.outcome is Outcome.PENDING
        assert calls.count(name=name, handler="first") == 1
        assert calls.count(name=name, handler="second") == 1
        ctx = runner.operator.context
        assert ctx is not None
        # Make the stored retry due now and poke the object.
        state = ctx.store.load(("service", name))
        assert state is not None and state.cycle is not None
        cycle = state.cycle.with_handler(
            "second", state.cycle.handlers["second"].__class__(started=1.0, retries=1)
        )
        ctx.store.save(("service", name), state.__class__(state.id, state.last, cycle))
        runner._portal.call(runner.operator.queue.touch, ("service", name), None)  # type: ignore[union-attr]
        wait_until(lambda: calls.count(name=name, handler="second") == 2, what="retry")
        settle(runner, name)
    assert calls.count(name=name, handler="first") == 1
    with OperatorRunner(settings, registry=registry) as runner:
        settle(runner, name)
    assert calls.count(name=name, handler="first") == 1
    assert calls.count(name=name, handler="second") == 2


def calls_in(path: Path, name: str) -> Counter[str]:
    """Handler -> calls on service `name`, from the lines kill_handlers.py appends."""
    if not path.exists():
        return Counter()
    lines = path.read_text(encoding="utf-8").splitlines()
    return Counter(
        handler
        for handler, _, service in (line.partition(" ") for line in lines)
        if service == name
    )


def test_operator_killed_mid_handler_resumes_the_unfinished_one(
    *,
    sandbox: SandboxInfo,
    tracker: Tracker,
    operators: Operators,
    tmp_path: Path,
) -> None:
    """`swarmop run` with progress in Consul is killed (SIGKILL) while a create
    handler runs: the restarted process reruns that handler and the ones after it,
    never the one that had finished; once the cycle is done, another kill and
    restart runs only the resume handler."""
    record = tmp_path / "calls"
    name = unique("kill")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"hatest": operators.run_id})
    start = functools.partial(operators.start, handlers=[KILL_HANDLERS], extra_args=["--no-ha"])
    env = {"KILLTEST_CALLS": str(record)}

    blocked = start("blocked", {**env, "KILLTEST_BLOCK": "second"})
    wait_until(lambda: calls_in(record, name)["second"] == 1, what="the second handler running")
    # The first handler's progress was stored before the second began.
    state = stored_state(sandbox, operators.prefix, "service", name)
    assert state is not None and state.cycle is not None and state.last is None
    assert state.cycle.handlers["kill.first"].done
    assert not state.cycle.handlers["kill.second"].done
    blocked.signal(signal.SIGKILL)
    assert blocked.popen.wait(30) == -signal.SIGKILL

    resumed = start("resumed", env)
    wait_until(lambda: calls_in(record, name)["third"] == 1, what="the cycle finished")
    done = wait_until(
        lambda: (
            (s := stored_state(sandbox, operators.prefix, "service", name))
            and s.cycle is None
            and s
        ),
        what="the finished cycle stored",
    )
    assert done.last is not None and done.last["spec"]["Name"] == name
    assert calls_in(record, name) == Counter(first=1, second=2, third=1)
    resumed.signal(signal.SIGKILL)
    assert resumed.popen.wait(30) == -signal.SIGKILL

    # Everything was finished: a new process only resumes the object.
    start("again", env)
    wait_until(lambda: calls_in(record, name)["resume"] == 1, what="the resume handler")
    assert calls_in(record, name) == Counter(first=1, second=2, third=1, resume=1)
