"""After a Consul outage: every status is published again, and stored state that
Consul lost is written back without overwriting an entry someone else wrote."""

from __future__ import annotations

from typing import Any

from swarmop.clients.consul import KVEntry
from swarmop.planning.progress import ObjectState
from swarmop.reactor.board import StatusBoard
from swarmop.reactor.context import Context, Key
from swarmop.reactor.recovery import restore_consul
from swarmop.reactor.store import ConsulStateStore
from swarmop.registry import Registry
from swarmop.settings import Settings
from swarmop.status import ObjectStatus, OperatorInfo

WEB: Key = ("service", "web")


class MemoryKV:
    """Consul's KV semantics that the store relies on: ModifyIndex and CAS."""

    def __init__(self) -> None:
        self.entries: dict[str, KVEntry] = {}
        self.index = 10
        self.puts: list[str] = []

    def get(self, key: str) -> KVEntry | None:
        return self.entries.get(key)

    def put(self, key: str, value: str, *, cas: int | None = None) -> bool:
        current = self.entries.get(key)
        if cas is not None and cas != (current.modify_index if current else 0):
            return False
        self.index += 1
        self.entries[key] = KVEntry(key, value, self.index)
        self.puts.append(key)
        return True

    def delete(self, key: str, **_: Any) -> bool:
        self.entries.pop(key, None)
        return True


def state(marker: str) -> ObjectState:
    return ObjectState("svc1", {"spec": {"Labels": {"m": marker}}}, None)


def store_with(kv: MemoryKV) -> ConsulStateStore:
    store = ConsulStateStore(kv, "p")  # type: ignore[arg-type]
    store.save(WEB, state("ours"))
    return store


def test_a_lost_entry_is_written_back_once_rechecked() -> None:
    kv = MemoryKV()
    store = store_with(kv)
    kv.entries.clear()  # the agent restarted empty
    assert store.load(WEB) == state("ours")  # the cache hides the loss...
    assert kv.get(store.key(WEB)) is None
    assert store.recheck_all() == [WEB]
    assert store.load(WEB) == state("ours")
    entry = kv.get(store.key(WEB))
    assert entry is not None and ObjectState.from_json(entry.value or "") == state("ours")
    store.save(WEB, state("next"))  # and the next write uses the new index
    entry = kv.get(store.key(WEB))
    assert entry is not None and ObjectState.from_json(entry.value or "") == state("next")


def test_an_entry_written_by_someone_else_meanwhile_wins() -> None:
    kv = MemoryKV()
    store = store_with(kv)
    kv.entries.clear()
    kv.put(store.key(WEB), state("theirs").to_json())
    store.recheck_all()
    assert store.load(WEB) == state("theirs")
    entry = kv.get(store.key(WEB))
    assert entry is not None and ObjectState.from_json(entry.value or "") == state("theirs")


def test_a_deleted_entry_is_not_brought_back() -> None:
    kv = MemoryKV()
    store = store_with(kv)
    store.delete(WEB)
    store.recheck_all()
    assert store.load(WEB) is None
    assert kv.get(store.key(WEB)) is None


def test_restore_republishes_every_status_and_rechecks_every_object() -> None:
    kv = MemoryKV()
    store = store_with(kv)
    info = OperatorInfo(instance="test", pid=1, host="test", started=0.0, leader=True)
    board = StatusBoard(info)
    board.set_status(ObjectStatus(kind="service", name="web", id="svc1"))
    board.set_status(ObjectStatus(kind="node", name="n1", id="n1"))
    board.take_changes()  # published
    ctx = Context(
        settings=Settings(),
        registry=Registry(),
        api=None,
        reader=None,  # type: ignore[arg-type]
        kv=kv,  # type: ignore[arg-type]
        store=store,
        board=board,
    )
    ctx.known[("node", "n1")] = "n1"
    touched: list[Key] = []
    restore_consul(ctx, lambda key, hint: touched.append(key))
    statuses, removed, events, published_info = board.take_changes()
    assert sorted((s.kind, s.name) for s in statuses) == [("node", "n1"), ("service", "web")]
    assert removed == [] and events is not None and published_info is not None
    assert touched == [("node", "n1"), WEB]
    kv.entries.clear()
    assert store.load(WEB) == state("ours")
    assert kv.get(store.key(WEB)) is not None  # the touched worker's load writes it back
