"""The real nginx binary accepts every rendered config (`nginx -t`), and the
check reports a broken one. No cluster needed: nginx runs with a temporary
prefix. Skips when the binary is missing, fails then under
SWARMOP_REQUIRE_CLUSTER=1."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from test_proxy_expect import RawDesired
from test_proxy_injection import CASES, _evil_service, _good_services
from test_proxy_property import SERVICES

from swarmop.proxy import ProxyServiceInput, VirtualHost, nginx_test, plan_proxy, render_nginx
from swarmop.proxy.nginx_check import DEFAULT_NGINX
from swarmop.sandbox.testing import skip_or_fail


@pytest.fixture(autouse=True)
def _need_nginx() -> None:
    if not DEFAULT_NGINX.exists():
        skip_or_fail(
            f"nginx binary {DEFAULT_NGINX} is missing (scripts/setup-machine.sh installs it)"
        )


def test_nginx_accepts_a_typical_config() -> None:
    plan = plan_proxy(_good_services())
    result = nginx_test(plan.config)
    assert result.ok, result.output


def test_nginx_accepts_an_empty_config() -> None:
    result = nginx_test(render_nginx([]))
    assert result.ok, result.output


def test_nginx_accepts_a_vhost_whose_upstream_has_no_tasks() -> None:
    result = nginx_test(render_nginx([VirtualHost("web", "test.local", 8080)]))
    assert result.ok, result.output


def test_nginx_accepts_wildcards_ipv6_long_names_and_paths() -> None:
    vhosts = [
        VirtualHost("wild", "*.example.com", 80, "/", addresses=("fd00::1", "10.0.0.1")),
        VirtualHost(
            "long", ".".join(["a" * 63] * 3), 65535, "/" + "x" * 255, addresses=("10.0.0.2",)
        ),
        VirtualHost("odd", "1.2.3.4", 1, "/a-b_c~d.e/", addresses=("10.0.0.3",)),
    ]
    result = nginx_test(render_nginx(vhosts))
    assert result.ok, result.output


def test_check_reports_a_broken_config() -> None:
    result = nginx_test("server { listen 80; location / { no_such_directive; } }\n")
    assert not result.ok
    assert "no_such_directive" in result.output


def test_the_injection_that_motivates_the_allowlist_passes_nginx_t() -> None:
    # Why validation cannot be left to nginx -t: this smuggled block is valid nginx.
    smuggled = (
        "server { listen 80; server_name x; } server { listen 80; server_name evil; "
        "location / { proxy_pass http://10.6.6.6; } }\n"
    )
    assert nginx_test(smuggled).ok


@pytest.mark.parametrize(("field", "value"), CASES[::7])
def test_config_with_a_hostile_service_passes_nginx_t(field: str, value: Any) -> None:
    plan = plan_proxy([*_good_services(), _evil_service(field, value)])
    result = nginx_test(plan.config)
    assert result.ok, result.output


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SERVICES)
def test_nginx_accepts_every_generated_config(specs: tuple[dict[str, Any], ...]) -> None:
    services = [
        ProxyServiceInput(spec["name"], RawDesired(spec["values"]), {"front": spec["addresses"]})
        for spec in specs
    ]
    result = nginx_test(plan_proxy(services).config)
    assert result.ok, result.output


def test_nginx_accepts_a_thousand_services_with_ten_tasks_each() -> None:
    vhosts = [
        VirtualHost(
            f"svc{n}",
            f"svc{n}.{'x' * 40}.example.com",
            8080,
            addresses=tuple(f"10.{n // 250}.{n % 250}.{task + 1}" for task in range(10)),
        )
        for n in range(1000)
    ]
    result = nginx_test(render_nginx(vhosts))
    assert result.ok, result.output
