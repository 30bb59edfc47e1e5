"""High availability against the real sandbox: operators as real `swarmop run` processes.

Two instances of the operator run with the handlers in `ha_handlers.py` and a
prefix of their own; the tests kill, pause and stop the leader and check who
leads, that desired changes made during a hand-over are applied, and from the
write log (logger `swarmop.ha.writes`) that writers never overlap. Takeover
times are printed (run with -s to see them); `docs/deploy.md` lists them.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest

# The harness lives in ha_operators.py; importing the `operators` fixture makes
# it available to the tests below.
from ha_operators import (
    SETTINGS,
    TAKEOVER_BOUND,
    Operators,
    WriteRecord,
    assert_no_overlap,
    labels_of,
    operators,
    set_label,
    ticks_of,
)

from swarmop.sandbox.testing import Tracker

__all__ = ["operators"]  # a fixture: used by name, not by reference

pytestmark = pytest.mark.cluster


def test_sigkill_leader_a_standby_leads_and_applies_the_change_made_meanwhile(
    operators: Operators, tracker: Tracker, docker_api: docker.APIClient, wait_until: Any
) -> None:
    operators.start("inst-a")
    operators.start("inst-b")
    first = operators.wait_leader(wait_until, timeout=30)
    service = tracker.create_service(
        labels={"hatest": operators.run_id, "hatest.want": "one"}, command=["sleep", "1d"]
    )
    wait_until(
        lambda: labels_of(docker_api, service).get("hatest.applied") == "one",
        timeout=30,
        what="the leader to apply hatest.want=one",
    )
    killed_at = time.monotonic()
    operators.processes[first].signal(signal.SIGKILL)
    set_label(docker_api, service, "hatest.want", "two")  # desired change during the gap
    second = operators.wait_leader(wait_until, timeout=TAKEOVER_BOUND, other_than=first)
    took = time.monotonic() - killed_at
    print(f"takeover after SIGKILL: {took:.1f}s (bound {TAKEOVER_BOUND:.0f}s)")
    wait_until(
        lambda: labels_of(docker_api, service).get("hatest.applied") == "two",
        timeout=30,
        what="the new leader to apply the change made while nobody led",
    )
    writes = operators.all_writes()
    assert_no_overlap(writes)
    applied_two = [w for w in writes if w.allowed and w.what.startswith("object=")]
    assert applied_two[-1].instance == second


def test_sigterm_hands_over_without_waiting_for_the_ttl(
    operators: Operators, tracker: Tracker, docker_api: docker.APIClient, wait_until: Any
) -> None:
    operators.start("inst-a")
    operators.start("inst-b")
    first = operators.wait_leader(wait_until, timeout=30)
    service = tracker.create_service(
        labels={"hatest": operators.run_id, "hatest.want": "one"}, command=["sleep", "1d"]
    )
    wait_until(
        lambda: labels_of(docker_api, service).get("hatest.applied") == "one",
        timeout=30,
        what="the leader to apply hatest.want=one",
    )
    stopped_at = time.monotonic()
    operators.processes[first].signal(signal.SIGTERM)
    set_label(docker_api, service, "hatest.want", "two")
    # Far below the TTL: the lock was released, not left to expire.
    operators.wait_leader(wait_until, timeout=SETTINGS.ttl / 2, other_than=first)
    print(f"hand-over after SIGTERM: {time.monotonic() - stopped_at:.2f}s")
    exit_code = operators.processes[first].popen.wait(60)
    print(f"process exit after SIGTERM: {time.monotonic() - stopped_at:.2f}s")
    assert exit_code == 0
    wait_until(
        lambda: labels_of(docker_api, service).get("hatest.applied") == "two",
        timeout=30,
        what="the new leader to apply the change made during the hand-over",
    )
    assert_no_overlap(operators.all_writes())


def test_a_leader_paused_past_its_ttl_has_its_writes_refused_after_resuming(
    operators: Operators, tracker: Tracker, docker_api: docker.APIClient, wait_until: Any
) -> None:
    operators.start("inst-a")
    operators.start("inst-b")
    first = operators.wait_leader(wait_until, timeout=30)
    service = tracker.create_service(
        labels={"hatest": operators.run_id, "hatest.tick": "on"}, command=["sleep", "1d"]
    )
    wait_until(
        lambda: int(labels_of(docker_api, service).get("hatest.ticks", "0")) >= 3,
        timeout=30,
        what="the leader's timer to write",
    )
    paused = operators.processes[first]
    # A desired change whose pass is under way when the pause comes: it read the
    # service and checked the gate, and holds (HOLD s) before writing. Resumed,
    # the pass goes on to its write whatever the election loop does meanwhile.
    set_label(docker_api, service, "hatest.slow", "go")
    wait_until(
        lambda: "hatest.slow: holding" in paused.log.read_text(errors="replace"),
        timeout=30,
        what="the leader to start the slow pass",
    )
    paused.signal(signal.SIGSTOP)
    paused_at = datetime.now()
    second = operators.wait_leader(wait_until, timeout=TAKEOVER_BOUND, other_than=first)
    ticks = int(labels_of(docker_api, service).get("hatest.ticks", "0"))
    wait_until(
        lambda: int(labels_of(docker_api, service).get("hatest.ticks", "0")) >= ticks + 3,
        timeout=30,
        what="the new leader's timer to write",
    )
    paused.signal(signal.SIGCONT)
    resumed_at = datetime.now()

    def refused_after_resume() -> list[WriteRecord]:
        return [
            w
            for w in paused.writes()
            if not w.allowed and w.time >= resumed_at and f"object={service}" in w.what
        ]

    refused = wait_until(
        refused_after_resume, timeout=SETTINGS.ttl, what="the resumed leader's write, refused"
    )
    wait_until(
        lambda: "no longer the leader" in paused.log.read_text(errors="replace"),
        timeout=SETTINGS.ttl,
        what="the resumed instance to notice it lost the lock",
    )
    time.sleep(2)  # a few more timer rounds, all of which must be refused or skipped
    assert operators.leader() == second
    allowed_after = [
        w for w in paused.writes() if w.allowed and w.time >= paused_at and "object=" in w.what
    ]
    assert allowed_after == [], "the deposed leader wrote to the swarm after its pause"
    # The new leader ran the slow pass too and its value stands.
    new_pid = str(operators.processes[second].popen.pid)
    wait_until(
        lambda: labels_of(docker_api, service).get("hatest.slow.by") == new_pid,
        timeout=30,
        what="the new leader's slow write",
    )
    print(f"resumed leader: {len(refused_after_resume())} Swarm writes refused, 0 allowed")
    assert refused
    assert_no_overlap(operators.all_writes())


FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def test_clock_skew_and_a_clock_jump_do_not_decide_leadership(
    operators: Operators, tracker: Tracker, docker_api: docker.APIClient, wait_until: Any
) -> None:
    """R25: one instance runs 5 minutes ahead (libfaketime). As a standby it does
    not lead while the lock is held; it takes over only when the leader dies;
    and when its clock jumps an hour forward mid-lease the cluster keeps exactly
    one writer per term and keeps converging. Leadership rests on Consul's
    server-side session TTL and the monotonic clock, never on wall-clock time."""
    if not FAKETIME_LIBRARY.exists():
        pytest.fail(f"{FAKETIME_LIBRARY} is missing: run `make setup` (installs faketime)")
    offset_file = operators.tmp / "faketime.offset"
    offset_file.write_text("+5m\n")
    skew = {
        "LD_PRELOAD": str(FAKETIME_LIBRARY),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_NO_CACHE": "1",  # read the offset on every call, so it can jump
    }
    operators.start("steady")
    assert operators.wait_leader(wait_until, timeout=30) == "steady"
    skewed = operators.start("skewed", extra_env=skew)
    service = tracker.create_service(
        labels={"hatest": operators.run_id, "hatest.tick": "on"}, command=["sleep", "1d"]
    )
    wait_until(lambda: ticks_of(docker_api, service) >= 3, timeout=30, what="the leader's ticks")

    def first_log_time() -> datetime | None:
        for line in skewed.log.read_text(errors="replace").splitlines():
            try:
                return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            except ValueError:
                continue
        return None

    logged = wait_until(first_log_time, timeout=30, what="the skewed instance's first log line")
    ahead = (logged - datetime.now()).total_seconds()
    assert ahead > 240, f"the fake clock is not in effect (log {ahead:.0f}s ahead)"

    # Several renewals of the leader's session later, the skewed standby still waits.
    ticks = ticks_of(docker_api, service)
    wait_until(
        lambda: ticks_of(docker_api, service) >= ticks + 2 * SETTINGS.ttl,
        timeout=4 * SETTINGS.ttl,
        what="the leader to keep ticking for two TTLs",
    )
    assert operators.leader() == "steady"
    assert not [w for w in skewed.writes() if w.allowed and "object=" in w.what]

    killed_at = time.monotonic()
    operators.processes["steady"].signal(signal.SIGKILL)
    assert operators.wait_leader(wait_until, timeout=TAKEOVER_BOUND, other_than="steady") == (
        "skewed"
    )
    print(f"takeover by the skewed instance: {time.monotonic() - killed_at:.1f}s")
    ticks = ticks_of(docker_api, service)
    wait_until(lambda: ticks_of(docker_api, service) >= ticks + 3, what="the new leader's ticks")

    operators.start("steady-2")
    offset_file.write_text("+65m\n")  # mid-lease: wall clock and monotonic leap an hour
    ticks = ticks_of(docker_api, service)
    wait_until(
        lambda: ticks_of(docker_api, service) >= ticks + 3,
        timeout=TAKEOVER_BOUND + 30,
        what="writes to go on after the jump",
    )
    assert operators.leader() in ("skewed", "steady-2")
    owners: dict[int, set[str]] = {}
    for write in operators.all_writes():
        if write.allowed and write.term is not None:
            owners.setdefault(write.term, set()).add(write.instance)
    shared = {term: names for term, names in owners.items() if len(names) > 1}
    assert not shared, f"two instances wrote under one term: {shared}"
    print("terms and their writers:", {term: sorted(names) for term, names in owners.items()})
