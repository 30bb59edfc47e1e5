"""Starting daemons detached from us, and stopping them for sure.

A daemon started here outlives the command that started it (`swarmop sandbox up`
returns), so it runs in a session of its own and is tracked by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from swarmop.sandbox.errors import SandboxError


def spawn(argv: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None) -> int:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            close_fds=True,
        )
    # The Popen object is dropped on purpose: the daemon must outlive it. Silence
    # the "still running" warning its finaliser would print.
    process.returncode = 0
    return process.pid


def _reap(pid: int) -> None:
    # A daemon we started ourselves and that has exited stays a zombie of this
    # process until waited for; one that is not our child raises and is ignored.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return bool(fields) and fields[0] not in ("Z", "X")


def read_pidfile(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop(pid: int, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Ask a process to exit, wait for it, and kill it if it does not."""
    if not is_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if wait_for(lambda: not is_alive(pid), timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_for(lambda: not is_alive(pid), 10.0):
        raise SandboxError(f"process {pid} did not exit even after SIGKILL")


def kill_all(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        if not wait_for(lambda pid=pid: not is_alive(pid), 10.0):  # type: ignore[misc]
            raise SandboxError(f"process {pid} did not exit after SIGKILL")


def _all_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def cgroup_paths(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return []
    return [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]


def find_pids(matches: Callable[[int], bool]) -> list[int]:
    own = os.getpid()
    return [pid for pid in _all_pids() if pid != own and is_alive(pid) and matches(pid)]
