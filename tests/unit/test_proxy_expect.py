"""Shared helpers for the proxy tests: parse rendered config with crossplane
and state, independently of the template, which directives each virtual host
must produce. Also tests that the helpers themselves notice foreign directives.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crossplane

from swarmop.proxy import VirtualHost

Directive = tuple[str, ...]

PROXY_HEADERS = (
    ("proxy_http_version", "1.1"),
    ("proxy_set_header", "Host $host"),
    ("proxy_set_header", "X-Real-IP $remote_addr"),
    ("proxy_set_header", "X-Forwarded-For $proxy_add_x_forwarded_for"),
    ("proxy_set_header", "X-Forwarded-Proto $scheme"),
)


@dataclass
class RawDesired:
    """Desired state handing raw values straight to swarmop.proxy, so its own
    allowlists (not the desired-state parsers in front of them) are tested."""

    values: dict[str, Any]
    errors: tuple[Any, ...] = field(default=())

    def value(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def parse_directives(config: str) -> list[Directive]:
    """Every directive in `config` as a path of (context..., name, args).

    Blocks are identified by content, not position: a server by its
    server_name, an upstream or location by its argument. Fails the test if
    crossplane reports a syntax error.
    """
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "swarmop.conf"
        path.write_text(config, encoding="utf-8")
        payload = crossplane.parse(str(path), single=True, check_ctx=False, check_args=False)
    assert payload["status"] == "ok", payload["errors"]
    found: list[Directive] = []
    _walk(payload["config"][0]["parsed"], (), found)
    return found


def _walk(items: list[dict[str, Any]], context: Directive, found: list[Directive]) -> None:
    for item in items:
        name, args = item["directive"], " ".join(item["args"])
        found.append((*context, name, args))
        if "block" in item:
            label = args
            if name == "server":
                names = [b["args"] for b in item["block"] if b["directive"] == "server_name"]
                label = " ".join(names[0]) if names else "?"
            _walk(item["block"], (*context, name, label), found)


def expected_directives(vhosts: Iterable[VirtualHost], listen: int = 80) -> set[Directive]:
    """What the default template must produce for `vhosts`, written out by hand."""
    hosts: dict[str, set[str]] = {}
    vhosts = list(vhosts)
    names = len({vhost.host for vhost in vhosts})
    hash_size = 512
    while hash_size < 4 * names:
        hash_size *= 2
    expected: set[Directive] = {
        ("server_names_hash_bucket_size", "512"),
        ("server_names_hash_max_size", str(hash_size)),
    }
    for vhost in vhosts:
        hosts.setdefault(vhost.host, set()).add(vhost.path)
        server = ("server", vhost.host)
        location = (*server, "location", vhost.path)
        if vhost.addresses:
            upstream = f"swarmop_{vhost.service}"
            expected.add(("upstream", upstream))
            for address in vhost.addresses:
                text = f"[{address}]" if address.version == 6 else str(address)
                expected.add(("upstream", upstream, "server", f"{text}:{vhost.port}"))
            expected.add((*location, "proxy_pass", f"http://{upstream}"))
            expected.update((*location, name, args) for name, args in PROXY_HEADERS)
        else:
            expected.add((*location, "return", "503"))
    for host, paths in hosts.items():
        expected.add(("server", ""))
        expected.add(("server", host, "listen", str(listen)))
        expected.add(("server", host, "server_name", host))
        for path in paths | {"/"}:
            expected.add(("server", host, "location", path))
        if "/" not in paths:
            expected.add(("server", host, "location", "/", "return", "404"))
    return expected


def directive_names(config: str) -> set[str]:
    return {directive[-2] for directive in parse_directives(config)}


ALLOWED_NAMES = {
    "server_names_hash_bucket_size",
    "server_names_hash_max_size",
    "upstream",
    "server",
    "listen",
    "server_name",
    "location",
    "proxy_pass",
    "proxy_http_version",
    "proxy_set_header",
    "return",
}


def test_parse_directives_sees_a_smuggled_server_block() -> None:
    smuggled = "server { listen 80; server_name a; location / { return 404; } }\n"
    smuggled += "server { listen 80; server_name evil; include /etc/passwd; }\n"
    directives = parse_directives(smuggled)
    assert ("server", "evil", "include", "/etc/passwd") in directives
    assert "include" in directive_names(smuggled)


def test_expected_directives_of_an_empty_upstream_is_503() -> None:
    vhost = VirtualHost("web", "test.local", 8080)
    assert ("server", "test.local", "location", "/", "return", "503") in expected_directives(
        [vhost]
    )
