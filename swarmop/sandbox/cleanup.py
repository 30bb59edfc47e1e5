"""Removing a sandbox completely, whether it was stopped cleanly or crashed.

Everything is found both from the state file and from the names the layout
derives, so a run killed before it wrote its state is cleaned just as well.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from swarmop.sandbox import cgroups, mounts, netns, procs
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.layout import DATA_BASE, NETNS_DIR, RUN_BASE, SandboxLayout
from swarmop.sandbox.state import SandboxState

FORWARDER_MODULE = "swarmop.sandbox.forwarder"


def _netns_inodes(layout: SandboxLayout) -> set[int]:
    inodes = set()
    for name in netns.sandbox_netns(layout):
        with contextlib.suppress(OSError):
            inodes.add(os.stat(NETNS_DIR / name).st_ino)
    return inodes


def _ownership_test(layout: SandboxLayout) -> Callable[[int], bool]:
    """A predicate: does this pid belong to the sandbox (by path, name, cgroup or netns)?"""
    roots = (str(layout.run_dir), str(layout.data_dir))
    inodes = _netns_inodes(layout)

    def belongs(pid: int) -> bool:
        argv = procs.cmdline(pid)
        for arg in argv:
            for root in roots:
                if root in arg and (arg.endswith(root) or root + "/" in arg or root + "," in arg):
                    return True
        if layout.consul_node_name in argv:
            return True
        if FORWARDER_MODULE in argv and "--sandbox" in argv:
            position = argv.index("--sandbox")
            if position + 1 < len(argv) and argv[position + 1] == layout.name:
                return True
        for path in procs.cgroup_paths(pid):
            if any(layout.cgroup_pattern.match(part) for part in path.split("/")):
                return True
        if inodes:
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{pid}/ns/net").st_ino in inodes:
                    return True
        return False

    return belongs


def sandbox_pids(layout: SandboxLayout) -> list[int]:
    """Every live process that belongs to the sandbox."""
    return procs.find_pids(_ownership_test(layout))


def owned(layout: SandboxLayout, pid: int | None) -> bool:
    """A recorded pid is ours only while it is alive and still one of the sandbox's
    processes: after a reboot the state file survives (/run may be on disk) and
    its pids can belong to anything."""
    return bool(pid) and procs.is_alive(pid or 0) and _ownership_test(layout)(pid or 0)


def stop_daemons_gracefully(
    layout: SandboxLayout, state: SandboxState, timeout: float = 20.0
) -> None:
    """SIGTERM every daemon the state names and wait, so dockerd unmounts its own mounts."""
    pids = [pid for pid in state.dockerd_pids.values()]
    pids += [pid for pid in (state.forwarder_pid, state.consul_pid) if pid]
    live = [pid for pid in pids if owned(layout, pid)]
    if not live:
        return
    with ThreadPoolExecutor(max_workers=len(live)) as pool:
        list(pool.map(lambda pid: procs.stop(pid, timeout=timeout), live))


def teardown(ip: str, layout: SandboxLayout, state: SandboxState | None) -> None:
    if state is not None:
        stop_daemons_gracefully(layout, state)
    # Whatever survived (a crashed run's shims and containers, a daemon we never
    # recorded) is killed outright: there is nothing left to shut down cleanly.
    for _ in range(5):
        leftovers = sandbox_pids(layout)
        if not leftovers:
            break
        procs.kill_all(leftovers)
    else:
        raise SandboxError(f"processes of sandbox {layout.name} keep reappearing")
    roots = [layout.run_dir, layout.data_dir]
    mounts.unmount_all_under(roots)
    netns.delete(ip, netns.sandbox_netns(layout))
    for directory in cgroups.sandbox_cgroup_dirs(layout):
        cgroups.remove_tree(directory)
    for root in roots:
        _remove_dir(root)


def _remove_dir(path: Path) -> None:
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
    except OSError as error:
        raise SandboxError(f"cannot remove {path}: {error}") from error


def known_sandbox_names() -> list[str]:
    """Names of every sandbox with anything left on this machine."""
    names: set[str] = set()
    for base in (RUN_BASE, DATA_BASE):
        with contextlib.suppress(FileNotFoundError):
            names.update(p.name for p in base.iterdir() if p.is_dir())
    for name in netns.list_netns():
        if name.startswith("swarmop-") and name.endswith("-hub"):
            names.add(name[len("swarmop-") : -len("-hub")])
    return sorted(names)
