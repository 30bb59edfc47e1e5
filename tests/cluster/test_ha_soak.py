"""R27: a random-fault soak of three HA operator instances against the real sandbox.

Three `swarmop run` processes (the handlers in `ha_handlers.py`) share one lock.
For $SWARMOP_SOAK_SECONDS (90 s by default, so CI stays short; hours by hand) a
seeded schedule SIGKILLs, SIGSTOPs (2-25 s) or SIGTERMs them, often the
leader, restarting killed and stopped instances under new instance ids, while
never faulting the last healthy one. Meanwhile a generator changes
`hatest.want` on a few services every 0.2-2 s and records each change Swarm
acknowledged. When the faults stop, every service must converge
(`hatest.applied` == the last acknowledged `hatest.want`) within resync + the
takeover bound + a margin, and the write log must show one writer at a time.

The seed is printed; SWARMOP_SOAK_SEED=<seed> replays the same schedule (which
instance is the leader when a leader-aimed fault fires still depends on timing).
A summary (faults, writes per instance, terms, leader changes, desired changes,
convergence time) is printed: run with -s to see it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import docker
import pytest
import requests
from ha_operators import (
    RESYNC_INTERVAL,
    SETTINGS,
    Election,
    OperatorProcess,
    Operators,
    WriteRecord,
    assert_no_overlap,
    assert_no_write_after_a_newer_election,
    assert_one_leader_per_term,
    assert_one_writer_per_term,
    labels_of,
    operators,
)

from swarmop.clients.swarm_write import SwarmWriteError, update_service
from swarmop.sandbox.testing import Tracker

__all__ = ["operators"]  # the fixture, imported so the test below can use it

pytestmark = pytest.mark.cluster

SOAK_SECONDS = float(os.environ.get("SWARMOP_SOAK_SECONDS", "90"))
INSTANCES = 3
DESIRED_SERVICES = 3
FAULT_GAP = (1.0, 6.0)
"""Seconds between two fault attempts."""
PAUSE = (2.0, 25.0)
"""How long a SIGSTOP lasts: from a blip to well past the TTL."""
RESTART_DELAY = (0.0, 3.0)
"""From SIGKILL, or from the exit after SIGTERM, to the replacement's start."""
AT_LEADER = 0.6
"""Share of faults aimed at the leader when it is healthy (a standby's matter less)."""
FAULT_SIGNALS = {"kill": signal.SIGKILL, "pause": signal.SIGSTOP, "term": signal.SIGTERM}
TERM_GRACE = 60.0
"""An instance still running this long after SIGTERM is reported as hung."""
CHANGE_GAP = (0.2, 2.0)
"""Seconds between two desired changes."""
CONVERGENCE_BOUND = RESYNC_INTERVAL + 2 * SETTINGS.ttl + SETTINGS.lock_delay + 15.0
"""Resync catches whatever events were lost; a leader paused at the very end may
hold the lock until its session ends (2 * TTL) and the lock-delay runs out."""


def note(message: str) -> None:
    """A line of the fault timeline, its time comparable with the instances' logs."""
    print(f"{datetime.now():%Y-%m-%d %H:%M:%S,%f}"[:-3], message)


@dataclass
class Slot:
    """One of the three places an instance runs; a fault puts a slot out until it heals."""

    index: int
    process: OperatorProcess
    generation: int = 0
    fault: str | None = None
    """"pause", "kill" or "term" while faulted."""
    signalled: float = 0.0
    pause_ends: float = 0.0
    restart_delay: float = 0.0
    """From SIGKILL, or from the exit after SIGTERM, to the replacement's start."""
    exited: float | None = None
    """When a SIGTERMed instance was seen gone."""


@dataclass
class FaultLog:
    injected: Counter[str] = field(default_factory=Counter)
    at_leader: int = 0
    skipped: int = 0
    """Attempts dropped because only one healthy instance was left."""
    term_exits: Counter[int | None] = field(default_factory=Counter)
    hung_after_term: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    """Instances that exited without being faulted."""


