"""The state file: what one `up` made, so `down` and the next `up` can find it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swarmop.sandbox.errors import SandboxError

STATE_VERSION = 1


@dataclass
class ConsulPorts:
    http: int
    dns: int
    serf_lan: int
    serf_wan: int
    server: int
    grpc: int


@dataclass
class SandboxState:
    name: str
    subnet_index: int
    node_count: int
    phase: str = "creating"  # "creating" until everything answers, then "ready"
    consul_ports: ConsulPorts | None = None
    dockerd_pids: dict[str, int] = field(default_factory=dict)
    consul_pid: int | None = None
    forwarder_pid: int | None = None
    example: bool = False
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SandboxState:
        raw: dict[str, Any] = json.loads(text)
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {raw.get('version')!r}")
        ports = raw.pop("consul_ports", None)
        state = cls(**raw)
        state.consul_ports = ConsulPorts(**ports) if ports else None
        return state


def load(path: Path) -> SandboxState | None:
    """The recorded state, or None when there is none or it cannot be read."""
    try:
        return SandboxState.from_json(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, TypeError, KeyError):
        # A torn or foreign file: the caller treats the sandbox as broken and
        # cleans it by its name.
        return None


def save(path: Path, state: SandboxState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(state.to_json())
        os.replace(tmp, path)
    except OSError as error:
        raise SandboxError(f"cannot write sandbox state {path}: {error}") from error
