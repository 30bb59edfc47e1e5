"""R28: hostile values in any proxy field never reach the rendered config.

Every corpus value is tried in every field (host, port, path, network, the
service name, a task address). Each must be rejected by swarmop.proxy's own
allowlist (not only by the desired-state parser in front of it); the bad
service gets no config and is reported; the good services' config is
byte-for-byte what it is without the bad service, and crossplane finds only
the directives we expect.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_proxy_expect import ALLOWED_NAMES, RawDesired, expected_directives, parse_directives

from swarmop.desired import merge_desired
from swarmop.proxy import (
    InvalidProxyValue,
    ProxyServiceInput,
    VirtualHost,
    plan_proxy,
)
from swarmop.proxy.allowlist import (
    check_address,
    check_hostname,
    check_name,
    check_network,
    check_path,
    check_port,
)

# Hostile in every field: none of these may appear anywhere in a config.
CORPUS: list[str] = [
    "x; } server { listen 80; }",
    "test.local; } server { listen 81; location / { proxy_pass http://evil; } }",
    "test.local;",
    "include /etc/passwd",
    "test.local; include /etc/nginx/*.conf",
    "test.local\n",
    "test.local\nserver_name evil",
    "test.local\r",
    "test.local\r\nX-Injected: 1",
    "\n",
    '"test.local"',
    "'test.local'",
    "test.local'",
    "$host",
    "${jndi:ldap://x}",
    "test.local#",
    "# comment",
    "{",
    "}",
    ";",
    "test.local{",
    "test.local}",
    "content_by_lua_block { os.execute('id') }",
    "access_by_lua 'x'",
    "test.local\x00",
    "\x00",
    "test\\.local",
    "test.local\\n",
    "t\u0435st.local",  # Cyrillic small ie looks like "e"
    "test\u3002local",  # ideographic full stop
    "test\uff0elocal",  # fullwidth full stop
    "test\u2024local",  # one dot leader
    "\uff54\uff45\uff53\uff54.local",  # fullwidth "test"
    "\u212aelvin.local",  # Kelvin sign: matches [k] under re.IGNORECASE
    "test.local\u200b",  # zero-width space
    "test.local\u00a0",  # no-break space
    "test.local\u2028",  # line separator
    "test.local\v",
    "test.local\f",
    "a" * 300,
    "a" * 64 + ".local",
    ("abcdefgh." * 30) + "local",
    "test local",
    "test\tlocal",
    " test.local",
    "test.local ",
    ".test.local",
    "..",
    "",
    "test.local%0aserver",
    "%0a",
    "test.local%3B",
    "-test.local",
    "*",
    "a.*.local",
    "`id`",
    "test.local|id",
    "<script>",
    "/../etc",
    "80; proxy_pass http://evil",
    "10.0.0.1; server 6.6.6.6",
    "fe80::1%eth0;}",
]

# Hostile (or merely invalid) only in the field named.
FIELD_CORPUS: dict[str, list[Any]] = {
    "proxy.host": [
        "test.local.",
        "test..local",
        "test-.local",
        "*.local",
        "test_local.x",
        "test.local:80",
        "http://test.local",
        "test.local/x",
        "10.0.0.1 evil",
        None.__class__.__name__ + "\u0131.local",  # dotless i
    ],
    "proxy.port": [
        "0",
        "65536",
        "-1",
        "+80",
        "80 ",
        " 80",
        "0x50",
        "1e3",
        "80.0",
        "\uff18\uff10",  # fullwidth 80
        "\u0668\u0660",  # Arabic-Indic 80: str.isdigit() and int() accept it
        "999999",
        0,
        70000,
        True,
        8.0,
    ],
    "proxy.path": [
        "x",
        "~/x",
        "/a/../b",
        "/a/./b",
        "/..",
        "//evil",
        "/a//b",
        "/a;b",
        "/a b",
        "/a?x=1",
        "/a#frag",
        "/a%2e%2e/",
        "/\u00e9",
        "/" + "a" * 300,
        "/a{",
        "/$uri",
    ],
    "proxy.network": ["-net", ".net", "_net", "net/x", "net:x", "a" * 65, "net@x"],
    "service": ["-web", ".web", "web/x", "a" * 64, "web:1"],
    "address": [
        "10.0.0.1:80",
        "fe80::1%eth0",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "10.0.0.256",
        "010.0.0.1",
        "\uff11\uff10.0.0.1",
        "localhost",
        "10.0.0.1/33",
        "10.0.0.1\n",
    ],
}

CASES = [(field, value) for field in FIELD_CORPUS for value in CORPUS] + [
    (field, value) for field, values in FIELD_CORPUS.items() for value in values
]


def _good_services() -> list[ProxyServiceInput]:
    return [
        ProxyServiceInput(
            "web",
            RawDesired({"proxy.host": "test.local", "proxy.port": 8080}),
            {"front": ["10.0.1.5/24", "10.0.1.4/24"]},
        ),
        ProxyServiceInput(
            "api",
            RawDesired(
                {"proxy.host": "test.local", "proxy.path": "/api", "proxy.network": "front"}
            ),
            {"front": ["10.0.1.9"], "back": ["10.0.2.9"]},
        ),
        ProxyServiceInput("idle", RawDesired({"proxy.host": "idle.local"}), {"front": []}),
    ]


def _evil_service(field: str, value: Any) -> ProxyServiceInput:
    values: dict[str, Any] = {
        "proxy.host": "evil.local",
        "proxy.port": 80,
        "proxy.path": "/",
        "proxy.network": "front",
    }
    name = "evil"
    addresses = ["10.0.1.66"]
    if field == "service":
        name = value
    elif field == "address":
        addresses.append(value)
    else:
        values[field] = value
    return ProxyServiceInput(name, RawDesired(values), {"front": addresses})


BASELINE = plan_proxy(_good_services())

CHECKS = {
    "proxy.host": check_hostname,
    "proxy.port": check_port,
    "proxy.path": check_path,
    "proxy.network": check_network,
    "service": check_name,
    "address": check_address,
}


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 50
    assert len(CASES) >= 6 * 50


def test_baseline_serves_the_good_services() -> None:
    assert [vhost.service for vhost in BASELINE.vhosts] == ["api", "idle", "web"]
    assert BASELINE.errors == {}
    assert set(parse_directives(BASELINE.config)) == expected_directives(BASELINE.vhosts)


@pytest.mark.parametrize(("field", "value"), CASES)
def test_hostile_value_is_rejected_before_rendering(field: str, value: Any) -> None:
    with pytest.raises(InvalidProxyValue):
        CHECKS[field](value)


@pytest.mark.parametrize(("field", "value"), CASES)
def test_hostile_service_is_excluded_and_others_are_unchanged(field: str, value: Any) -> None:
    evil = _evil_service(field, value)
    plan = plan_proxy([*_good_services(), evil])

    assert evil.name in plan.errors
    assert plan.status_of(evil.name) == "error"
    assert all(vhost.service != evil.name for vhost in plan.vhosts)
    assert plan.config == BASELINE.config
    assert plan.config_hash == BASELINE.config_hash
    assert "evil" not in plan.config
    directives = parse_directives(plan.config)
    assert set(directives) == expected_directives(BASELINE.vhosts)
    assert {directive[-2] for directive in directives} <= ALLOWED_NAMES


@pytest.mark.parametrize("value", [v for v in CORPUS if v])
@pytest.mark.parametrize("field", ["proxy.host", "proxy.port", "proxy.path", "proxy.network"])
def test_hostile_label_is_excluded_through_the_desired_state_parser(field: str, value: str) -> None:
    labels = {
        "swarmop.proxy.host": "evil.local",
        "swarmop.proxy.network": "front",
        f"swarmop.{field}": value,
    }
    state = merge_desired("service", labels, {})
    plan = plan_proxy([*_good_services(), ProxyServiceInput("evil", state, {"front": []})])
    assert {directive[-2] for directive in parse_directives(plan.config)} <= ALLOWED_NAMES
    if state.errored(field):
        assert "evil" in plan.errors
        assert plan.config == BASELINE.config
    else:
        # The parser canonicalised it (it strips surrounding blanks): what it
        # kept must itself pass the proxy allowlist unchanged.
        accepted = state.value(field)
        assert CHECKS[field](accepted) == accepted


@pytest.mark.parametrize(("field", "value"), CASES)
def test_a_virtual_host_cannot_hold_a_hostile_value(field: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"service": "evil", "host": "evil.local", "port": 80}
    key = {
        "proxy.host": "host",
        "proxy.port": "port",
        "proxy.path": "path",
        "proxy.network": "network",
        "service": "service",
    }.get(field)
    if key is None:
        kwargs["addresses"] = (value,)
    else:
        kwargs[key] = value
    with pytest.raises(InvalidProxyValue):
        VirtualHost(**kwargs)