class FaultSchedule:
    """Injects the seeded faults. Every step draws the same numbers whatever the
    cluster's state, so a seed always yields the same sequence of decisions."""

    def __init__(self, operators: Operators, seed: int) -> None:
        self.operators = operators
        self.rng = random.Random(seed)
        self.log = FaultLog()
        self.slots = [
            Slot(index, operators.start(self._name(index, 0))) for index in range(INSTANCES)
        ]
        self.next_fault = float("inf")

    @staticmethod
    def _name(index: int, generation: int) -> str:
        return f"inst{index}-{generation}"

    def begin(self) -> None:
        self.next_fault = time.monotonic() + self.rng.uniform(*FAULT_GAP)

    def healthy(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.fault is None]

    def step(self, now: float) -> None:
        self._heal(now)
        self._notice_crashes()
        if now >= self.next_fault:
            self._inject(now)

    def stop(self) -> None:
        """No more faults: resume the paused, replace the killed and stopped now."""
        self._heal(time.monotonic(), ending=True)
        self._notice_crashes()

    def _inject(self, now: float) -> None:
        gap = self.rng.uniform(*FAULT_GAP)
        kind = self.rng.choice(sorted(FAULT_SIGNALS))
        aim_at_leader = self.rng.random() < AT_LEADER
        pick = self.rng.random()
        pause = self.rng.uniform(*PAUSE)
        restart_delay = self.rng.uniform(*RESTART_DELAY)
        self.next_fault = now + gap
        healthy = self.healthy()
        if len(healthy) <= 1:  # the last healthy instance keeps the cluster able to progress
            self.log.skipped += 1
            note("fault skipped: one healthy instance left")
            return
        leader = self.operators.leader()
        leading = [slot for slot in healthy if slot.process.instance == leader]
        target = leading[0] if aim_at_leader and leading else healthy[int(pick * len(healthy))]
        target.fault = kind
        target.signalled = now
        target.pause_ends = now + pause
        target.restart_delay = restart_delay
        self.log.injected[kind] += 1
        role = "leader" if target.process.instance == leader else "standby"
        self.log.at_leader += role == "leader"
        detail = f" for {pause:.1f}s" if kind == "pause" else ""
        note(f"fault: {kind} {role} {target.process.instance}{detail}")
        target.process.signal(FAULT_SIGNALS[kind])

    def _heal(self, now: float, *, ending: bool = False) -> None:
        for slot in self.slots:
            if slot.fault == "pause" and (ending or now >= slot.pause_ends):
                slot.process.signal(signal.SIGCONT)
                slot.fault = None
                note(f"resumed {slot.process.instance}")
            elif slot.fault == "kill" and (ending or now >= slot.signalled + slot.restart_delay):
                slot.process.popen.wait(30)
                self._replace(slot)
            elif slot.fault == "term":
                self._after_term(slot, now, ending=ending)

    def _after_term(self, slot: Slot, now: float, *, ending: bool) -> None:
        popen = slot.process.popen
        if ending:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(max(0.0, slot.signalled + TERM_GRACE - now))
        if popen.poll() is None:
            if now - slot.signalled < TERM_GRACE and not ending:
                return
            self.log.hung_after_term.append(slot.process.instance)
            popen.kill()
            popen.wait(30)
        if slot.exited is None:
            slot.exited = now
            self.log.term_exits[popen.returncode] += 1
        if ending or now >= slot.exited + slot.restart_delay:
            self._replace(slot)

    def _notice_crashes(self) -> None:
        for slot in self.healthy():
            if slot.process.popen.poll() is not None:
                self.log.crashed.append(
                    f"{slot.process.instance} (exit {slot.process.popen.returncode})"
                )
                self._replace(slot)

    def _replace(self, slot: Slot) -> None:
        slot.generation += 1
        slot.process = self.operators.start(self._name(slot.index, slot.generation))
        slot.fault = None
        slot.exited = None
        note(f"started {slot.process.instance}")


class DesiredChanges:
    """Changes `hatest.want` on random services from a thread, keeping what Swarm acknowledged."""

    def __init__(self, api: docker.APIClient, services: list[str], seed: int) -> None:
        self.api = api
        self.services = services
        self.rng = random.Random(seed)
        self.acknowledged: dict[str, list[str]] = {service: ["0"] for service in services}
        self.unknown: dict[str, list[str]] = {service: [] for service in services}
        """Values whose write failed with its outcome unknown (they may have landed)."""
        self.gave_up = 0
        self.conflicts = 0
        self.error: BaseException | None = None
        self._counter = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="desired-changes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the desired-state generator did not stop"

    def made(self) -> int:
        return sum(len(values) - 1 for values in self.acknowledged.values())

    def expected(self, service: str) -> set[str]:
        """`hatest.want` values the service may end with: the last acknowledged one,
        or one written after it whose outcome was unknown."""
        last = self.acknowledged[service][-1]
        return {last} | {value for value in self.unknown[service] if int(value) > int(last)}

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.rng.uniform(*CHANGE_GAP)):
                self._change(self.rng.choice(self.services))
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error

    def _change(self, service: str) -> None:
        self._counter += 1
        value = str(self._counter)

        def want(spec: dict[str, Any]) -> None:
            spec.setdefault("Labels", {})["hatest.want"] = value

        try:
            result = update_service(self.api, service, want)
        except SwarmWriteError:
            self.gave_up += 1  # every attempt lost a version race: nothing was written
            return
        except (requests.ConnectionError, requests.Timeout):
            self.unknown[service].append(value)
            return
        self.conflicts += result.conflicts
        if result.changed:
            self.acknowledged[service].append(value)


