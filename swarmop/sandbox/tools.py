"""The machine-level programs the sandbox drives, found or reported clearly missing."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from swarmop.sandbox.errors import SandboxError

TOOLS_BASE = Path(os.environ.get("SWARMOP_TOOLS", "/opt/swarmop"))
SETUP_HINT = "run `make setup`"


@dataclass(frozen=True)
class Tools:
    dockerd: str
    consul: str
    nsenter: str
    unshare: str
    ip: str
    busybox: str
    nginx: str


def require_root() -> None:
    if os.geteuid() != 0:
        raise SandboxError("the sandbox needs root (network namespaces, dockerd): run as root")


def _which(program: str, *extra: Path) -> str | None:
    for candidate in extra:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def find_tools() -> Tools:
    found: dict[str, str | None] = {
        "dockerd": _which("dockerd"),
        "consul": _which("consul", TOOLS_BASE / "consul/usr/bin/consul"),
        "nsenter": _which("nsenter"),
        "unshare": _which("unshare"),
        "ip": _which("ip"),
        "busybox": _which("busybox", Path("/bin/busybox")),
        "nginx": _which("nginx", TOOLS_BASE / "nginx/usr/sbin/nginx"),
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        what = ", ".join(f"{name} not installed" for name in missing)
        raise SandboxError(f"{what}: {SETUP_HINT}")
    return Tools(**{name: str(path) for name, path in found.items()})


def dockerd_available() -> bool:
    return _which("dockerd") is not None
