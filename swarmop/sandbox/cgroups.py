"""The cgroups the nodes' containers run in, found by the sandbox's cgroup parent.

A killed containerd-shim leaves its container's processes running, reparented to
init; their cgroup is the one reliable mark that they belong to the sandbox.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from swarmop.sandbox.layout import SandboxLayout

CGROUP_ROOT = Path("/sys/fs/cgroup")


def sandbox_cgroup_dirs(layout: SandboxLayout) -> list[Path]:
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    hierarchies = [CGROUP_ROOT, *(p for p in CGROUP_ROOT.iterdir() if p.is_dir())]
    for hierarchy in hierarchies:
        with contextlib.suppress(OSError):
            for child in hierarchy.iterdir():
                if child.is_dir() and layout.cgroup_pattern.match(child.name):
                    found.append(child)
    return found


def pids_in(directory: Path) -> set[int]:
    pids: set[int] = set()
    for dirpath, _dirs, files in os.walk(directory):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError, ValueError):
                text = (Path(dirpath) / "cgroup.procs").read_text()
                pids.update(int(line) for line in text.split())
    return pids


def remove_tree(directory: Path) -> None:
    """Remove an emptied cgroup directory bottom-up (cgroup dirs are rmdir-only)."""
    for dirpath, _dirs, _files in os.walk(directory, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)
