"""Proxy wiring: upstream addresses per network, per-service statuses."""

from __future__ import annotations

from swarmop.handlers.decision import Outcome
from swarmop.handlers.proxy_plan import addresses_by_network, proxy_statuses

from swarmop.desired import merge_desired
from swarmop.proxy.plan import ProxyServiceInput, plan_proxy


def service(
    name: str,
    labels: dict[str, str],
    networks: tuple[str, ...] = ("front",),
    tasks: tuple[dict[str, list[str]], ...] = (),
) -> ProxyServiceInput:
    return ProxyServiceInput(
        name, merge_desired("service", labels, {}), addresses_by_network(networks, tasks)
    )


def test_addresses_by_network_skips_ingress_and_keeps_empty_networks() -> None:
    found = addresses_by_network(
        ["front", "back", "ingress"],
        [{"front": ["10.0.1.5"], "ingress": ["10.255.0.4"]}, {"front": ["10.0.1.3"]}],
    )
    assert found == {"front": ["10.0.1.3", "10.0.1.5"], "back": []}


def test_addresses_from_tasks_on_unlisted_networks_still_count() -> None:
    assert addresses_by_network([], [{"front": ["10.0.1.5"]}]) == {"front": ["10.0.1.5"]}


def test_service_with_tasks_is_served_and_ok() -> None:
    plan = plan_proxy(
        [
            service(
                "web",
                {"swarmop.proxy.host": "test.local", "swarmop.proxy.port": "8080"},
                tasks=({"front": ["10.0.1.5"]}, {"front": ["10.0.1.6"]}),
            )
        ]
    )
    assert "10.0.1.5:8080" in plan.config and "10.0.1.6:8080" in plan.config
    statuses = proxy_statuses(plan)
    assert statuses["web"].outcome is Outcome.OK
    assert "2 task(s) on front" in statuses["web"].message


def test_unproxied_services_get_no_status() -> None:
    assert proxy_statuses(plan_proxy([service("db", {"swarmop.role": "db"})])) == {}


def test_bad_service_is_excluded_and_reported_others_kept() -> None:
    plan = plan_proxy(
        [
            service("web", {"swarmop.proxy.host": "test.local"}, tasks=({"front": ["10.0.1.5"]},)),
            service("evil", {"swarmop.proxy.host": "x; } server {"}),
        ]
    )
    statuses = proxy_statuses(plan)
    assert statuses["evil"].outcome is Outcome.BLOCKED
    assert "proxy.host" in statuses["evil"].message
    assert statuses["web"].outcome is Outcome.OK
    assert "x;" not in plan.config


def test_no_running_task_is_pending() -> None:
    statuses = proxy_statuses(plan_proxy([service("web", {"swarmop.proxy.host": "test.local"})]))
    assert statuses["web"].outcome is Outcome.PENDING


def test_several_networks_need_proxy_network() -> None:
    statuses = proxy_statuses(
        plan_proxy([service("web", {"swarmop.proxy.host": "test.local"}, ("front", "back"))])
    )
    assert statuses["web"].outcome is Outcome.BLOCKED
    assert "proxy.network" in statuses["web"].message


def test_conflicting_hosts_exclude_both() -> None:
    plan = plan_proxy(
        [
            service("a", {"swarmop.proxy.host": "test.local"}),
            service("b", {"swarmop.proxy.host": "test.local"}),
        ]
    )
    statuses = proxy_statuses(plan)
    assert statuses["a"].outcome is Outcome.BLOCKED and "b" in statuses["a"].message
    assert statuses["b"].outcome is Outcome.BLOCKED
