"""Proxy wiring: upstream addresses per network, per-service statuses."""

from __future__ import annotations

from swarmop.handlers.decision import Outcome
from swarmop.handlers.proxy_plan import ProxiedService, addresses_by_network, plan_proxy

from swarmop.desired import merge_desired


def service(
    name: str,
    labels: dict[str, str],
    networks: tuple[str, ...] = ("front",),
    tasks: tuple[dict[str, list[str]], ...] = (),
) -> ProxiedService:
    return ProxiedService(name, merge_desired("service", labels, {}), networks, tasks)


def test_addresses_by_network_skips_ingress_and_keeps_empty_networks() -> None:
    found = addresses_by_network(
        ["front", "back", "ingress"],
        [{"front": ["10.0.1.5"], "ingress": ["10.255.0.4"]}, {"front": ["10.0.1.3"]}],
    )
    assert found == {"front": ["10.0.1.3", "10.0.1.5"], "back": []}


def test_service_with_tasks_gets_a_vhost_and_ok_status() -> None:
    plan = plan_proxy(
        [
            service(
                "web",
                {"swarmop.proxy.host": "test.local", "swarmop.proxy.port": "8080"},
                tasks=({"front": ["10.0.1.5"]}, {"front": ["10.0.1.6"]}),
            )
        ]
    )
    assert [vhost.service for vhost in plan.vhosts] == ["web"]
    assert plan.vhosts[0].upstream_servers == ("10.0.1.5:8080", "10.0.1.6:8080")
    assert plan.statuses["web"].outcome is Outcome.OK


def test_unproxied_services_are_ignored() -> None:
    plan = plan_proxy([service("db", {"swarmop.role": "db"})])
    assert plan.vhosts == () and plan.statuses == {}


def test_bad_service_is_excluded_and_others_kept() -> None:
    plan = plan_proxy(
        [
            service("web", {"swarmop.proxy.host": "test.local"}, tasks=({"front": ["10.0.1.5"]},)),
            service("evil", {"swarmop.proxy.host": "x; } server {"}),
        ]
    )
    assert [vhost.service for vhost in plan.vhosts] == ["web"]
    assert plan.statuses["evil"].outcome is Outcome.BLOCKED
    assert "proxy.host" in plan.statuses["evil"].message
    assert plan.statuses["web"].outcome is Outcome.OK


def test_no_running_task_is_pending() -> None:
    plan = plan_proxy([service("web", {"swarmop.proxy.host": "test.local"})])
    assert plan.statuses["web"].outcome is Outcome.PENDING


def test_several_networks_need_proxy_network() -> None:
    plan = plan_proxy(
        [service("web", {"swarmop.proxy.host": "test.local"}, networks=("front", "back"))]
    )
    assert plan.vhosts == ()
    assert "proxy.network" in plan.statuses["web"].message
    plan = plan_proxy(
        [
            service(
                "web",
                {"swarmop.proxy.host": "test.local", "swarmop.proxy.network": "back"},
                networks=("front", "back"),
                tasks=({"front": ["10.0.1.5"], "back": ["10.0.2.5"]},),
            )
        ]
    )
    assert plan.vhosts[0].upstream_servers == ("10.0.2.5:80",)


def test_conflicting_hosts_exclude_both() -> None:
    plan = plan_proxy(
        [
            service("a", {"swarmop.proxy.host": "test.local"}),
            service("b", {"swarmop.proxy.host": "test.local"}),
        ]
    )
    assert plan.vhosts == ()
    assert plan.statuses["a"].outcome is Outcome.BLOCKED
    assert "b" in plan.statuses["a"].message
