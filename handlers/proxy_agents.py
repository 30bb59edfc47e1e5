"""What the nginx agents' reports say about the proxy service (pure).

Each agent beside nginx writes its outcome to `<prefix>/proxy/<svc>/status/
<agent>` (see docs/proxy.md). The proxy daemon reads them every pass and puts
what needs attention on the proxy service's own status: a config an agent
refused (`nginx -t` failed, or the reload did), and stale agents, which have
not taken the published config in time or have stopped reporting. An agent
reports again every heartbeat while idle, so a long silence means its task is
gone or stuck; a key silent for very long is a departed task's and is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from swarmop.proxy.publish import AgentStatus

from .decision import Status, worst

# The agent's default heartbeat is about a minute (SWARMOP_HEARTBEAT, bounded
# by its blocking query): three missed ones are not a slow network.
SILENT_AFTER = 180.0
# A status key nobody has written for this long belongs to a task that is gone
# (a replaced nginx task leaves its key behind).
GONE_AFTER = 1800.0
# How long an agent may take to apply a published config (it rate-limits its
# queries to one a second and tests the config before the reload).
CATCH_UP = 20.0
DETAIL_LIMIT = 300


@dataclass(frozen=True)
class Published:
    """The config the daemon last published (or found already in Consul), and when."""

    hash: str
    since: float  # wall-clock seconds


def report_time(text: str) -> float | None:
    """The agent's ISO 8601 UTC time as epoch seconds; None when unreadable."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line[:DETAIL_LIMIT]


def judge_agent(agent: AgentStatus, published: Published | None, now: float) -> Status | None:
    """This agent's problem, or None when it serves what it should (or is long gone)."""
    name = agent.task_host
    reported = report_time(agent.time)
    if reported is not None and now - reported > GONE_AFTER:
        return None
    if reported is not None and now - reported > SILENT_AFTER:
        return Status.pending(
            f"proxy: agent {name} stale: silent since {agent.time} (serves {agent.live_hash[:12]})"
        )
    if not agent.ok:
        detail = first_line(agent.message) or "no output"
        if agent.hash and agent.hash == agent.live_hash:
            return Status.error(
                f"proxy: agent {name} could not reload nginx with config {agent.hash[:12]}: "
                f"{detail}"
            )
        return Status.error(
            f"proxy: agent {name} refused config {agent.hash[:12] or '?'}: {detail}; "
            f"nginx keeps serving {agent.live_hash[:12] or 'its previous config'}"
        )
    if (
        published is not None
        and agent.live_hash != published.hash
        and now - published.since > CATCH_UP
    ):
        # No running count of seconds: the message must stay the same from one
        # pass to the next, or every pass would be a new report and log line.
        return Status.pending(
            f"proxy: agent {name} stale: serves {agent.live_hash[:12]}, not config "
            f"{published.hash[:12]} published at {iso_time(published.since)}"
        )
    return None


def agents_status(
    agents: Mapping[str, AgentStatus], published: Published | None, now: float
) -> Status | None:
    """One status for the proxy service from every agent; None when all is well.

    With no agent at all once a config is out, nothing applies it: said too.
    """
    found = [
        status
        for status in (judge_agent(agent, published, now) for _, agent in sorted(agents.items()))
        if status is not None
    ]
    live = [agent for agent in agents.values() if not _gone(agent, now)]
    if not live and published is not None and now - published.since > CATCH_UP:
        found.append(
            Status.pending(
                "proxy: no agent has reported: is the nginx service run from the swarmop "
                "image with CONSUL_HTTP_ADDR and SWARMOP_PROXY_SERVICE set?"
            )
        )
    top = worst(found)
    if top is None:
        return None
    return Status(top.outcome, "; ".join(_messages(found)))


def _gone(agent: AgentStatus, now: float) -> bool:
    reported = report_time(agent.time)
    return reported is not None and now - reported > GONE_AFTER


def _messages(statuses: Iterable[Status]) -> list[str]:
    rank = {"error": 0, "blocked": 1, "pending": 2, "ok": 3}
    return [status.message for status in sorted(statuses, key=lambda s: rank[s.outcome])]
