"""The proxy daemon reports each service it leaves out on that service's status.

Driven through `keep_proxy_config` with fakes for the Docker API, Consul and
the `cluster` kwarg, which records the reports. (Publishing, debounced on the
real clock, is the keeper's and is tested in test_handlers_proxy_keeper.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
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
