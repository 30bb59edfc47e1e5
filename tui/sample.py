"""A small, fixed cluster as plain Docker and Consul data.

Tests and screenshots feed the TUI from this instead of a live swarm, so what
they show never depends on timing or on a running daemon.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from swarmop.tui.model import ClusterSnapshot, build_snapshot

NOW = 1_760_000_000.0  # a fixed "now" for ages and the last-synced marker
PREFIX = "swarmop"
SAMPLE_PROXY_CONFIG = (
    "server {\n    server_name test.local;\n    location / { proxy_pass http://web; }\n}\n"
)
SAMPLE_PROXY_HASH = hashlib.sha256(SAMPLE_PROXY_CONFIG.encode()).hexdigest()


def _iso(seconds_ago: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415 - keeps the module's top light

    return datetime.fromtimestamp(NOW - seconds_ago, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node(
    node_id: str,
    hostname: str,
    *,
    role: str = "worker",
    availability: str = "active",
    leader: bool = False,
    labels: dict[str, str] | None = None,
    address: str = "10.77.0.2",
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ID": node_id,
        "Version": {"Index": 10},
        "Spec": {"Role": role, "Availability": availability, "Labels": labels or {}},
        "Description": {"Hostname": hostname, "Engine": {"EngineVersion": "20.10.24"}},
        "Status": {"State": "ready", "Addr": address},
    }
    if role == "manager":
        data["ManagerStatus"] = {"Leader": leader, "Reachability": "reachable"}
    return data


def service(
    service_id: str,
    name: str,
    *,
    replicas: int | None = 1,
    labels: dict[str, str] | None = None,
    image: str = "swarmop/busybox:latest",
    constraints: list[str] | None = None,
) -> dict[str, Any]:
    mode: dict[str, Any] = (
        {"Global": {}} if replicas is None else {"Replicated": {"Replicas": replicas}}
    )
    return {
        "ID": service_id,
        "Version": {"Index": 20},
        "Spec": {
            "Name": name,
            "Labels": labels or {},
            "Mode": mode,
            "TaskTemplate": {
                "ContainerSpec": {"Image": image},
                "Placement": {"Constraints": constraints or []},
            },
        },
    }


def task(
    task_id: str,
    service_id: str,
    node_id: str,
    *,
    slot: int | None = 1,
    state: str = "running",
    desired: str = "running",
    address: str = "10.0.1.5/24",
    error: str = "",
    seconds_ago: float = 120.0,
) -> dict[str, Any]:
    return {
        "ID": task_id,
        "ServiceID": service_id,
        "NodeID": node_id,
        "Slot": slot,
        "DesiredState": desired,
        "Status": {"State": state, "Err": error, "Timestamp": _iso(seconds_ago)},
        "NetworksAttachments": [
            {"Network": {"Spec": {"Name": "backend"}}, "Addresses": [address]},
        ],
    }


def sample_raw() -> dict[str, Any]:
    nodes = [
        node("n1manager00000000", "node-1", role="manager", leader=True, address="10.77.0.1"),
        node("n2worker000000000", "node-2", labels={"storage": "ssd"}, address="10.77.0.2"),
        node(
            "n3worker000000000",
            "node-3",
            labels={"swarmop.availability": "drain"},
            address="10.77.0.3",
        ),
    ]
    services = [
        service("s1web00000000000", "web", replicas=2, labels={"swarmop.proxy.host": "test.local"}),
        service(
            "s2db000000000000",
            "db",
            replicas=1,
            labels={"swarmop.role": "db"},
            constraints=["node.labels.storage==ssd"],
        ),
        service("s3api00000000000", "api", replicas=1, labels={"swarmop.replicas": "3"}),
        service("s4agent000000000", "agent", replicas=None),
        service("s5bad00000000000", "worker", replicas=1, labels={"swarmop.replicas": "many"}),
    ]
    tasks = [
        task("t1web1aaaaaaaaaa", "s1web00000000000", "n2worker000000000", slot=1),
        task(
            "t2web2aaaaaaaaaa",
            "s1web00000000000",
            "n3worker000000000",
            slot=2,
            address="10.0.1.6/24",
        ),
        task(
            "t3db1aaaaaaaaaaa",
            "s2db000000000000",
            "n2worker000000000",
            slot=1,
            address="10.0.1.7/24",
        ),
        task(
            "t4api1aaaaaaaaaa",
            "s3api00000000000",
            "n3worker000000000",
            slot=1,
            address="10.0.1.8/24",
        ),
        task(
            "t5api0aaaaaaaaaa",
            "s3api00000000000",
            "n3worker000000000",
            slot=1,
            state="failed",
            desired="shutdown",
            error="task: non-zero exit (1)",
            seconds_ago=600.0,
            address="10.0.1.9/24",
        ),
        task(
            "t6agentaaaaaaaaa",
            "s4agent000000000",
            "n1manager00000000",
            slot=None,
            address="10.0.1.10/24",
        ),
        task(
            "t7workeraaaaaaaa",
            "s5bad00000000000",
            "n1manager00000000",
            slot=1,
            address="10.0.1.11/24",
        ),
    ]
    kv = {
        f"{PREFIX}/services/web/replicas": "2",
        f"{PREFIX}/status/services/api": json.dumps(
            {
                "kind": "service",
                "name": "api",
                "id": "s3api00000000000",
                "outcome": "pending",
                "message": "scaling 1 -> 3",
                "retries": 1,
                "last_run": NOW - 5,
            }
        ),
        f"{PREFIX}/status/services/web": json.dumps(
            {
                "kind": "service",
                "name": "web",
                "id": "s1web00000000000",
                "outcome": "ok",
                "last_run": NOW - 30,
            }
        ),
        f"{PREFIX}/status/services/worker": json.dumps(
            {
                "kind": "service",
                "name": "worker",
                "id": "s5bad00000000000",
                "outcome": "blocked",
                "message": "label replicas='many' is not a number",
            }
        ),
        f"{PREFIX}/events": json.dumps(
            [
                {
                    "time": NOW - 50,
                    "kind": "operator",
                    "object": "",
                    "level": "info",
                    "message": "resync: 5 services, 3 nodes",
                },
                {
                    "time": NOW - 5,
                    "kind": "service",
                    "object": "api",
                    "level": "info",
                    "message": "scaling api from 1 to 3 (label)",
                },
            ]
        ),
        f"{PREFIX}/operator": json.dumps(
            {
                "instance": "op-7f3a",
                "pid": 4242,
                "host": "node-1",
                "started": NOW - 3600,
                "last_resync": NOW - 50,
                "leader": True,
            }
        ),
        f"{PREFIX}/proxy/proxy/config": SAMPLE_PROXY_CONFIG,
        f"{PREFIX}/proxy/proxy/config-hash": SAMPLE_PROXY_HASH,
        # What the agent beside nginx writes (swarmop/proxy/image/agent.sh).
        f"{PREFIX}/proxy/proxy/status/node-2-1": json.dumps(
            {
                "state": "ok",
                "hash": SAMPLE_PROXY_HASH,
                "live_hash": SAMPLE_PROXY_HASH,
                "time": "2026-12-01T07:00:05Z",
                "agent": "node-2-1",
                "reload": "ok",
                "reload_time": "2026-12-01T07:00:05Z",
                "changed_time": "2026-12-01T07:00:05Z",
                "added": ["test.local"],
                "removed": [],
                "changed": [],
                "message": "",
            }
        ),
    }
    return {"services": services, "nodes": nodes, "tasks": tasks, "kv": kv}


def sample_snapshot(*, consul: bool = True) -> ClusterSnapshot:
    raw = sample_raw()
    return build_snapshot(
        services=raw["services"],
        nodes=raw["nodes"],
        tasks=raw["tasks"],
        kv=raw["kv"] if consul else None,
        prefix=PREFIX,
        synced_at=NOW - 1,
    )


def sample_docker_events() -> list[dict[str, Any]]:
    return [
        {
            "Type": "service",
            "Action": "update",
            "Actor": {
                "ID": "s3api00000000000",
                "Attributes": {"name": "api", "replicas.new": "3", "replicas.old": "1"},
            },
            "time": int(NOW - 4),
            "timeNano": int((NOW - 4) * 1e9),
        },
        {
            "Type": "node",
            "Action": "update",
            "Actor": {
                "ID": "n3worker000000000",
                "Attributes": {"name": "node-3", "availability.new": "active"},
            },
            "time": int(NOW - 20),
            "timeNano": int((NOW - 20) * 1e9),
        },
    ]
