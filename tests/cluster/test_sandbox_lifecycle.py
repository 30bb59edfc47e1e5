"""A sandbox leaves nothing behind, and recovers from a crash of all its processes.

Uses a second sandbox of its own, next to the session's: the comparisons are
limited to what carries its name, or to what no sandbox may ever create (links,
mounts and iptables rules in the host's own namespace), so other sandboxes
running on the machine at the same time do not disturb them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import consul
import docker
import pytest

from swarmop.sandbox import Sandbox, SandboxInfo
from swarmop.sandbox.cgroups import sandbox_cgroup_dirs
from swarmop.sandbox.cleanup import sandbox_pids
from swarmop.sandbox.layout import DATA_BASE, RUN_BASE, SandboxLayout
from swarmop.sandbox.mounts import mount_points
from swarmop.sandbox.netns import list_netns
from swarmop.sandbox.procs import cmdline, find_pids
from swarmop.sandbox.testing import Tracker, running_tasks, unique, wait_until

pytestmark = pytest.mark.cluster

NAME = os.environ.get("SWARMOP_TEST_LIFECYCLE_SANDBOX", "swarmop-lifecycle")
SANDBOX_PATHS = (str(RUN_BASE) + "/", str(DATA_BASE) + "/", "/run/netns/swarmop-")


@dataclass(frozen=True)
class HostSnapshot:
    own_processes: frozenset[str]
    own_netns: frozenset[str]
    own_mounts: frozenset[str]
    own_files: frozenset[str]
    own_cgroups: frozenset[str]
    host_links: frozenset[str]
    host_mounts: frozenset[str]
    host_firewall: frozenset[str]


def _host_links() -> frozenset[str]:
    """Every link of the host's own namespace by name: veths, bridges such as the
    docker0 and docker_gwbridge a dockerd there would add, anything new."""
    out = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return frozenset(
        line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line
    )


def _find_program(program: str) -> str | None:
    return shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _saved_rules(program: str) -> set[str]:
    """Rules, user-defined chains and non-default policies, each with its table.

    The tables may not exist at all before the first dockerd on the machine loads
    the modules; an empty built-in chain with policy ACCEPT is no change.
    """
    result = subprocess.run([program], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"`{program}` failed (exit {result.returncode}): {result.stderr.strip()}; "
            "the host's firewall cannot be compared",
            pytrace=False,
        )
    kept = set()
    table = "?"
    for line in result.stdout.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A"):
            kept.add(f"{table} {line}")
        elif line.startswith(":"):
            chain, policy = line[1:].split()[:2]
            if policy not in ("ACCEPT", "-"):
                kept.add(f"{table} {chain} policy {policy}")
            elif policy == "-":
                kept.add(f"{table} chain {chain}")  # a user-defined chain
    return kept


def _host_firewall() -> frozenset[str]:
    """The host namespace's iptables state, and its ip6tables state where installed.

    Without iptables-save nothing can be compared: that fails rather than
    letting a changed firewall pass unseen.
    """
    iptables_save = _find_program("iptables-save")
    if iptables_save is None:
        pytest.fail(
            "iptables-save is missing (make setup installs iptables): the host's firewall "
            "cannot be compared",
            pytrace=False,
        )
    rules = {f"ipv4 {rule}" for rule in _saved_rules(iptables_save)}
    ip6tables_save = _find_program("ip6tables-save")
    if ip6tables_save is not None:
        rules |= {f"ipv6 {rule}" for rule in _saved_rules(ip6tables_save)}
    return frozenset(rules)


def _assert_unchanged(before: frozenset[str], after: frozenset[str], what: str) -> None:
    assert after == before, (
        f"{what}: added {sorted(after - before)}, removed {sorted(before - after)}"
    )


def snapshot(layout: SandboxLayout) -> HostSnapshot:
    marks = (str(layout.run_dir), str(layout.data_dir), layout.consul_node_name)

    def ours(pid: int) -> bool:
        return any(mark in arg for arg in cmdline(pid) for mark in marks)

    processes = set(sandbox_pids(layout)) | set(find_pids(ours))
    points = mount_points()
    files = [str(p) for p in (layout.run_dir, layout.data_dir, layout.lock_file) if p.exists()]
    return HostSnapshot(
        own_processes=frozenset(f"{pid} {' '.join(cmdline(pid))[:120]}" for pid in processes),
        own_netns=frozenset(n for n in list_netns() if layout.netns_pattern.match(n)),
        own_mounts=frozenset(
            p
            for p in points
            if str(layout.run_dir) in p
            or str(layout.data_dir) in p
            or re.search(layout.netns_pattern.pattern.lstrip("^").rstrip("$"), p)
        ),
        own_files=frozenset(files),
        own_cgroups=frozenset(str(p) for p in sandbox_cgroup_dirs(layout)),
        host_links=_host_links(),
        host_mounts=frozenset(p for p in points if not p.startswith(SANDBOX_PATHS)),
        host_firewall=_host_firewall(),
    )


def assert_nothing_left(before: HostSnapshot, after: HostSnapshot) -> None:
    assert after.own_processes == frozenset(), "daemons left running"
    assert after.own_netns == frozenset(), "network namespaces left"
    assert after.own_mounts == frozenset(), "mounts left"
    assert after.own_files == frozenset(), "directories left"
    assert after.own_cgroups == frozenset(), "cgroups left"
    _assert_unchanged(before.host_links, after.host_links, "links changed in the host namespace")
    _assert_unchanged(before.host_mounts, after.host_mounts, "mounts changed outside the sandbox")
    _assert_unchanged(before.host_firewall, after.host_firewall, "host firewall rules changed")


@pytest.fixture
def lifecycle_sandbox() -> Iterator[Sandbox]:
    sandbox = Sandbox(NAME)
    sandbox.down()  # leftovers of an earlier interrupted run
    yield sandbox
    sandbox.down()


def _assert_swarm_works(info: SandboxInfo) -> None:
    api = docker.APIClient(base_url=info.manager_docker_host, version="1.41")
    try:
        nodes = api.nodes()
        assert sorted(n["Description"]["Hostname"] for n in nodes) == info.node_names
        assert {n["Status"]["State"] for n in nodes} == {"ready"}
    finally:
        api.close()


def test_up_then_down_leaves_nothing_behind(lifecycle_sandbox: Sandbox) -> None:
    layout = SandboxLayout.for_name(NAME)
    before = snapshot(layout)
    assert before.own_processes == frozenset() and before.own_netns == frozenset()

    info = lifecycle_sandbox.up(nodes=3)
    _assert_swarm_works(info)
    during = snapshot(layout)
    assert len(during.own_netns) == 4  # hub + 3 nodes
    assert during.own_processes, "the sandbox's daemons should be visible while it runs"
    assert not {"docker0", "docker_gwbridge"} & during.host_links, "a dockerd ran on the host"
    _assert_unchanged(before.host_links, during.host_links, "up touched the host's links")
    _assert_unchanged(before.host_firewall, during.host_firewall, "up touched the host's firewall")

    lifecycle_sandbox.down()
    assert_nothing_left(before, snapshot(layout))
    assert lifecycle_sandbox.info() is None


def test_up_recovers_after_every_process_was_killed(lifecycle_sandbox: Sandbox) -> None:
    layout = SandboxLayout.for_name(NAME)
    before = snapshot(layout)
    lifecycle_sandbox.up(nodes=3)

    victims = sandbox_pids(layout)
    assert victims
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert lifecycle_sandbox.problems(), "a killed sandbox must not look healthy"
    # The kill leaves mounts, namespaces and files behind; `up` must clean them.
    assert snapshot(layout).own_mounts

    info = lifecycle_sandbox.up(nodes=3)
    _assert_swarm_works(info)
    assert lifecycle_sandbox.problems() == []

    lifecycle_sandbox.down()
    assert_nothing_left(before, snapshot(layout))
    assert not Path(layout.state_file).exists()


def test_a_restarted_node_comes_back_and_runs_tasks(
    sandbox_control: Sandbox, docker_api: docker.APIClient, tracker: Tracker
) -> None:
    def node3_state() -> str:
        node = next(n for n in docker_api.nodes() if n["Description"]["Hostname"] == "node-3")
        return str(node["Status"]["State"])

    sandbox_control.stop_node("node-3")
    assert sandbox_control.dockerd_pid("node-3") is None
    wait_until(lambda: node3_state() == "down", timeout=60, what="the manager to see node-3 down")
    sandbox_control.start_node("node-3")
    wait_until(lambda: node3_state() == "ready", timeout=60, what="node-3 ready again")
    service = tracker.create_service(
        command=["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
        constraints=["node.hostname==node-3"],
    )
    wait_until(lambda: running_tasks(docker_api, service), timeout=60, what="a task on node-3")


def test_a_restarted_consul_answers_with_an_empty_store(
    sandbox_control: Sandbox, consul_client: consul.Consul
) -> None:
    key = f"swarmop-test/{unique('restart')}"
    consul_client.kv.put(key, "x")
    sandbox_control.restart_consul()
    assert sandbox_control.problems() == []
    _, item = consul_client.kv.get(key)
    assert item is None  # dev mode: data lives in memory only