def assert_converged(api: docker.APIClient, changes: DesiredChanges) -> bool:
    """Every service carries its last acknowledged `hatest.want` (nobody overwrote
    it) and `hatest.applied` equals it."""
    lagging = {}
    for service in changes.services:
        labels = labels_of(api, service)
        want, applied = labels.get("hatest.want"), labels.get("hatest.applied")
        if want not in changes.expected(service) or applied != want:
            lagging[service] = {
                "want": want,
                "applied": applied,
                "acknowledged": changes.acknowledged[service][-1],
            }
    assert not lagging, f"not converged: {lagging}"
    return True


def summary(
    seed: int,
    *,
    faults: FaultLog,
    writes: list[WriteRecord],
    elections: list[Election],
    changes: DesiredChanges,
    operators: Operators,
    convergence: str,
) -> str:
    per_instance: dict[str, Counter[str]] = {}
    for write in writes:
        kind = "swarm" if write.what.startswith("object=") else "consul"
        verdict = "allowed" if write.allowed else "refused"
        per_instance.setdefault(write.instance, Counter())[f"{kind} {verdict}"] += 1
    leader_changes = sum(
        1 for before, after in itertools.pairwise(elections) if before.instance != after.instance
    )
    unknown_outcomes = sum(
        process.log.read_text(errors="replace").count("write outcome unknown")
        for process in operators.processes.values()
    )
    lines = [
        f"soak: seed {seed}, {SOAK_SECONDS:g}s of faults, {len(operators.processes)} instances run",
        f"faults injected: {dict(faults.injected)}, {faults.at_leader} at the leader, "
        f"{faults.skipped} skipped (last healthy instance)",
        f"exit codes after SIGTERM: {dict(faults.term_exits)}; hung: {faults.hung_after_term}; "
        f"crashed: {faults.crashed}",
        "writes per instance:",
        *(f"  {name}: {dict(sorted(c.items()))}" for name, c in sorted(per_instance.items())),
        f"terms seen: {sorted({e.term for e in elections})}",
        f"elections: {len(elections)}, leader changes: {leader_changes}, "
        f"leaders in order: {[e.instance for e in elections]}",
        f"desired changes acknowledged: {changes.made()} "
        f"({ {s[:8]: len(v) - 1 for s, v in changes.acknowledged.items()} }), "
        f"version conflicts retried: {changes.conflicts}, gave up: {changes.gave_up}, "
        f"outcome unknown: {sum(len(v) for v in changes.unknown.values())}",
        f"operator writes with an unknown outcome (re-read): {unknown_outcomes}",
        f"generator error: {changes.error!r}",
        f"convergence after faults stopped: {convergence} (bound {CONVERGENCE_BOUND:.0f}s)",
    ]
    return "\n".join(lines)


@pytest.mark.timeout(SOAK_SECONDS + 900)
def test_random_faults_keep_one_writer_and_every_acknowledged_change_converges(
    operators: Operators, tracker: Tracker, docker_api: docker.APIClient, wait_until: Any
) -> None:
    seed = int(os.environ.get("SWARMOP_SOAK_SEED") or secrets.randbelow(2**31))
    print(f"\nsoak seed {seed} (replay with SWARMOP_SOAK_SEED={seed})")
    faults = FaultSchedule(operators, seed)
    operators.wait_leader(wait_until, timeout=30)
    services = [
        tracker.create_service(
            labels={"hatest": operators.run_id, "hatest.want": "0"}, command=["sleep", "1d"]
        )
        for _ in range(DESIRED_SERVICES)
    ]
    # The leader's timer writes twice a second, so a second writer would show in the log.
    tracker.create_service(
        labels={"hatest": operators.run_id, "hatest.tick": "on"}, command=["sleep", "1d"]
    )
    changes = DesiredChanges(docker_api, services, seed + 1)
    wait_until(
        lambda: assert_converged(docker_api, changes),
        timeout=30,
        what="the leader to apply the initial hatest.want=0",
    )

    changes.start()
    faults.begin()
    end = time.monotonic() + SOAK_SECONDS
    try:
        while (now := time.monotonic()) < end:
            faults.step(now)
            time.sleep(0.1)
    finally:
        changes.stop()
        faults.stop()
    stopped = time.monotonic()

    convergence = "not reached"
    try:
        wait_until(
            lambda: assert_converged(docker_api, changes),
            timeout=CONVERGENCE_BOUND,
            what="every service to converge on its last acknowledged hatest.want",
        )
        convergence = f"{time.monotonic() - stopped:.1f}s"
    finally:
        writes = operators.all_writes()
        elections = operators.all_elections()
        print(
            summary(
                seed,
                faults=faults.log,
                writes=writes,
                elections=elections,
                changes=changes,
                operators=operators,
                convergence=convergence,
            )
        )

    assert changes.error is None, f"the generator failed: {changes.error!r}"
    assert not faults.log.crashed, f"instances exited without a fault: {faults.log.crashed}"
    assert not faults.log.hung_after_term, "instances did not exit within 60s of SIGTERM"
    assert changes.made() > 0
    assert_no_overlap(writes)
    assert_one_writer_per_term(writes)
    assert_no_write_after_a_newer_election(writes, elections)
    assert_one_leader_per_term(elections)
