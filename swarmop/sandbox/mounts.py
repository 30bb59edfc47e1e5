"""Unmounting whatever was left mounted under the sandbox's directories.

containerd's overlay mounts and libnetwork's namespace bind mounts live under a
daemon's data and exec roots; a killed daemon leaves them behind, and they keep
the directories (and network namespaces) from being removed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from swarmop.sandbox.errors import SandboxError

_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mount_points() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(_unescape(fields[4]))
    return points


def mounts_under(roots: list[Path]) -> list[str]:
    prefixes = [str(root).rstrip("/") for root in roots]
    return [
        point
        for point in mount_points()
        if any(point == prefix or point.startswith(prefix + "/") for prefix in prefixes)
    ]


def unmount_all_under(roots: list[Path]) -> None:
    for _ in range(20):  # mounts may be stacked on the same point
        points = mounts_under(roots)
        if not points:
            return
        for point in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
            if _libc.umount2(point.encode(), _MNT_DETACH) != 0:
                errno = ctypes.get_errno()
                if errno not in (22, 2):  # EINVAL / ENOENT: already gone
                    raise SandboxError(f"cannot unmount {point}: {os.strerror(errno)}")
    left = mounts_under(roots)
    if left:
        raise SandboxError(f"mounts remain after unmounting: {left[:5]}")
