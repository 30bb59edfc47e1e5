"""The handlers' own Swarm writes pass the leader gate: a vetoing gate stops them.

The service and node handlers write by themselves (not through `patch`), with
`cluster.update_service` / `cluster.update_node`, which run the leader check
`cluster.before_write` before every write; a standby or deposed leader must
never reach the daemon. The Docker API and the cluster's reads and gate are
fakes that record what would have been sent; the writes are the real
`swarmop.Cluster` methods.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from swarmop.handlers.nodes import reconcile_node
from swarmop.handlers.services import reconcile_service

import swarmop
from swarmop.desired import DesiredState, merge_desired
from swarmop.ha.gate import NotLeaderError
from swarmop.views import NodeView, ServiceView

SERVICE_ID = "s" * 25
NODE_ID = "n" * 25


class FakeApi:
    """The few docker.APIClient calls swarm_write and the handlers make."""

    def __init__(self, service: dict[str, Any], node: dict[str, Any]) -> None:
        self.service = service
        self.node = node
        self.writes: list[tuple[str, dict[str, Any]]] = []

    def inspect_service(self, service_id: str) -> dict[str, Any]:
        return self.service

    def inspect_node(self, node_id: str) -> dict[str, Any]:
        return self.node

    def _url(self, path: str, *args: str) -> str:
        return path.format(*args)

    def _post_json(self, url: str, data: dict[str, Any], params: Mapping[str, Any]) -> object:
        self.writes.append((url, data))
        return object()

    def _raise_for_status(self, response: object) -> None:
        return None

    def update_node(self, node_id: str, version: int, spec: dict[str, Any]) -> None:
        self.writes.append((f"/nodes/{node_id}/update", spec))

    def networks(self) -> list[dict[str, Any]]:
        return []

    def tasks(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return []


class FakeCluster:
    # The real write path: swarm_write with this cluster's before_write.
    update_service = swarmop.Cluster.update_service
    update_node = swarmop.Cluster.update_node

    def __init__(self, api: FakeApi, *, leading: bool) -> None:
        self.api = api
        self.leading = leading
        self.checked: list[tuple[str, int]] = []

    def before_write(self, object_id: str, version: int) -> None:
        self.checked.append((object_id, version))
        if not self.leading:
            raise NotLeaderError()

    def services(self) -> list[ServiceView]:
        return [ServiceView(self.api.service, lambda _id: [])]

    def nodes(self) -> list[NodeView]:
        return [NodeView(self.api.node)]

    def desired(self, kind: str, name: str, labels: Mapping[str, str]) -> DesiredState:
        return merge_desired("service" if kind == "service" else "node", labels, {})


def fake_api() -> FakeApi:
    service = {
        "ID": SERVICE_ID,
        "Version": {"Index": 11},
        "Spec": {
            "Name": "web",
            "Labels": {"swarmop.replicas": "3"},
            "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}},
        },
    }
    node = {
        "ID": NODE_ID,
        "Version": {"Index": 5},
        "Description": {"Hostname": "node-2"},
        "Spec": {"Role": "worker", "Availability": "active", "Labels": {}},
        "Status": {"State": "ready"},
    }
    return FakeApi(service, node)


def run_service_handler(cluster: FakeCluster) -> None:
    view = ServiceView(cluster.api.service, lambda _id: [])
    reconcile_service(
        service=view,
        desired=cluster.desired("service", view.name, view.labels),
        cluster=cluster,
        logger=logging.getLogger("test.write_gate"),
    )


def run_node_handler(cluster: FakeCluster) -> None:
    view = NodeView(cluster.api.node)
    reconcile_node(
        node=view,
        desired=merge_desired("node", {"swarmop.availability": "drain"}, {}),
        cluster=cluster,
        logger=logging.getLogger("test.write_gate"),
    )


def test_service_write_refused_by_the_gate_never_reaches_docker() -> None:
    cluster = FakeCluster(fake_api(), leading=False)
    with pytest.raises(NotLeaderError):
        run_service_handler(cluster)
    assert cluster.checked == [(SERVICE_ID, 11)]
    assert cluster.api.writes == []


def test_service_write_allowed_by_the_gate_is_sent() -> None:
    cluster = FakeCluster(fake_api(), leading=True)
    with pytest.raises(swarmop.TemporaryError, match="scaling 1 -> 3 replicas"):
        run_service_handler(cluster)  # written, then pending until the tasks run
    assert cluster.checked == [(SERVICE_ID, 11)]
    ((url, spec),) = cluster.api.writes
    assert url == f"/services/{SERVICE_ID}/update"
    assert spec["Mode"]["Replicated"]["Replicas"] == 3


def test_node_write_refused_by_the_gate_never_reaches_docker() -> None:
    cluster = FakeCluster(fake_api(), leading=False)
    with pytest.raises(NotLeaderError):
        run_node_handler(cluster)
    assert cluster.checked == [(NODE_ID, 5)]
    assert cluster.api.writes == []


def test_node_write_allowed_by_the_gate_is_sent() -> None:
    cluster = FakeCluster(fake_api(), leading=True)
    with pytest.raises(swarmop.TemporaryError, match="draining node-2"):
        run_node_handler(cluster)  # written, then pending until its tasks are gone
    ((url, spec),) = cluster.api.writes
    assert url == f"/nodes/{NODE_ID}/update"
    assert spec["Availability"] == "drain"
