"""The proxy daemon reports each service it leaves out on that service's status,
and the agents' refusals on the proxy service's; it renders with the user's
templates named when it starts.

Driven through `keep_proxy_config` with fakes for the Docker API, Consul and
the `cluster` kwarg, which records the reports. (Publishing, debounced on the
real clock, is the keeper's and is tested in test_handlers_proxy_keeper.)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import swarmop.handlers.proxy as proxy_handler

from swarmop.clients.consul import KVEntry
from swarmop.desired import DesiredState, merge_desired

NETWORK_ID = "n" * 25


def service(name: str, **labels: str) -> dict[str, Any]:
    return {
        "ID": f"id-{name}",
        "Spec": {
            "Name": name,
            "Labels": labels,
            "TaskTemplate": {"Networks": [{"Target": NETWORK_ID}]},
        },
    }


def task(name: str, address: str) -> dict[str, Any]:
    return {
        "ID": f"task-{name}",
        "ServiceID": f"id-{name}",
        "DesiredState": "running",
        "Status": {"State": "running"},
        "NetworksAttachments": [
            {"Network": {"ID": NETWORK_ID, "Spec": {"Name": "front"}}, "Addresses": [address]}
        ],
    }


class FakeKV:
    def __init__(self) -> None:
        self.data: dict[str, KVEntry] = {}

    def get(self, key: str) -> KVEntry | None:
        return self.data.get(key)

    def get_tree(self, prefix: str) -> tuple[int, dict[str, KVEntry]]:
        found = {key: entry for key, entry in self.data.items() if key.startswith(prefix)}
        return max((entry.modify_index for entry in found.values()), default=0), found

    def put(self, key: str, value: str | bytes, *, cas: int | None = None) -> bool:
        current = self.data.get(key)
        if cas is not None and cas != (current.modify_index if current else 0):
            return False
        text = value.decode() if isinstance(value, bytes) else value
        self.data[key] = KVEntry(key, text, (current.modify_index if current else 0) + 1)
        return True


class FakeApi:
    """Each listing returns the next step's services and tasks (the last one repeats)."""

    def __init__(self, steps: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> None:
        self.steps = steps
        self.step = -1

    def services(self) -> list[dict[str, Any]]:
        self.step = min(self.step + 1, len(self.steps) - 1)
        return self.steps[self.step][0]

    def tasks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.steps[self.step][1]

    def networks(self) -> list[dict[str, Any]]:
        return [{"Id": NETWORK_ID, "Name": "front"}]


@dataclass
class FakeCluster:
    api: FakeApi
    consul: FakeKV
    prefix: str = "swarmop"

    def __post_init__(self) -> None:
        self.reports: list[tuple[str, str, str, str]] = []

    def desired(self, kind: str, name: str, labels: Mapping[str, str]) -> DesiredState:
        return merge_desired("service", labels, {})

    def report(self, kind: str, name: str, outcome: str, message: str = "") -> None:
        self.reports.append((kind, name, str(outcome), message))

    def current(self) -> dict[str, tuple[str, str]]:
        """What each service's status holds from these reports now."""
        found: dict[str, tuple[str, str]] = {}
        for _, name, outcome, message in self.reports:
            if outcome == "ok" and not message:
                found.pop(name, None)
            else:
                found[name] = (outcome, message)
        return found


class Passes:
    """The daemon's `stopped`: lets it run `count` passes, then stops it."""

    def __init__(self, count: int) -> None:
        self.left = count

    def wait(self, seconds: float) -> bool:
        self.left -= 1
        return self.left <= 0


@pytest.fixture(autouse=True)
def proxy_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy_handler, "PROXY_SERVICE", "nginx")


def run(cluster: FakeCluster, passes: int) -> None:
    proxy_handler.keep_proxy_config(
        cluster=cluster, logger=logging.getLogger("test.proxy"), stopped=Passes(passes)
    )


WEB = service("web", **{"swarmop.proxy.host": "test.local", "swarmop.proxy.port": "8080"})
EVIL = service("evil", **{"swarmop.proxy.host": "x; } server {", "swarmop.proxy.port": "8080"})
TWIN = service("twin", **{"swarmop.proxy.host": "test.local", "swarmop.proxy.port": "8080"})


def test_an_invalid_value_is_reported_on_that_service_only() -> None:
    cluster = FakeCluster(FakeApi([([WEB, EVIL], [task("web", "10.0.1.5/24")])]), FakeKV())
    run(cluster, passes=3)
    (blocked, withdrawn) = cluster.reports  # once, not every pass; withdrawn at the end
    assert blocked[:3] == ("service", "evil", "blocked")
    assert blocked[3].startswith("proxy: excluded: proxy.host: ")
    assert withdrawn == ("service", "evil", "ok", "")


def test_a_host_and_path_conflict_is_reported_on_both_and_withdrawn_when_resolved() -> None:
    web_task, twin_task = task("web", "10.0.1.5/24"), task("twin", "10.0.1.6/24")
    steps = [
        ([WEB, TWIN], [web_task, twin_task]),
        ([WEB, TWIN], [web_task, twin_task]),
        ([WEB], [web_task]),  # twin is removed
    ]
    cluster = FakeCluster(FakeApi(steps), FakeKV())
    run(cluster, passes=4)
    blocked = {name: message for _, name, outcome, message in cluster.reports if outcome != "ok"}
    assert blocked == {
        "twin": "proxy: excluded: conflict: test.local/ is also claimed by web",
        "web": "proxy: excluded: conflict: test.local/ is also claimed by twin",
    }
    # web is served again: its report is withdrawn. twin is gone: nothing is
    # reported about it (a report would bring back a removed service's status).
    withdrawn = [name for _, name, outcome, message in cluster.reports if outcome == "ok"]
    assert withdrawn == ["web"]


