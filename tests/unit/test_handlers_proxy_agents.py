"""Judging the nginx agents' reports for the proxy service's status (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from consul.exceptions import ACLPermissionDenied
from swarmop.handlers.decision import Outcome
from swarmop.handlers.proxy import AgentWatch
from swarmop.handlers.proxy_agents import (
    CATCH_UP,
    GONE_AFTER,
    SILENT_AFTER,
    Published,
    agents_status,
    iso_time,
    judge_agent,
)

from swarmop.clients.consul import ConsulUnavailable
from swarmop.proxy.publish import AgentStatus, parse_agent_status

NOW = 1_800_000_000.0
LIVE = "a" * 64
NEW = "b" * 64


def agent(
    state: str = "ok",
    *,
    tried: str = LIVE,
    live: str = LIVE,
    age: float = 5.0,
    message: str = "",
    name: str = "node-2-1",
) -> AgentStatus:
    return AgentStatus(name, state, tried, live, iso_time(NOW - age), message)


PUBLISHED = Published(LIVE, NOW - 100)


def test_an_agent_serving_the_published_config_is_fine() -> None:
    assert judge_agent(agent(), PUBLISHED, NOW) is None
    assert agents_status({"node-2-1": agent()}, PUBLISHED, NOW) is None


def test_a_refused_config_is_an_error_naming_agent_hash_and_nginx_output() -> None:
    refused = agent(
        "error",
        tried=NEW,
        message='\nnginx: [emerg] unknown directive "bogus" in /x.conf:3\nnginx: test failed\n',
    )
    found = judge_agent(refused, Published(NEW, NOW - 1), NOW)
    assert found is not None and found.outcome is Outcome.ERROR
    assert found.message == (
        f"proxy: agent node-2-1 refused config {NEW[:12]}: "
        f'nginx: [emerg] unknown directive "bogus" in /x.conf:3; '
        f"nginx keeps serving {LIVE[:12]}"
    )


def test_a_failed_reload_is_an_error_too() -> None:
    failed = agent("error", tried=NEW, live=NEW, message="nginx: [error] invalid PID number")
    found = judge_agent(failed, Published(NEW, NOW - 1), NOW)
    assert found is not None and found.outcome is Outcome.ERROR
    assert "could not reload nginx" in found.message and "invalid PID" in found.message


def test_an_agent_behind_the_published_config_is_stale_only_after_the_catch_up() -> None:
    published = Published(NEW, NOW - CATCH_UP + 1)
    assert judge_agent(agent(), published, NOW) is None
    later = NOW + 2
    found = judge_agent(agent(), published, later)
    assert found is not None and found.outcome is Outcome.PENDING
    assert f"serves {LIVE[:12]}, not config {NEW[:12]}" in found.message
    # The same text on the next pass: one report, one log line.
    assert judge_agent(agent(), published, later + 30) == found


def test_a_silent_agent_is_stale_and_a_long_silent_key_is_ignored() -> None:
    silent = judge_agent(agent(age=SILENT_AFTER + 1), PUBLISHED, NOW)
    assert silent is not None and silent.outcome is Outcome.PENDING
    assert "stale: silent since" in silent.message
    gone = agent(age=GONE_AFTER + 1, live="c" * 64)
    assert judge_agent(gone, PUBLISHED, NOW) is None


def test_no_agent_at_all_is_said_once_a_config_is_out() -> None:
    assert agents_status({}, Published(LIVE, NOW - 1), NOW) is None
    found = agents_status({}, Published(LIVE, NOW - CATCH_UP - 1), NOW)
    assert found is not None and "no agent has reported" in found.message
    only_gone = {"old": agent(age=GONE_AFTER + 1, name="old")}
    assert agents_status(only_gone, Published(LIVE, NOW - CATCH_UP - 1), NOW) == found


def test_the_worst_agent_decides_and_every_problem_is_listed_errors_first() -> None:
    agents = {
        "a": agent(age=SILENT_AFTER + 1, name="a"),
        "b": agent("error", tried=NEW, message="nginx: [emerg] x", name="b"),
        "c": agent(name="c"),
    }
    found = agents_status(agents, PUBLISHED, NOW)
    assert found is not None and found.outcome is Outcome.ERROR
    first, second = found.message.split("; nginx keeps serving")[0], found.message
    assert first.startswith("proxy: agent b refused")
    assert "proxy: agent a stale" in second and "agent c" not in second


def test_an_unreadable_time_is_not_taken_for_silence() -> None:
    odd = AgentStatus("x", "ok", LIVE, LIVE, "yesterday", "")
    assert judge_agent(odd, PUBLISHED, NOW) is None


def test_parse_reads_the_agents_reload_and_change_fields() -> None:
    raw = (
        '{"state":"ok","hash":"h","live_hash":"h","time":"2026-12-01T07:00:00Z","agent":"n",'
        '"reload":"ok","reload_time":"2026-12-01T07:00:00Z",'
        '"changed_time":"2026-12-01T07:00:00Z","added":["a.local"],"removed":[],'
        '"changed":["test.local","b.local"],"message":""}'
    )
    parsed = parse_agent_status("n", raw)
    assert (parsed.reload, parsed.reload_time) == ("ok", "2026-12-01T07:00:00Z")
    assert parsed.changed_time == "2026-12-01T07:00:00Z"
    assert (parsed.added, parsed.removed, parsed.changed) == (
        ("a.local",),
        (),
        ("test.local", "b.local"),
    )
    # An agent from before these fields: the defaults, not an error.
    old = parse_agent_status("n", '{"state":"ok","hash":"h","live_hash":"h","time":"t"}')
    assert old.ok and old.reload == "" and old.added == ()


def test_the_watch_says_only_what_changed_and_survives_an_unreachable_consul() -> None:
    answers: list[Mapping[str, AgentStatus] | Exception] = [
        {"n": agent("error", tried=NEW, message="nginx: [emerg] x", name="n")},
        {"n": agent("error", tried=NEW, message="nginx: [emerg] x", name="n")},
        ConsulUnavailable("down"),
        {"n": agent(tried=NEW, live=NEW, name="n")},
    ]

    def read() -> Mapping[str, AgentStatus]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    watch = AgentWatch(read)
    changed, found = watch.check(NEW, NOW)
    assert changed and found is not None and found.outcome is Outcome.ERROR
    assert watch.check(NEW, NOW + 1) == (False, found)
    assert watch.check(NEW, NOW + 2) == (False, found)
    assert watch.check(NEW, NOW + 3) == (True, None)


def test_reports_the_acl_refuses_to_show_are_said_not_raised() -> None:
    def read() -> Mapping[str, AgentStatus]:
        raise ACLPermissionDenied("403 Permission denied")

    changed, found = AgentWatch(read).check(NEW, NOW)
    assert changed and found is not None and found.outcome is Outcome.PENDING
    assert found.message == "proxy: cannot read the agents' reports: 403 Permission denied"
