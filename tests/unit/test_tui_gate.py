"""The action gate: the one place that lets a change through, or not."""

from __future__ import annotations

import pytest
from swarmop.tui.gate import ActionGate, ActionRefused, ReadOnlyError, WriteReceipt
from swarmop.tui.impact import OPERATOR_MISSING, availability_impact
from swarmop.tui.model import NodeRecord, ServiceRecord
from swarmop.tui.sample import NOW, sample_snapshot


class RecordingWriter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def replicas_target(self, service: ServiceRecord) -> str:
        return f"key {service.name}"

    def availability_target(self, node: NodeRecord) -> str:
        return f"key {node.hostname}"

    def write_replicas(self, service: ServiceRecord, replicas: int) -> WriteReceipt:
        self.calls.append(("replicas", service.name, str(replicas)))
        return WriteReceipt(self.replicas_target(service), str(replicas))

    def write_availability(self, node: NodeRecord, availability: str) -> WriteReceipt:
        self.calls.append(("availability", node.hostname, availability))
        return WriteReceipt(self.availability_target(node), availability)


def _web_and_node() -> tuple[ServiceRecord, NodeRecord]:
    snap = sample_snapshot()
    web, node = snap.service_by_name("web"), snap.node_by_name("node-2")
    assert web is not None and node is not None
    return web, node


def test_read_only_refuses_every_mutation_and_writes_nothing() -> None:
    writer = RecordingWriter()
    gate = ActionGate(writer, read_only=True)
    web, node = _web_and_node()
    with pytest.raises(ReadOnlyError):
        gate.scale(web, 3)
    for availability in ("drain", "pause", "active"):
        with pytest.raises(ReadOnlyError):
            gate.set_availability(node, availability)
    with pytest.raises(ReadOnlyError):
        gate.check("scale")
    assert writer.calls == []
    assert gate.read_only


def test_no_writer_means_read_only() -> None:
    assert ActionGate(None, read_only=False).read_only


def test_writes_pass_through_when_allowed() -> None:
    writer = RecordingWriter()
    gate = ActionGate(writer, read_only=False)
    web, node = _web_and_node()
    assert gate.scale(web, "3") == WriteReceipt("key web", "3")
    assert gate.set_availability(node, "drain").value == "drain"
    assert writer.calls == [("replicas", "web", "3"), ("availability", "node-2", "drain")]


@pytest.mark.parametrize("bad", ["-1", "three", "10001", "1e3", " "])
def test_bad_replica_counts_are_refused(bad: str) -> None:
    writer = RecordingWriter()
    web, _ = _web_and_node()
    with pytest.raises(ActionRefused):
        ActionGate(writer, read_only=False).scale(web, bad)
    assert writer.calls == []


def test_global_service_cannot_be_scaled() -> None:
    writer = RecordingWriter()
    agent = sample_snapshot().service_by_name("agent")
    assert agent is not None
    with pytest.raises(ActionRefused, match="global"):
        ActionGate(writer, read_only=False).scale(agent, 2)
    assert writer.calls == []


def test_unknown_availability_is_refused() -> None:
    writer = RecordingWriter()
    _, node = _web_and_node()
    with pytest.raises(ActionRefused):
        ActionGate(writer, read_only=False).set_availability(node, "reboot")
    assert writer.calls == []


def test_drain_impact_lists_moving_tasks_and_warns_about_single_writer_db() -> None:
    snap = sample_snapshot()
    node = snap.node_by_name("node-2")
    assert node is not None
    impact = availability_impact(snap, node, "drain", NOW)
    assert sorted(t.service_name for t in impact.moving) == ["db", "web"]
    assert any("single-writer database" in w for w in impact.warnings)
    assert OPERATOR_MISSING not in impact.warnings


def test_pause_moves_nothing_and_missing_operator_is_said() -> None:
    snap = sample_snapshot(consul=False)
    node = snap.node_by_name("node-2")
    assert node is not None
    impact = availability_impact(snap, node, "pause", NOW)
    assert impact.moving == ()
    assert OPERATOR_MISSING in impact.warnings


def test_cluster_db_is_not_warned_about() -> None:
    snap = sample_snapshot()
    node3 = snap.node_by_name("node-3")
    assert node3 is not None
    impact = availability_impact(snap, node3, "drain", NOW)
    assert not any("database" in w for w in impact.warnings)