def agent_report(state: str, tried: str, live: str, message: str = "") -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(
        {"state": state, "hash": tried, "live_hash": live, "time": now, "message": message}
    )


def test_a_config_the_agent_refuses_is_reported_on_the_proxy_service() -> None:
    kv = FakeKV()
    status_key = "swarmop/proxy/nginx/status/node-2-1"
    kv.put(
        status_key,
        agent_report(
            "error", "b" * 64, "a" * 64, 'nginx: [emerg] unknown directive "bogus" in x.conf:3\n'
        ),
    )
    cluster = FakeCluster(FakeApi([([WEB], [task("web", "10.0.1.5/24")])]), kv)
    run(cluster, passes=3)
    reports = [r for r in cluster.reports if r[1] == "nginx"]
    (refused, withdrawn) = reports  # once while it lasts, withdrawn when the daemon stops
    assert refused[2] == "error"
    assert refused[3] == (
        f"proxy: agent node-2-1 refused config {'b' * 12}: "
        'nginx: [emerg] unknown directive "bogus" in x.conf:3; '
        f"nginx keeps serving {'a' * 12}"
    )
    assert withdrawn == ("service", "nginx", "ok", "")


def test_the_report_is_withdrawn_once_the_agent_serves_the_config() -> None:
    kv = FakeKV()
    status_key = "swarmop/proxy/nginx/status/node-2-1"
    kv.put(status_key, agent_report("error", "b" * 64, "a" * 64, "nginx: [emerg] x"))
    cluster = FakeCluster(FakeApi([([WEB], [task("web", "10.0.1.5/24")])]), kv)

    class FixedOncePublished:
        """Lets the debouncer publish (real clock), then the agent takes the config."""

        def __init__(self) -> None:
            self.after_fix = 3

        def wait(self, seconds: float) -> bool:
            time.sleep(min(seconds, 0.1))
            published = kv.data.get("swarmop/proxy/nginx/config-hash")
            if published is None:
                return False
            if self.after_fix == 3:
                kv.put(status_key, agent_report("ok", published.value or "", published.value or ""))
            self.after_fix -= 1
            return self.after_fix <= 0

    proxy_handler.keep_proxy_config(
        cluster=cluster, logger=logging.getLogger("test.proxy"), stopped=FixedOncePublished()
    )
    outcomes = [
        (outcome, message[:30]) for _, name, outcome, message in cluster.reports if name == "nginx"
    ]
    assert outcomes == [("error", "proxy: agent node-2-1 refused "), ("ok", "")]


MARKER_TEMPLATE = (
    "# user template marker\n"
    "{% for server in servers %}server { listen {{ listen }}; server_name {{ server.host }}; }\n"
    "{% endfor %}"
)


def test_the_daemon_renders_with_the_template_directory_named_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "swarmop.conf.j2").write_text(MARKER_TEMPLATE)
    # Set after the handlers were imported: only the daemon's start reads it.
    monkeypatch.setenv("SWARMOP_PROXY_TEMPLATES", str(tmp_path))
    kv = FakeKV()
    cluster = FakeCluster(FakeApi([([WEB], [task("web", "10.0.1.5/24")])]), kv)

    class UntilPublished:
        def wait(self, seconds: float) -> bool:
            time.sleep(min(seconds, 0.1))
            return "swarmop/proxy/nginx/config" in kv.data

    proxy_handler.keep_proxy_config(
        cluster=cluster, logger=logging.getLogger("test.proxy"), stopped=UntilPublished()
    )
    config = kv.data["swarmop/proxy/nginx/config"].value
    assert config == "# user template marker\nserver { listen 80; server_name test.local; }\n"


def test_without_the_variable_the_packaged_template_renders() -> None:
    config = proxy_handler.renderer_from_env({}).render([])
    assert config.startswith("# Rendered by swarmop")


def test_a_template_directory_that_does_not_exist_stops_the_daemon_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("SWARMOP_PROXY_TEMPLATES", str(missing))
    kv = FakeKV()
    cluster = FakeCluster(FakeApi([([WEB], [task("web", "10.0.1.5/24")])]), kv)
    run(cluster, passes=3)
    assert kv.data == {}  # nothing published from the packaged template instead
    ((kind, name, outcome, message),) = cluster.reports
    assert (kind, name, outcome) == ("service", "nginx", "error")
    assert message == (
        f"proxy: templates unusable, not publishing: SWARMOP_PROXY_TEMPLATES={str(missing)!r} "
        "is not a directory"
    )


def test_a_template_that_does_not_compile_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "swarmop.conf.j2").write_text("{% for x in %}")
    monkeypatch.setenv("SWARMOP_PROXY_TEMPLATES", str(tmp_path))
    cluster = FakeCluster(FakeApi([([WEB], [])]), FakeKV())
    run(cluster, passes=3)
    ((_, name, outcome, message),) = cluster.reports
    assert (name, outcome) == ("nginx", "error")
    assert message.startswith("proxy: templates unusable, not publishing: ")
