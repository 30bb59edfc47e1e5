"""High availability against the real sandbox: operators as real `swarmop run` processes.

Two instances of the operator run with the handlers in `ha_handlers.py` and a
prefix of their own; the tests kill, pause and stop the leader and check who
leads, that desired changes made during a hand-over are applied, and from the
write log (logger `swarmop.ha.writes`) that writers never overlap. Takeover
times are printed (run with -s to see them); `docs/deploy.md` lists them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import consul
import docker
import pytest

from swarmop.clients.swarm_write import update_service
from swarmop.ha import HASettings
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique

pytestmark = pytest.mark.cluster

HANDLERS = Path(__file__).with_name("ha_handlers.py")
REPO = Path(__file__).resolve().parents[2]
SETTINGS = HASettings()
# A standby must lead within Consul's worst case (2 * TTL + lock-delay) plus
# time to notice and start: the bound documented in docs/deploy.md.
TAKEOVER_BOUND = SETTINGS.takeover_bound + 5.0
WRITE_LINE = re.compile(
    r"^(?P<time>\S+ \S+) \w+ swarmop\.ha\.writes: write (?P<verdict>allowed|refused) "
    r"instance=(?P<instance>\S+) session=(?P<session>\S+) term=(?P<term>\S+) (?P<what>.*)$"
)


@dataclass(frozen=True)
class WriteRecord:
    time: datetime
    allowed: bool
    instance: str
    term: int | None
    what: str


class OperatorProcess:
    def __init__(self, instance: str, log: Path, popen: subprocess.Popen[bytes]) -> None:
        self.instance = instance
        self.log = log
        self.popen = popen

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def writes(self) -> list[WriteRecord]:
        records = []
        for line in self.log.read_text(errors="replace").splitlines():
            match = WRITE_LINE.match(line)
            if match is None:
                continue
            term = match["term"]
            records.append(
                WriteRecord(
                    time=datetime.strptime(match["time"], "%Y-%m-%d %H:%M:%S,%f"),
                    allowed=match["verdict"] == "allowed",
                    instance=match["instance"],
                    term=int(term) if term.isdigit() else None,
                    what=match["what"],
                )
            )
        return records


class Operators:
    """Starts operator subprocesses for one test and always stops them."""

    def __init__(self, sandbox: SandboxInfo, kv: consul.Consul, tmp: Path) -> None:
        self.sandbox = sandbox
        self.kv = kv
        self.tmp = tmp
        self.run_id = unique("ha")
        self.prefix = f"hatest/{self.run_id}"
        self.processes: dict[str, OperatorProcess] = {}

    def start(self, instance: str, extra_env: dict[str, str] | None = None) -> OperatorProcess:
        log = self.tmp / f"{instance}.log"
        env = dict(os.environ)
        env.update(
            DOCKER_HOST=self.sandbox.manager_docker_host,
            CONSUL_HTTP_ADDR=self.sandbox.consul_http_addr,
            HATEST_RUN=self.run_id,
            **(extra_env or {}),
        )
        env.pop("CONSUL_HTTP_TOKEN", None)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "swarmop",
                    "run",
                    str(HANDLERS),
                    "--instance-id",
                    instance,
                    "--prefix",
                    self.prefix,
                    "--resync-interval",
                    "30",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        process = OperatorProcess(instance, log, popen)
        self.processes[instance] = process
        return process

    def leader(self) -> str | None:
        _index, item = self.kv.kv.get(f"{self.prefix}/leader")
        if not item or not item.get("Session"):
            return None
        return str(json.loads(item["Value"])["instance"])

    def wait_leader(
        self, wait_until: Callable[..., Any], timeout: float, other_than: str | None = None
    ) -> str:
        def leading() -> str | None:
            name = self.leader()
            return name if name and name != other_than else None

        return str(wait_until(leading, timeout=timeout, what="an instance to lead"))

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGCONT)
                process.popen.terminate()
        for process in self.processes.values():
            try:
                process.popen.wait(60)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(5)

    def all_writes(self) -> list[WriteRecord]:
        records = [record for p in self.processes.values() for record in p.writes()]
        return sorted(records, key=lambda record: record.time)


@pytest.fixture
def operators(
    sandbox: SandboxInfo, consul_client: consul.Consul, tmp_path: Path, tracker: Tracker
) -> Iterator[Operators]:
    group = Operators(sandbox, consul_client, tmp_path)
    tracker.consul_prefix(f"{group.prefix}/")
    try:
        yield group
    finally:
        group.stop_all()
        for process in group.processes.values():
            tail = process.log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {process.instance} (exit {process.popen.returncode})", *tail, sep="\n")


def labels_of(api: docker.APIClient, service_id: str) -> dict[str, str]:
    return dict(api.inspect_service(service_id)["Spec"].get("Labels") or {})


def set_label(api: docker.APIClient, service_id: str, name: str, value: str) -> None:
    update_service(
        api, service_id, lambda spec: spec.setdefault("Labels", {}).__setitem__(name, value)
    )


def assert_no_overlap(writes: list[WriteRecord]) -> None:
    """Allowed Swarm writes, in time order, never go back to an older term."""
    newest: int | None = None
    for record in writes:
        if not record.allowed or not record.what.startswith("object="):
            continue
        assert record.term is not None
        if newest is not None:
            assert record.term >= newest, f"write from an older term after a newer one: {record}"
        newest = record.term if newest is None else max(newest, record.term)


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
    # The resumed instance's timer and publisher fire at once (refused by the gate),
    # and its election loop notices the lost session and demotes it.
    wait_until(
        lambda: "no longer the leader" in paused.log.read_text(errors="replace"),
        timeout=SETTINGS.ttl,
        what="the resumed instance to notice it lost the lock",
    )
    time.sleep(2)  # a few more timer rounds, all of which must be refused or skipped
    assert operators.leader() == second
    old_writes_after = [
        w for w in paused.writes() if w.allowed and w.time >= paused_at and "object=" in w.what
    ]
    assert old_writes_after == [], "the deposed leader wrote to the swarm after its pause"
    refused = [w for w in paused.writes() if not w.allowed and w.time >= resumed_at]
    print(f"resumed leader: {len(refused)} writes refused, 0 allowed")
    assert_no_overlap(operators.all_writes())


FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def ticks_of(api: docker.APIClient, service_id: str) -> int:
    return int(labels_of(api, service_id).get("hatest.ticks", "0"))


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
