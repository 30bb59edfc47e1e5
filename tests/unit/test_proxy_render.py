"""Rendering and planning: determinism, empty upstreams, conflicts, templates."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import jinja2
import pytest
from test_proxy_expect import RawDesired, expected_directives, parse_directives

from swarmop.desired import merge_desired
from swarmop.proxy import (
    DuplicateRoute,
    InvalidProxyValue,
    NginxRenderer,
    ProxyServiceInput,
    VirtualHost,
    config_hash,
    drop_conflicts,
    plan_proxy,
    render_nginx,
)


def _service(name: str, addresses: list[str], **values: object) -> ProxyServiceInput:
    fields = {f"proxy.{key}": value for key, value in values.items()}
    return ProxyServiceInput(name, RawDesired(fields), {"front": addresses})


def test_output_ignores_input_order_and_address_order() -> None:
    services = [
        _service("web", ["10.0.1.5/24", "10.0.1.3/24", "fd00::2", "10.0.1.4/24"], host="a.local"),
        _service("api", ["10.0.1.9"], host="a.local", path="/api"),
        _service("blog", ["10.0.1.7"], host="b.local", port=8080),
    ]
    first = plan_proxy(services)
    for seed in range(5):
        shuffled = [
            ProxyServiceInput(
                s.name,
                s.desired,
                {
                    "front": random.Random(seed).sample(
                        list(s.addresses_by_network["front"]), len(s.addresses_by_network["front"])
                    )
                },
            )
            for s in random.Random(seed).sample(services, len(services))
        ]
        again = plan_proxy(shuffled)
        assert again.config == first.config
        assert again.config_hash == first.config_hash
    servers = [line.strip() for line in first.config.splitlines() if line.startswith("    server ")]
    assert servers == [
        "server 10.0.1.9:80;",
        "server 10.0.1.7:8080;",
        "server 10.0.1.3:80;",
        "server 10.0.1.4:80;",
        "server 10.0.1.5:80;",
        "server [fd00::2]:80;",
    ]
    assert first.config_hash == config_hash(first.config)


def test_hash_changes_when_an_address_changes() -> None:
    one = plan_proxy([_service("web", ["10.0.1.5"], host="a.local")])
    two = plan_proxy([_service("web", ["10.0.1.6"], host="a.local")])
    assert one.config_hash != two.config_hash


def test_service_without_running_tasks_answers_503_and_has_no_upstream() -> None:
    plan = plan_proxy([_service("web", [], host="test.local")])
    directives = set(parse_directives(plan.config))
    assert ("server", "test.local", "location", "/", "return", "503") in directives
    assert not any(directive[0] == "upstream" for directive in directives)
    assert directives == expected_directives(plan.vhosts)


def test_unproxied_services_are_ignored() -> None:
    plan = plan_proxy([ProxyServiceInput("db", RawDesired({}), {"back": ["10.0.2.2"]})])
    assert plan.vhosts == ()
    assert plan.errors == {}
    assert plan.status_of("db") is None
    assert set(parse_directives(plan.config)) == expected_directives([])


def test_conflicting_services_are_both_excluded_and_reported() -> None:
    plan = plan_proxy(
        [
            _service("a", ["10.0.1.1"], host="test.local"),
            _service("b", ["10.0.1.2"], host="TEST.local"),
            _service("c", ["10.0.1.3"], host="test.local", path="/c"),
        ]
    )
    assert [vhost.service for vhost in plan.vhosts] == ["c"]
    assert set(plan.errors) == {"a", "b"}
    assert plan.errors["a"][0].field == "conflict"
    assert "b" in plan.errors["a"][0].message
    assert "a" in plan.errors["b"][0].message


def test_drop_conflicts_keeps_distinct_routes() -> None:
    kept, errors = drop_conflicts(
        [VirtualHost("b", "x.local", 80, "/b"), VirtualHost("a", "x.local", 80, "/")]
    )
    assert [vhost.service for vhost in kept] == ["a", "b"]
    assert errors == []


def test_render_refuses_a_duplicate_route() -> None:
    with pytest.raises(DuplicateRoute):
        render_nginx([VirtualHost("a", "x.local", 80), VirtualHost("b", "x.local", 81)])


def test_ambiguous_or_missing_network_is_reported() -> None:
    several = ProxyServiceInput(
        "web", RawDesired({"proxy.host": "a.local"}), {"front": ["10.0.1.1"], "back": []}
    )
    missing = ProxyServiceInput(
        "api", RawDesired({"proxy.host": "b.local", "proxy.network": "nope"}), {"front": []}
    )
    none = ProxyServiceInput("idle", RawDesired({"proxy.host": "c.local"}), {})
    plan = plan_proxy([several, missing, none])
    assert plan.vhosts == ()
    assert "set proxy.network" in plan.errors["web"][0].message
    assert "not attached to 'nope'" in plan.errors["api"][0].message
    assert "no network" in plan.errors["idle"][0].message


def test_desired_state_errors_exclude_the_service() -> None:
    state = merge_desired(
        "service", {"swarmop.proxy.host": "a.local", "swarmop.proxy.port": "x"}, {}
    )
    plan = plan_proxy([ProxyServiceInput("web", state, {"front": ["10.0.1.1"]})])
    assert plan.vhosts == ()
    assert plan.errors["web"][0].field == "proxy.port"


def test_consul_key_wins_over_label_for_proxy_fields() -> None:
    state = merge_desired(
        "service",
        {"swarmop.proxy.host": "label.local", "swarmop.proxy.port": "80"},
        {"proxy.host": "key.local"},
    )
    plan = plan_proxy([ProxyServiceInput("web", state, {"front": ["10.0.1.1"]})])
    assert [vhost.host for vhost in plan.vhosts] == ["key.local"]


def test_hostname_is_lower_cased_and_ipv6_is_bracketed() -> None:
    vhost = VirtualHost("web", "Test.Local", 8080, addresses=("fd00::1", "10.0.0.2/24"))
    assert vhost.host == "test.local"
    assert vhost.upstream_servers == ("10.0.0.2:8080", "[fd00::1]:8080")


def test_user_template_directory_overrides_the_packaged_template(tmp_path: Path) -> None:
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "swarmop.conf.j2").write_text(
        "{% for s in servers %}# {{ s.host }}\n{% endfor %}"
    )
    text = NginxRenderer(tmp_path).render([VirtualHost("web", "a.local", 80)])
    assert text == "# a.local\n"


def test_user_directory_without_the_template_falls_back_to_the_package(tmp_path: Path) -> None:
    vhosts = [VirtualHost("web", "a.local", 80)]
    assert NginxRenderer(tmp_path).render(vhosts) == render_nginx(vhosts)


def test_undefined_template_variable_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "swarmop.conf.j2").write_text("server_name {{ hots }};\n")
    with pytest.raises(jinja2.UndefinedError):
        NginxRenderer(tmp_path).render([VirtualHost("web", "a.local", 80)])


def test_listen_port_is_configurable() -> None:
    vhosts = [VirtualHost("web", "a.local", 80)]
    directives = set(parse_directives(render_nginx(vhosts, listen_port=8081)))
    assert directives == expected_directives(vhosts, listen=8081)


@pytest.mark.parametrize(
    "address",
    [
        ipaddress.IPv4Address("0.0.0.0"),
        ipaddress.IPv6Address("ff02::1"),
        ipaddress.IPv6Address("fe80::1%eth0"),
    ],
)
def test_typed_addresses_are_checked_too(address: object) -> None:
    with pytest.raises(InvalidProxyValue):
        VirtualHost("web", "a.local", 80, addresses=(address,))  # type: ignore[arg-type]
