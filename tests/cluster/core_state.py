"""What an operator has stored about an object in Consul, read the way it reads it."""

from __future__ import annotations

from swarmop.clients.consul import ConsulKV
from swarmop.planning.progress import ObjectState
from swarmop.reactor.store import ConsulStateStore
from swarmop.sandbox import SandboxInfo
from swarmop.settings import resolve_consul


def stored_state(sandbox: SandboxInfo, prefix: str, kind: str, name: str) -> ObjectState | None:
    """The progress and last handled essence under `<prefix>/state/`, read afresh
    (a new store each time: the operator's own store caches what it wrote)."""
    settings = resolve_consul(addr=sandbox.consul_http_addr, env={})
    assert settings is not None
    return ConsulStateStore(ConsulKV(settings), prefix).load((kind, name))
