"""The harness for HA tests: operators as real `swarmop run` subprocesses.

Each instance runs the handlers in `ha_handlers.py` under a prefix of its own
test (so the lock and statuses are the test's), logs to a file, and is stopped
when the test ends. The write log (logger `swarmop.ha.writes`) and the election
log (`leading: ...`) are parsed from those files; every instance runs on this
host with its real clock (unless a test says otherwise), so their times compare.

Used by test_ha_failover.py, test_ha_soak.py, test_core_consul_faults.py and
test_core_reactor.py (an operator killed mid-handler).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
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

HANDLERS = Path(__file__).with_name("ha_handlers.py")
REPO = Path(__file__).resolve().parents[2]
SETTINGS = HASettings()
RESYNC_INTERVAL = 30.0
"""--resync-interval of every instance: the relist that catches what events missed."""
# A standby must lead within Consul's worst case (2 * TTL + lock-delay) plus
# time to notice and start: the bound documented in docs/deploy.md.
TAKEOVER_BOUND = SETTINGS.takeover_bound + 5.0
WRITE_LINE = re.compile(
    r"^(?P<time>\S+ \S+) \w+ swarmop\.ha\.writes: write (?P<verdict>allowed|refused) "
    r"instance=(?P<instance>\S+) session=(?P<session>\S+) term=(?P<term>\S+) (?P<what>.*)$"
)
LEAD_LINE = re.compile(
    r"^(?P<time>\S+ \S+) \w+ swarmop\.ha: leading: instance (?P<instance>\S+) holds \S+ "
    r"\(session (?P<session>[^,]+), term (?P<term>\d+)\)$"
)
LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"


@dataclass(frozen=True)
class WriteRecord:
    time: datetime
    allowed: bool
    instance: str
    term: int | None
    what: str


@dataclass(frozen=True)
class Election:
    """An instance took the lock (its `leading: ...` log line)."""

    time: datetime
    instance: str
    term: int


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
                    time=datetime.strptime(match["time"], LOG_TIME),
                    allowed=match["verdict"] == "allowed",
                    instance=match["instance"],
                    term=int(term) if term.isdigit() else None,
                    what=match["what"],
                )
            )
        return records

    def elections(self) -> list[Election]:
        return [
            Election(
                time=datetime.strptime(match["time"], LOG_TIME),
                instance=match["instance"],
                term=int(match["term"]),
            )
            for line in self.log.read_text(errors="replace").splitlines()
            if (match := LEAD_LINE.match(line)) is not None
        ]


class Operators:
    """Starts operator subprocesses for one test and always stops them."""

    def __init__(self, sandbox: SandboxInfo, kv: consul.Consul, tmp: Path) -> None:
        self.sandbox = sandbox
        self.kv = kv
        self.tmp = tmp
        self.run_id = unique("ha")
        self.prefix = f"hatest/{self.run_id}"
        self.processes: dict[str, OperatorProcess] = {}

    def start(
        self,
        instance: str,
        extra_env: dict[str, str] | None = None,
        *,
        handlers: Sequence[str | Path] = (HANDLERS,),
        extra_args: Sequence[str] = (),
        consul: bool = True,
    ) -> OperatorProcess:
        """`extra_env` may point this instance elsewhere (a fault proxy); `handlers`
        (FILE and `-m MODULE` arguments) and `extra_args` let other tests run their
        own modules (with `--no-ha`, say); `consul=False` runs it without Consul."""
        log = self.tmp / f"{instance}.log"
        env = dict(os.environ)
        env.update(DOCKER_HOST=self.sandbox.manager_docker_host, HATEST_RUN=self.run_id)
        if consul:
            env["CONSUL_HTTP_ADDR"] = self.sandbox.consul_http_addr
        else:
            env.pop("CONSUL_HTTP_ADDR", None)
        env.update(extra_env or {})  # may point this instance elsewhere (a fault proxy)
        env.pop("CONSUL_HTTP_TOKEN", None)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "swarmop",
                    "run",
                    *map(str, handlers),
                    "--instance-id",
                    instance,
                    "--prefix",
                    self.prefix,
                    "--resync-interval",
                    f"{RESYNC_INTERVAL:g}",
                    *extra_args,
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

    def all_elections(self) -> list[Election]:
        found = [record for p in self.processes.values() for record in p.elections()]
        return sorted(found, key=lambda record: record.time)


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


def assert_one_writer_per_term(writes: list[WriteRecord]) -> dict[int, set[str]]:
    """No term (lock index) is used by two instances; returns term -> its writer."""
    owners: dict[int, set[str]] = {}
    for write in writes:
        if write.allowed and write.term is not None:
            owners.setdefault(write.term, set()).add(write.instance)
    shared = {term: names for term, names in owners.items() if len(names) > 1}
    assert not shared, f"two instances wrote under one term: {shared}"
    return owners


def assert_one_leader_per_term(elections: list[Election]) -> None:
    elected: dict[int, set[str]] = {}
    for election in elections:
        elected.setdefault(election.term, set()).add(election.instance)
    shared = {term: names for term, names in elected.items() if len(names) > 1}
    assert not shared, f"two instances were elected under one term: {shared}"


def assert_no_write_after_a_newer_election(
    writes: list[WriteRecord], elections: list[Election]
) -> None:
    """Once an instance has taken the lock under a newer term, no Swarm write is
    allowed under an older one: the deposed leader's lease ended before Consul
    could hand the lock on (TTL, then lock-delay), so its gate is already shut."""
    timeline: list[tuple[datetime, int, WriteRecord | Election]] = [
        (election.time, 0, election) for election in elections
    ]
    timeline += [
        (write.time, 1, write)
        for write in writes
        if write.allowed and write.what.startswith("object=")
    ]
    newest: Election | None = None
    for _time, _order, entry in sorted(timeline, key=lambda item: (item[0], item[1])):
        if isinstance(entry, Election):
            if newest is None or entry.term > newest.term:
                newest = entry
            continue
        assert entry.term is not None
        assert newest is None or entry.term >= newest.term, (
            f"a write under term {entry.term} after {newest.instance} was elected "
            f"under term {newest.term} at {newest.time}: {entry}"
        )


def ticks_of(api: docker.APIClient, service_id: str) -> int:
    return int(labels_of(api, service_id).get("hatest.ticks", "0"))
