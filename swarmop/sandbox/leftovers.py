"""What remains of a sandbox that is not up: the traces of a killed `up` or `down`.

Found by the names and paths the layout derives from the sandbox's name, like
`cleanup.teardown` finds them, so a run killed before it wrote its state file is
seen as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from swarmop.sandbox import cgroups, cleanup, mounts, netns
from swarmop.sandbox.layout import SandboxLayout


@dataclass(frozen=True)
class Leftovers:
    processes: int = 0
    namespaces: int = 0
    mounts: int = 0
    cgroups: int = 0
    directories: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.processes or self.namespaces or self.mounts or self.cgroups or self.directories
        )

    def summary(self) -> str:
        """`3 processes, 4 network namespaces, ...`: only what is there."""
        counted = [
            (self.processes, "process", "processes"),
            (self.namespaces, "network namespace", "network namespaces"),
            (self.mounts, "mount", "mounts"),
            (self.cgroups, "cgroup", "cgroups"),
        ]
        parts = [f"{n} {one if n == 1 else many}" for n, one, many in counted if n]
        if self.directories:
            parts.append("directories " + " ".join(self.directories))
        return ", ".join(parts) or "nothing"


def find_leftovers(layout: SandboxLayout) -> Leftovers:
    roots = [layout.run_dir, layout.data_dir]
    return Leftovers(
        processes=len(cleanup.sandbox_pids(layout)),
        namespaces=len(netns.sandbox_netns(layout)),
        mounts=len(mounts.mounts_under(roots)),
        cgroups=len(cgroups.sandbox_cgroup_dirs(layout)),
        directories=tuple(str(root) for root in roots if root.exists()),
    )
