"""Consul itself refuses a deposed leader's writes (check-session on the lock key)."""

from __future__ import annotations

import consul
import pytest

from swarmop.clients.consul import ConsulKV
from swarmop.ha import LeaderGate, Lease, NotLeaderError, Term
from swarmop.ha.consul_session import ConsulSessions
from swarmop.ha.guarded_kv import LeaderKV
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique
from swarmop.settings import resolve_consul

pytestmark = pytest.mark.cluster


class FrozenClock:
    """The gate's lease never runs out: only Consul can refuse."""

    def __call__(self) -> float:
        return 100.0


def test_writes_of_a_session_that_lost_the_lock_are_refused_by_consul(
    sandbox: SandboxInfo, consul_client: consul.Consul, tracker: Tracker
) -> None:
    prefix = tracker.consul_prefix(f"{unique('hafence')}/")
    settings = resolve_consul(addr=sandbox.consul_http_addr, env={})
    assert settings is not None
    sessions = ConsulSessions(settings)
    lock = f"{prefix}leader"
    old = sessions.create("fence-old", ttl=10, lock_delay=0)
    assert sessions.acquire(lock, old, b"{}")
    _index, entry = sessions.read(lock)
    assert entry is not None and entry.session == old

    gate = LeaderGate("old", Lease(10, 1, FrozenClock()))
    gate.lease.renewed(100.0)
    gate.elect(Term(session=old, lock_index=entry.lock_index, index=entry.modify_index))
    kv = LeaderKV(settings, gate=gate, sessions=sessions, lock_key=lock)
    plain = ConsulKV(settings)

    assert kv.put(f"{prefix}data", "written by the leader")
    assert plain.get(f"{prefix}data").value == "written by the leader"  # type: ignore[union-attr]
    stale = plain.get(f"{prefix}data").modify_index  # type: ignore[union-attr]
    plain.put(f"{prefix}data", "someone else")
    assert kv.put(f"{prefix}data", "lost CAS", cas=stale) is False  # a CAS loss is not a fence

    # The old session ends (expiry, destroy); another instance takes the lock.
    sessions.destroy(old)
    new = sessions.create("fence-new", ttl=10, lock_delay=0)
    try:
        assert sessions.acquire(lock, new, b"{}")
        with pytest.raises(NotLeaderError, match="Consul refused"):
            kv.put(f"{prefix}data", "written by a deposed leader")
        with pytest.raises(NotLeaderError):
            kv.delete(f"{prefix}data")
        assert plain.get(f"{prefix}data").value == "someone else"  # type: ignore[union-attr]
    finally:
        sessions.destroy(new)
        sessions.close()
