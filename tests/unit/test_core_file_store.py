"""The file state store used with --state-dir (no Consul)."""

from __future__ import annotations

from pathlib import Path

from swarmop.planning.progress import Cycle, HandlerProgress, ObjectState
from swarmop.reactor.store import FileStateStore


def test_round_trip_delete_and_no_leftover_temporaries(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    state = ObjectState("id1", {"spec": {"Name": "web"}}, Cycle("create", "t", {}, ("h",)))
    assert store.load(("service", "web")) is None
    store.save(("service", "web"), state)
    store.save(("service", "web"), ObjectState("id1", {"spec": {}}, None))
    assert store.load(("service", "web")) == ObjectState("id1", {"spec": {}}, None)
    assert FileStateStore(tmp_path).load(("service", "web")) is not None  # a new process
    assert sorted(p.name for p in (tmp_path / "services").iterdir()) == ["web.json"]
    store.delete(("service", "web"))
    store.delete(("service", "web"))
    assert store.load(("service", "web")) is None


def test_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "state")
    store.save(("node", "../../evil"), ObjectState("n", None, None))
    assert store.path(("node", "../../evil")).parent == tmp_path / "state" / "nodes"
    assert not (tmp_path / "evil.json").exists()


def test_unreadable_file_is_ignored(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    store.path(("service", "web")).write_text("{not json", encoding="utf-8")
    assert store.load(("service", "web")) is None
    progress = HandlerProgress(1.0, done=True)
    store.save(("service", "web"), ObjectState("i", None, Cycle("c", "t", {"h": progress}, ("h",))))
    assert store.load(("service", "web")) is not None
