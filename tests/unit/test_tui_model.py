"""Building the TUI's snapshot from plain Docker and Consul data."""

from __future__ import annotations

import json

from swarmop.tui.model import (
    build_instances,
    build_snapshot,
    docker_event_record,
    parse_docker_time,
)
from swarmop.tui.sample import NOW, sample_raw, sample_snapshot


def test_services_show_desired_value_with_its_source() -> None:
    snap = sample_snapshot()
    web = snap.service_by_name("web")
    api = snap.service_by_name("api")
    db = snap.service_by_name("db")
    assert web is not None and api is not None and db is not None
    assert (web.desired_replicas.value, web.desired_replicas.source) == ("2", "consul")
    assert (api.desired_replicas.value, api.desired_replicas.source) == ("3", "label")
    assert (db.desired_replicas.value, db.desired_replicas.source) == (None, "none")


def test_drift_when_spec_differs_from_winning_source() -> None:
    snap = sample_snapshot()
    api = snap.service_by_name("api")
    web = snap.service_by_name("web")
    assert api is not None and web is not None
    assert api.drift  # label asks for 3, spec has 1
    assert not web.drift


def test_invalid_desired_value_is_an_error_not_a_fallback() -> None:
    worker = sample_snapshot().service_by_name("worker")
    assert worker is not None
    assert worker.desired_replicas.value is None
    assert worker.desired_replicas.source == "label"
    assert worker.desired_replicas.error
    assert worker.drift


def test_consul_key_beats_label() -> None:
    raw = sample_raw()
    raw["kv"]["swarmop/services/api/replicas"] = "5"
    snap = build_snapshot(
        services=raw["services"], nodes=raw["nodes"], tasks=raw["tasks"], kv=raw["kv"]
    )
    api = snap.service_by_name("api")
    assert api is not None
    assert (api.desired_replicas.value, api.desired_replicas.source) == ("5", "consul")


def test_without_consul_labels_still_count_and_status_is_absent() -> None:
    snap = sample_snapshot(consul=False)
    web = snap.service_by_name("web")
    assert web is not None
    assert web.desired_replicas.source == "none"  # the Consul key is not read
    assert web.reconcile is None
    assert snap.operator is None
    assert not snap.consul_configured


def test_running_counts_only_running_tasks() -> None:
    snap = sample_snapshot()
    api = snap.service_by_name("api")
    assert api is not None
    assert api.running == 1  # the failed task is not counted
    nodes = {n.hostname: n for n in snap.nodes.values()}
    assert nodes["node-3"].running_tasks == 2


def test_node_desired_availability_and_drift() -> None:
    nodes = {n.hostname: n for n in sample_snapshot().nodes.values()}
    node3 = nodes["node-3"]
    assert (node3.desired_availability.value, node3.desired_availability.source) == (
        "drain",
        "label",
    )
    assert node3.drift
    assert not nodes["node-1"].drift
    assert nodes["node-1"].manager_status == "leader"


def test_reconcile_status_operator_and_events_are_read() -> None:
    snap = sample_snapshot()
    api = snap.service_by_name("api")
    assert api is not None and api.reconcile is not None
    assert (api.reconcile.outcome, api.reconcile.retries) == ("pending", 1)
    assert snap.operator is not None and snap.operator.instance == "op-7f3a"
    assert [e.message for e in snap.operator_events][-1] == "scaling api from 1 to 3 (label)"
    assert snap.proxies[0].service == "proxy"
    assert "test.local" in (snap.proxies[0].config or "")
    assert snap.problems == ()


def test_undecodable_status_is_reported_not_raised() -> None:
    raw = sample_raw()
    raw["kv"]["swarmop/status/services/web"] = "{not json"
    raw["kv"]["swarmop/operator"] = json.dumps({"instance": "x"})
    raw["kv"]["swarmop/events"] = json.dumps({"not": "a list"})
    snap = build_snapshot(
        services=raw["services"], nodes=raw["nodes"], tasks=raw["tasks"], kv=raw["kv"]
    )
    assert len(snap.problems) == 3
    assert snap.operator is None
    assert snap.operator_events == ()


def test_malformed_docker_objects_do_not_crash() -> None:
    snap = build_snapshot(
        services=[{"ID": "x"}, {}, {"ID": "y", "Spec": "nonsense"}],
        nodes=[{"ID": "n", "Spec": None}],
        tasks=[{"ID": "t", "Status": 3}],
        kv={},
    )
    assert set(snap.services) == {"x", "y"}
    assert set(snap.nodes) == {"n"}
    assert set(snap.tasks) == {"t"}


def test_operator_seen_recently_uses_last_resync() -> None:
    operator = sample_snapshot().operator
    assert operator is not None
    assert operator.seen_recently(NOW)
    assert not operator.seen_recently(NOW + 3600)


def test_operator_stale_threshold_is_a_parameter() -> None:
    operator = sample_snapshot().operator
    assert operator is not None and operator.last_resync is not None
    later = operator.last_resync + 600
    assert not operator.seen_recently(later)  # the default, 180 s
    assert operator.seen_recently(later, stale_after=900)
    assert not operator.seen_recently(operator.last_resync + 11, stale_after=10)


def test_docker_time_with_nanoseconds() -> None:
    assert parse_docker_time("2025-01-02T03:04:05.123456789Z") == parse_docker_time(
        "2025-01-02T03:04:05.123456Z"
    )
    assert parse_docker_time("garbage") is None
    assert parse_docker_time("") is None


def test_docker_event_record() -> None:
    record = docker_event_record(
        {
            "Type": "service",
            "Action": "update",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "replicas.new": "3"}},
            "timeNano": 1_700_000_000_000_000_000,
        }
    )
    assert record is not None
    assert (record.kind, record.action, record.object, record.origin) == (
        "service",
        "update",
        "web",
        "docker",
    )
    assert "replicas.new=3" in record.message
    assert docker_event_record({"Type": "service"}) is None


def test_operator_instances_are_listed_with_their_role() -> None:
    kv = {
        "swarmop/operators/a1": '{"instance": "a1", "host": "node-1", "leader": true}',
        "swarmop/operators/b2": '{"instance": "b2", "host": "node-2", "leader": false}',
        "swarmop/operators/broken": "not json",
        "swarmop/operator": '{"instance": "a1"}',
        "other/operators/c3": '{"instance": "c3", "host": "x", "leader": true}',
    }
    members = build_instances(kv, "swarmop")
    assert [(m.instance, m.host, m.leader) for m in members] == [
        ("a1", "node-1", True),
        ("b2", "node-2", False),
    ]
