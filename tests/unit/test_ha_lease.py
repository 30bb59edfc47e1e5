"""The leader's lease and write gate, driven by a fake monotonic clock."""

from __future__ import annotations

import logging
import threading

import pytest

from swarmop.ha import HASettings, LeaderGate, Lease, NotLeaderError, Term
from swarmop.ha.gate import OPEN_GATE


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_gate(clock: FakeClock, ttl: float = 10.0, margin: float = 1.0) -> LeaderGate:
    return LeaderGate("inst-1", Lease(ttl, margin, clock))


TERM = Term(session="s-1", lock_index=1, index=42)


def test_lease_runs_from_the_send_time_of_the_last_renew() -> None:
    clock = FakeClock()
    lease = Lease(10.0, 1.0, clock)
    assert not lease.valid()
    sent = clock()
    clock.advance(0.5)  # the renew took half a second to answer
    lease.renewed(sent)
    assert lease.valid_until == sent + 9.0
    clock.advance(8.4)
    assert lease.valid()
    clock.advance(0.2)
    assert not lease.valid()
    assert lease.remaining() == 0.0


def test_an_older_renew_answered_late_never_moves_the_deadline_back() -> None:
    clock = FakeClock()
    lease = Lease(10.0, 1.0, clock)
    lease.renewed(1005.0)
    lease.renewed(1002.0)
    assert lease.valid_until == 1014.0


def test_renew_is_due_every_third_of_the_ttl() -> None:
    clock = FakeClock()
    lease = Lease(12.0, 1.0, clock)
    assert lease.renew_due_in() == 0.0
    lease.renewed(clock())
    assert lease.renew_due_in() == pytest.approx(4.0)
    clock.advance(5)
    assert lease.renew_due_in() == 0.0


def test_lease_rejects_a_margin_that_eats_the_ttl() -> None:
    with pytest.raises(ValueError):
        Lease(10.0, 10.0)
    with pytest.raises(ValueError):
        Lease(0.0, 0.0)


def test_gate_refuses_before_election_and_after_the_lease_ran_out() -> None:
    clock = FakeClock()
    gate = make_gate(clock)
    with pytest.raises(NotLeaderError):
        gate.before_write("svc", 3)
    gate.lease.renewed(clock())
    gate.elect(TERM)
    gate.before_write("svc", 3)
    assert gate.term == TERM
    # Paused (SIGSTOP) or cut off from Consul: no renew arrives.
    clock.advance(9.5)
    with pytest.raises(NotLeaderError):
        gate.before_write("svc", 4)
    assert gate.held_term == TERM  # the loop has not noticed yet, the gate already refuses
    assert (gate.allowed, gate.refused) == (1, 2)


def test_gate_is_blind_to_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    gate = make_gate(clock)
    gate.lease.renewed(clock())
    gate.elect(TERM)
    # A wall-clock jump must not end or extend the lease.
    monkeypatch.setattr("time.time", lambda: 10.0**10)
    assert gate.allows()
    clock.advance(20)
    monkeypatch.setattr("time.time", lambda: 0.0)
    assert not gate.allows()


def test_demote_and_close_refuse_at_once() -> None:
    clock = FakeClock()
    gate = make_gate(clock)
    gate.lease.renewed(clock())
    gate.elect(TERM)
    gate.demote()
    assert not gate.allows()
    gate.lease.renewed(clock())
    gate.elect(TERM)
    gate.close()
    with pytest.raises(NotLeaderError, match="closing"):
        gate.check("consul put x")


def test_every_write_is_logged_with_instance_session_and_term(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    gate = make_gate(clock)
    gate.lease.renewed(clock())
    gate.elect(TERM)
    with caplog.at_level(logging.INFO, logger="swarmop.ha.writes"):
        gate.before_write("svc-id", 7)
        gate.demote()
        with pytest.raises(NotLeaderError):
            gate.before_write("svc-id", 8)
    lines = [record.getMessage() for record in caplog.records]
    assert "write allowed instance=inst-1 session=s-1 term=42 object=svc-id version=7" in lines
    assert any(line.startswith("write refused instance=inst-1") for line in lines)


def test_resigning_waits_for_writes_in_flight() -> None:
    clock = FakeClock()
    gate = make_gate(clock)
    entered = threading.Event()
    finish = threading.Event()

    def writer() -> None:
        with gate.writing():
            entered.set()
            finish.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    entered.wait(5)
    assert not gate.wait_idle(0.05)
    finish.set()
    assert gate.wait_idle(5)
    thread.join()


def test_open_gate_allows_everything() -> None:
    OPEN_GATE.before_write("x", 1)
    with OPEN_GATE.writing():
        assert OPEN_GATE.allows()


def test_ha_settings_follow_consul_limits() -> None:
    assert HASettings().takeover_bound == 21.0
    with pytest.raises(ValueError):
        HASettings(ttl=5)
    with pytest.raises(ValueError):
        HASettings(lock_delay=-1)
    with pytest.raises(ValueError):
        HASettings(ttl=10, margin=4)
