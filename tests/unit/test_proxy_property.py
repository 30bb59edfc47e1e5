"""R29: for random mixes of valid and hostile label sets, the crossplane AST of
the rendered config is exactly the directive set expected per valid service,
and every invalid or conflicting service is reported, never rendered."""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_proxy_expect import ALLOWED_NAMES, RawDesired, expected_directives, parse_directives
from test_proxy_injection import CORPUS

from swarmop.proxy import ProxyServiceInput, VirtualHost, plan_proxy

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
HOST = st.builds(
    lambda wildcard, labels: ("*." if wildcard and len(labels) >= 2 else "") + ".".join(labels),
    st.booleans(),
    st.lists(LABEL, min_size=1, max_size=3),
)
SEGMENT = st.from_regex(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,6}", fullmatch=True)
PATH = st.builds(
    lambda segments, slash: "/" + "/".join(segments) + ("/" if slash and segments else ""),
    st.lists(SEGMENT, max_size=3),
    st.booleans(),
)
IPV4 = st.integers(min_value=1, max_value=65534).map(
    lambda n: str(ipaddress.IPv4Address(0x0A000000 + n))
)
IPV6 = st.integers(min_value=1, max_value=2**16).map(
    lambda n: str(ipaddress.IPv6Address(0xFD00 << 112 | n))
)
ADDRESSES = st.lists(st.one_of(IPV4, IPV6), max_size=4)
FIELDS = ("proxy.host", "proxy.port", "proxy.path", "proxy.network", "address")


@st.composite
def service_spec(draw: st.DrawFn, index: int) -> dict[str, Any]:
    values: dict[str, Any] = {
        "proxy.host": draw(st.sampled_from(["a.local", "b.local"]) | HOST),
        "proxy.port": draw(st.integers(min_value=1, max_value=65535)),
        "proxy.path": draw(st.sampled_from(["/", "/api"]) | PATH),
        "proxy.network": "front",
    }
    addresses = draw(ADDRESSES)
    bad = draw(st.none() | st.tuples(st.sampled_from(FIELDS), st.sampled_from(CORPUS)))
    if bad is not None:
        field, value = bad
        if field == "address":
            addresses = [*addresses, value]
        else:
            values[field] = value
    return {"name": f"svc{index}", "values": values, "addresses": addresses, "bad": bad}


SERVICES = st.integers(min_value=0, max_value=8).flatmap(
    lambda n: st.tuples(*(service_spec(i) for i in range(n)))
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SERVICES)
def test_rendered_ast_is_exactly_the_valid_services(specs: tuple[dict[str, Any], ...]) -> None:
    services = [
        ProxyServiceInput(spec["name"], RawDesired(spec["values"]), {"front": spec["addresses"]})
        for spec in specs
    ]
    plan = plan_proxy(services)

    valid = [spec for spec in specs if spec["bad"] is None]
    routes = Counter((spec["values"]["proxy.host"], spec["values"]["proxy.path"]) for spec in valid)
    served = [
        spec
        for spec in valid
        if routes[(spec["values"]["proxy.host"], spec["values"]["proxy.path"])] == 1
    ]
    expected_vhosts = [
        VirtualHost(
            spec["name"],
            spec["values"]["proxy.host"],
            spec["values"]["proxy.port"],
            spec["values"]["proxy.path"],
            "front",
            tuple(spec["addresses"]),
        )
        for spec in served
    ]

    assert sorted(vhost.service for vhost in plan.vhosts) == sorted(s["name"] for s in served)
    assert set(plan.errors) == {s["name"] for s in specs} - {s["name"] for s in served}
    directives = parse_directives(plan.config)
    assert set(directives) == expected_directives(expected_vhosts)
    assert {directive[-2] for directive in directives} <= ALLOWED_NAMES
