"""An `up` or `down` killed half way leaves daemons, namespaces and mounts behind:
`status` and `env` must say so and point at `down`, which removes them all.

Runs on a sandbox of its own (`<session sandbox>-crash`); it checks only what
carries that name, so other sandboxes on the machine do not disturb it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from swarmop.sandbox import Sandbox
from swarmop.sandbox import state as state_file
from swarmop.sandbox.layout import SandboxLayout
from swarmop.sandbox.procs import is_alive
from swarmop.sandbox.testing import run_swarmop, wait_until

pytestmark = pytest.mark.cluster


def _kill_up_once_its_daemons_started(name: str, log: Path) -> state_file.SandboxState:
    layout = SandboxLayout.for_name(name)
    with open(log, "w") as output:
        up = subprocess.Popen(
            [sys.executable, "-m", "swarmop", "sandbox", "up", "--name", name],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:

        def daemons_started() -> state_file.SandboxState | None:
            state = state_file.load(layout.state_file)
            return state if state is not None and len(state.dockerd_pids) == 3 else None

        # The pids are saved before the daemons answer and the swarm forms:
        # seconds of work are left when the kill lands.
        state = wait_until(
            daemons_started, timeout=120, interval=0.02, what="the up to start its daemons"
        )
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait(timeout=30)
    killed_at = state_file.load(layout.state_file)
    assert killed_at is not None and killed_at.phase == "creating", (
        f"the up finished before it was killed: {log.read_text()}"
    )
    return state


def _assert_reports_leftovers(name: str) -> None:
    remedy = f"`swarmop sandbox down --name {name}` removes them"
    status = run_swarmop("sandbox", "status", "--name", name)
    assert status.returncode == 1
    assert "is down" not in status.stdout, status.stdout
    assert f"sandbox {name!r} is not up, but an `up` or `down` that did not finish left" in (
        status.stdout
    )
    assert "processes" in status.stdout and "network namespaces" in status.stdout
    assert remedy in status.stdout

    env = run_swarmop("sandbox", "env", "--name", name)
    assert env.returncode == 1
    assert env.stdout == "", "env must not print export lines for a sandbox that is not up"
    assert remedy in env.stderr


def test_status_and_env_name_the_leftovers_of_a_killed_up_and_down_removes_them(
    side_sandbox: Callable[[str], Sandbox], tmp_path: Path
) -> None:
    crashed = side_sandbox("crash")
    state = _kill_up_once_its_daemons_started(crashed.name, tmp_path / "up.log")
    assert all(is_alive(pid) for pid in state.dockerd_pids.values()), "daemons outlive the up"
    assert crashed.info() is None
    assert not crashed.busy(), "a killed up holds no lock"
    found = crashed.leftovers()
    assert found.processes >= 3 and found.namespaces == 4, found

    _assert_reports_leftovers(crashed.name)
    # Killed before it wrote its state file: the leftovers are found by name.
    SandboxLayout.for_name(crashed.name).state_file.unlink()
    _assert_reports_leftovers(crashed.name)

    down = run_swarmop("sandbox", "down", "--name", crashed.name)
    assert down.returncode == 0, down.stderr
    assert not crashed.leftovers(), crashed.leftovers()
    assert not any(is_alive(pid) for pid in state.dockerd_pids.values())
    status = run_swarmop("sandbox", "status", "--name", crashed.name)
    assert status.returncode == 1
    assert status.stdout.strip() == (
        f"sandbox {crashed.name!r} is down (run `swarmop sandbox up --name {crashed.name}`)"
    )


def test_a_killed_down_is_reported_degraded_and_a_second_down_finishes_it(
    side_sandbox: Callable[[str], Sandbox],
) -> None:
    crashed = side_sandbox("crash")
    info = crashed.up(nodes=3)
    manager_pid = crashed.dockerd_pid("node-1")
    stuck_pid = crashed.dockerd_pid("node-2")
    assert manager_pid and stuck_pid
    # A stopped daemon ignores down's SIGTERM until down's patience runs out
    # (20 s): the kill lands while down is waiting for it, the other daemons gone.
    os.kill(stuck_pid, signal.SIGSTOP)
    try:
        down = subprocess.Popen(
            [sys.executable, "-m", "swarmop", "sandbox", "down", "--name", crashed.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(
                lambda: not is_alive(manager_pid), timeout=60, what="down to stop node-1's dockerd"
            )
            assert down.poll() is None, "down finished although node-2's dockerd was stopped"
        finally:
            down.send_signal(signal.SIGKILL)
            down.wait(timeout=30)
        assert is_alive(stuck_pid)

        status = run_swarmop("sandbox", "status", "--name", crashed.name)
        assert status.returncode == 1
        assert status.stdout.startswith(f"sandbox {crashed.name!r}: DEGRADED"), status.stdout
        assert "problem: dockerd of node-1 is not running" in status.stdout
        remedy = f"`swarmop sandbox down --name {crashed.name}` removes it"
        assert remedy in status.stdout

        env = run_swarmop("sandbox", "env", "--name", crashed.name)
        assert env.returncode == 0, env.stderr
        assert f"export DOCKER_HOST={info.manager_docker_host}" in env.stdout.splitlines()
        assert f"sandbox {crashed.name!r} is degraded" in env.stderr
        assert remedy in env.stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stuck_pid, signal.SIGCONT)  # it then exits on the SIGTERM it holds

    finished = run_swarmop("sandbox", "down", "--name", crashed.name)
    assert finished.returncode == 0, finished.stderr
    assert not crashed.leftovers(), crashed.leftovers()
