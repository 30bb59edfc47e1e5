"""What reaches an object's status and event log: cycle summaries, reports, handler logs."""

from __future__ import annotations

import logging

import pytest

import swarmop
from swarmop.planning.progress import Cycle, HandlerProgress, ObjectState
from swarmop.reactor.board import ObjectLogger, StatusBoard
from swarmop.reactor.processing import summarize_cycle
from swarmop.reactor.publisher import publish_once
from swarmop.status import ObjectStatus, OperatorInfo, Outcome, status_key


def board() -> StatusBoard:
    return StatusBoard(OperatorInfo(instance="t", pid=1, host="h", started=0.0))


def cycle(**handlers: HandlerProgress) -> Cycle:
    return Cycle("update", "t", dict(handlers), tuple(handlers))


def test_ok_cycle_carries_the_messages_handlers_returned() -> None:
    done = cycle(
        a=HandlerProgress(1.0, done=True, message="3/3 replicas running"),
        b=HandlerProgress(1.0, done=True),
    )
    assert summarize_cycle(done) == (Outcome.OK, "3/3 replicas running", 0)


def test_a_waiting_block_is_blocked_and_beats_pending() -> None:
    waiting = cycle(
        a=HandlerProgress(1.0, retries=2, delayed_until=5.0, message="converging"),
        b=HandlerProgress(1.0, delayed_until=9.0, message="no service db", blocked=True),
    )
    assert summarize_cycle(waiting) == (Outcome.BLOCKED, "no service db; converging", 2)
    only_pending = cycle(a=HandlerProgress(1.0, retries=1, delayed_until=5.0, message="x"))
    assert summarize_cycle(only_pending) == (Outcome.PENDING, "x", 1)


def test_failed_cycle_is_error_unless_every_failure_is_a_block() -> None:
    blocked = cycle(a=HandlerProgress(1.0, done=True, failed=True, message="m", blocked=True))
    assert summarize_cycle(blocked)[0] is Outcome.BLOCKED
    legacy = cycle(a=HandlerProgress(1.0, done=True, failed=True, message="blocked: old"))
    assert summarize_cycle(legacy) == (Outcome.BLOCKED, "old", 0)
    mixed = cycle(
        a=HandlerProgress(1.0, done=True, failed=True, message="m", blocked=True),
        b=HandlerProgress(1.0, done=True, failed=True, message="boom"),
    )
    assert summarize_cycle(mixed) == (Outcome.ERROR, "boom; m", 0)


def test_blocked_flag_is_stored_and_old_states_still_load() -> None:
    state = ObjectState("i", None, cycle(a=HandlerProgress(1.0, blocked=True)))
    assert ObjectState.from_json(state.to_json()) == state
    old = '{"id": "i", "cycle": {"reason": "create", "target": "t", "order": ["a"],'
    old += ' "handlers": {"a": {"started": 1.0}}}}'
    loaded = ObjectState.from_json(old)
    assert loaded.cycle is not None and loaded.cycle.handlers["a"].blocked is False


def test_blocked_error_recheck() -> None:
    assert swarmop.BlockedError("x").recheck is None
    assert swarmop.BlockedError("x", recheck=30).recheck == 30.0
    with pytest.raises(ValueError, match="recheck"):
        swarmop.BlockedError("x", recheck=-1)


def test_reports_combine_with_the_reactors_status_and_can_be_withdrawn() -> None:
    b = board()
    b.set_status(ObjectStatus("service", "web", "id1", outcome=Outcome.OK, message="2/2 running"))
    b.report("service", "web", "proxy", Outcome.BLOCKED, "proxy: host conflict")
    published = b.get(("service", "web"))
    assert published is not None
    assert published.outcome is Outcome.BLOCKED
    # The worse finding leads, so a truncated status still names the problem.
    assert published.message == "proxy: host conflict; 2/2 running"
    assert b.base(("service", "web")) == ObjectStatus(
        "service", "web", "id1", outcome=Outcome.OK, message="2/2 running"
    )
    # A new status from the reactor keeps the report on top.
    b.set_status(ObjectStatus("service", "web", "id1", outcome=Outcome.PENDING, message="3/3"))
    assert b.get(("service", "web")).outcome is Outcome.BLOCKED  # type: ignore[union-attr]
    b.report("service", "web", "proxy", Outcome.OK, "")
    assert b.get(("service", "web")) == b.base(("service", "web"))
    statuses, _, _, _ = b.take_changes()
    assert [s.name for s in statuses] == ["web"]


def test_report_on_an_object_not_processed_yet() -> None:
    b = board()
    b.report("node", "node-9", "probe", Outcome.ERROR, "unreachable")
    status = b.get(("node", "node-9"))
    assert status is not None and status.outcome is Outcome.ERROR and status.id == ""
    b.remove(("node", "node-9"))
    assert b.get(("node", "node-9")) is None


def test_withdrawing_a_report_never_resurrects_a_removed_object() -> None:
    b = board()
    b.set_status(ObjectStatus("service", "gone", "id9", outcome=Outcome.OK))
    b.remove(("service", "gone"))
    b.take_changes()
    b.report("service", "gone", "proxy", Outcome.OK, "")
    assert b.get(("service", "gone")) is None
    statuses, _, _, _ = b.take_changes()
    assert "gone" not in [s.name for s in statuses]


def test_handler_info_reaches_the_event_log_whatever_the_process_log_level() -> None:
    b = board()
    process_logger = logging.getLogger("swarmop.service")
    saved = process_logger.level
    process_logger.setLevel(logging.ERROR)
    try:
        log = ObjectLogger(b, "service", "web")
        log.info("scaling to %d", 3)
        log.debug("not this one")
        log.warning("bad %d format", "x")  # a broken format still arrives
    finally:
        process_logger.setLevel(saved)
    events = [(e.object, e.level.value, e.message) for e in b.snapshot().events]
    assert events[0] == ("web", "info", "scaling to 3")
    assert len(events) == 2 and events[1][1] == "warning" and "bad" in events[1][2]


class FlakyKV:
    """Consul's KV as the publisher uses it, refusing writes while `down`."""

    def __init__(self) -> None:
        self.down = True
        self.data: dict[str, str | bytes] = {}

    def put(self, key: str, value: str | bytes) -> None:
        if self.down:
            raise ConnectionError("Consul unavailable")
        self.data[key] = value

    def delete(self, key: str) -> None:
        if self.down:
            raise ConnectionError("Consul unavailable")
        self.data.pop(key, None)


def test_a_failed_publish_is_retried_without_waiting_for_another_change() -> None:
    b = board()
    kv = FlakyKV()
    b.set_status(ObjectStatus("service", "web", "id1", outcome=Outcome.OK))
    with pytest.raises(ConnectionError):
        publish_once(b, kv, "swarmop")  # type: ignore[arg-type]
    # The publisher waits on `changed` before its next round.
    assert b.changed.is_set()
    kv.down = False
    publish_once(b, kv, "swarmop")  # type: ignore[arg-type]
    assert status_key("swarmop", "service", "web") in kv.data
