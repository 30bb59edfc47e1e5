"""The `:` command line and connection options."""

from __future__ import annotations

import pytest
from swarmop.tui.commands import Command, CommandError, parse_command
from swarmop.tui.connection import ConnectionOptionError, resolve_connection


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (":svc", Command("view", ("services",))),
        ("nodes", Command("view", ("nodes",))),
        (":tasks web", Command("tasks", ("web",))),
        (":scale web 3", Command("scale", ("web", "3"))),
        (":drain node-2", Command("availability", ("node-2", "drain"))),
        (":filter kind:node web", Command("filter", ("kind:node web",))),
        (":q", Command("quit")),
    ],
)
def test_commands(line: str, expected: Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize("line", ["", ":", ":scale web", ":drain", ":bogus", ":tasks a b"])
def test_bad_commands(line: str) -> None:
    with pytest.raises(CommandError):
        parse_command(line)


def test_flags_beat_environment() -> None:
    env = {
        "DOCKER_HOST": "unix:///env.sock",
        "CONSUL_HTTP_ADDR": "127.0.0.1:9500",
        "CONSUL_HTTP_TOKEN": "env-token",
    }
    conn = resolve_connection(docker_host="unix:///flag.sock", consul_token="s3cret", environ=env)
    assert conn.docker_host == "unix:///flag.sock"
    assert conn.consul is not None
    assert conn.consul.address == "http://127.0.0.1:9500"
    assert conn.consul.token == "s3cret"
    assert "s3cret" not in repr(conn)  # the token never shows in logs


def test_no_consul_address_means_consul_not_configured() -> None:
    conn = resolve_connection(environ={})
    assert conn.consul is None
    assert conn.prefix == "swarmop"
    assert conn.docker_host.startswith("unix://")


@pytest.mark.parametrize(
    "options",
    [
        {"consul_addr": "ftp://x:1"},
        {"consul_addr": "host:notaport"},
        {"prefix": "/"},
        {"docker_host": "tcp://10.1.2.3:2375"},  # plaintext and not loopback
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, str]) -> None:
    with pytest.raises(ConnectionOptionError):
        resolve_connection(environ={}, **options)  # type: ignore[arg-type]
