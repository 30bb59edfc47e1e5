"""The proxy daemon's core: plan, debounce, publish; and the status combiner."""

from __future__ import annotations

import pytest
from swarmop.handlers.decision import Outcome, Status
from swarmop.handlers.proxy import ProxyKeeper, proxy_inputs
from swarmop.handlers.report import combine, raise_for

import swarmop
from swarmop.desired import merge_desired
from swarmop.proxy.debounce import ReloadDebouncer
from swarmop.proxy.plan import ProxyPlan, ProxyServiceInput
from swarmop.proxy.publish import PublishResult
from swarmop.proxy.render import NginxRenderer
from swarmop.views import ServiceView, TaskView


def web(addresses: list[str], host: str = "test.local") -> ProxyServiceInput:
    desired = merge_desired("service", {"swarmop.proxy.host": host}, {})
    return ProxyServiceInput("web", desired, {"front": addresses})


def keeper(results: list[PublishResult] | None = None) -> tuple[ProxyKeeper, list[ProxyPlan]]:
    published: list[ProxyPlan] = []

    def publish(plan: ProxyPlan) -> PublishResult:
        published.append(plan)
        return results.pop(0) if results else PublishResult.PUBLISHED

    return (
        ProxyKeeper(
            publish=publish,
            renderer=NginxRenderer(),
            debouncer=ReloadDebouncer(quiet=0.2, max_delay=2.0),
        ),
        published,
    )


def test_burst_of_100_changes_publishes_few_times_and_ends_on_the_last() -> None:
    proxy, published = keeper()
    now = 0.0
    for step in range(100):  # 100 different upstream sets within one second
        proxy.tick([web([f"10.0.1.{step % 250 + 1}"])], now)
        now += 0.01
    for _ in range(50):  # then quiet
        proxy.tick([web(["10.0.1.100"])], now)
        now += 0.1
    assert 1 <= len(published) <= 3
    assert "10.0.1.100:80" in published[-1].config


def test_unchanged_config_is_not_published_again() -> None:
    proxy, published = keeper()
    for step in range(30):
        proxy.tick([web(["10.0.1.5"])], step * 0.5)
    assert len(published) == 1


def test_conflict_plans_again() -> None:
    proxy, published = keeper([PublishResult.CONFLICT])
    for step in range(10):
        proxy.tick([web(["10.0.1.5"])], step * 0.5)
    assert len(published) == 2
    assert proxy.publishes == 1


def test_changed_errors_are_reported_once() -> None:
    proxy, _ = keeper()
    bad = ProxyServiceInput(
        "evil", merge_desired("service", {"swarmop.proxy.host": "a;b"}, {}), {"front": []}
    )
    _, _, changed = proxy.tick([web(["10.0.1.5"]), bad], 0.0)
    assert set(changed) == {"evil"}
    assert changed["evil"].startswith("proxy: excluded: proxy.host: ")
    _, _, changed = proxy.tick([web(["10.0.1.5"]), bad], 1.0)
    assert changed == {}
    _, _, changed = proxy.tick([web(["10.0.1.5"])], 2.0)
    assert changed == {"evil": ""}


def test_proxy_inputs_group_running_tasks_by_service() -> None:
    service = ServiceView(
        {
            "ID": "s1",
            "Spec": {
                "Name": "web",
                "Labels": {"swarmop.proxy.host": "test.local"},
                "TaskTemplate": {"Networks": [{"Target": "n1"}]},
            },
        }
    )
    other = ServiceView({"ID": "s2", "Spec": {"Name": "db", "Labels": {}}})
    task = TaskView(
        {
            "ID": "t1",
            "ServiceID": "s1",
            "DesiredState": "running",
            "Status": {"State": "running"},
            "NetworksAttachments": [
                {"Network": {"Spec": {"Name": "front"}}, "Addresses": ["10.0.1.7/24"]}
            ],
        }
    )
    inputs = proxy_inputs(
        [service, other],
        [task],
        {"n1": "front"},
        lambda s: merge_desired("service", s.labels, {}),
    )
    assert [(i.name, dict(i.addresses_by_network)) for i in inputs] == [
        ("web", {"front": ["10.0.1.7"]})
    ]


def test_combine_keeps_the_worst_and_its_message_first() -> None:
    status = combine(
        [Status.ok("2/2 running"), Status.pending("converging"), Status.error("refused")]
    )
    assert status.outcome is Outcome.ERROR
    assert status.message == "refused; converging"
    assert combine([Status.ok("a"), Status.ok("b")]) == Status.ok("a; b")
    assert combine([]).outcome is Outcome.OK


def test_raise_for_maps_outcomes_to_the_cores_errors() -> None:
    assert raise_for(Status.ok("3/3 replicas running"), recheck=3) == "3/3 replicas running"
    with pytest.raises(swarmop.TemporaryError) as pending:
        raise_for(Status.pending("converging"), recheck=3)
    assert pending.value.delay == 3
    with pytest.raises(swarmop.BlockedError) as blocked:
        raise_for(Status.blocked("bad value"), recheck=3)
    assert blocked.value.recheck is None
    with pytest.raises(swarmop.BlockedError) as elsewhere:
        raise_for(Status.blocked("no such service", recheck=True), recheck=3)
    assert str(elsewhere.value) == "no such service"
    assert elsewhere.value.recheck == 15
    with pytest.raises(swarmop.PermanentError) as refused:
        raise_for(Status.error("refused"), recheck=3)
    assert not isinstance(refused.value, swarmop.BlockedError)


def test_blocked_with_a_part_still_converging_is_looked_at_again() -> None:
    status = combine([Status.blocked("proxy: excluded"), Status.pending("converging: 1/2")])
    assert status.outcome is Outcome.BLOCKED and status.recheck
    assert status.message == "proxy: excluded; converging: 1/2"
    assert not combine([Status.blocked("proxy: excluded"), Status.ok("2/2")]).recheck
