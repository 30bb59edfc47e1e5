"""Everything one running operator shares: clients, limiters, caches, board, store."""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from swarmop.clients import swarm_write
from swarmop.clients.consul import ConsulKV
from swarmop.clients.docker import DockerReader, EventStream
from swarmop.desired import DesiredState, merge_desired
from swarmop.ha.gate import OPEN_GATE, WriteGate
from swarmop.reactor.board import StatusBoard
from swarmop.reactor.store import MemoryStateStore, StateStore
from swarmop.registry import Registry
from swarmop.settings import Settings
from swarmop.status import Outcome
from swarmop.views import NodeView, ServiceView

T = TypeVar("T")
Key = tuple[str, str]  # ("service", name) | ("node", hostname)


def is_named(kind: str, name: str, attrs: Mapping[str, Any]) -> bool:
    """Whether an inspect result is the object that was asked for by name.

    Docker answers a name no service has with a service whose ID starts with
    it, so once a short-named service is deleted its name may find another
    one; a node lookup by hostname may likewise find a node by ID. Such a
    result is not the object: it must be taken as not found.
    """
    if kind == "service":
        return (attrs.get("Spec") or {}).get("Name") == name
    hostname = (attrs.get("Description") or {}).get("Hostname")
    return not hostname or hostname == name


def inspect_named(reader: DockerReader, kind: str, name: str) -> dict[str, Any] | None:
    """The service or node with this name (a node's is its hostname), or None."""
    inspect = reader.inspect_service if kind == "service" else reader.inspect_node
    attrs = inspect(name)
    return attrs if attrs is not None and is_named(kind, name, attrs) else None


class Memo(types.SimpleNamespace):
    """The `memo` kwarg: one namespace shared by all handlers of this operator."""


@dataclass
class Context:
    settings: Settings
    registry: Registry
    api: Any
    reader: DockerReader
    kv: ConsulKV | None
    store: StateStore
    board: StatusBoard
    memo: Memo = field(default_factory=Memo)
    gate: WriteGate = OPEN_GATE
    """Checked before every write (swarmop.ha: refuses unless this instance leads)."""
    docker_limiter: anyio.CapacityLimiter = field(init=False)
    consul_limiter: anyio.CapacityLimiter = field(init=False)
    handler_limiter: anyio.CapacityLimiter = field(init=False)
    object_limiter: anyio.CapacityLimiter = field(init=False)
    consul_keys: dict[Key, dict[str, str]] = field(default_factory=dict)
    consul_loaded: set[str] = field(default_factory=set)
    known: dict[Key, str] = field(default_factory=dict)
    resumed: set[Key] = field(default_factory=set)
    event_stream: EventStream | None = None
    """The Docker event connection in use (closable from any thread)."""
    docker_connects: int = 0
    """Event connections opened, each followed by a full list."""
    consul_outage: bool = False
    """A Consul watcher lost the agent; the first one to reach it again restores
    what it may have lost (reactor.recovery)."""
    stopping: bool = False
    """Shutdown has begun: passes in progress start no further handler."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.docker_limiter = anyio.CapacityLimiter(self.settings.docker_threads)
        self.consul_limiter = anyio.CapacityLimiter(self.settings.consul_threads)
        self.handler_limiter = anyio.CapacityLimiter(max(1, self.settings.max_workers))
        self.object_limiter = anyio.CapacityLimiter(max(1, self.settings.max_workers))

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    async def docker(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args), limiter=self.docker_limiter, abandon_on_cancel=True
        )

    async def inspect(self, key: Key) -> dict[str, Any] | None:
        """The object `key` names as Docker has it now, or None when it is gone."""
        return await self.docker(inspect_named, self.reader, key[0], key[1])

    async def consul(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args), limiter=self.consul_limiter, abandon_on_cancel=True
        )

    async def stored(self, fn: Callable[..., T], *args: Any) -> T:
        """Calls on the state store: in a thread only when it does I/O."""
        if isinstance(self.store, MemoryStateStore):
            return fn(*args)
        if self.kv is None:  # files
            return await anyio.to_thread.run_sync(functools.partial(fn, *args))
        return await self.consul(fn, *args)

    def keys_for(self, key: Key) -> dict[str, str]:
        with self.lock:
            return dict(self.consul_keys.get(key, {}))

    def desired_for(self, kind: str, name: str, labels: Any) -> DesiredState:
        keys = self.keys_for((kind, name))
        return merge_desired("service" if kind == "service" else "node", labels or {}, keys)


class Cluster:
    """The `cluster` kwarg: blocking reads of the whole swarm for handlers.

    Sync handlers run in worker threads and may call these directly; async
    handlers should wrap them in ``anyio.to_thread.run_sync``.
    """

    def __init__(self, context: Context, *, source: str = "") -> None:
        self._context = context
        self._source = source  # the handler whose reports these are

    @property
    def api(self) -> Any:
        """The raw docker.APIClient for reads (write through `update_service` /
        `update_node` or `patch`)."""
        return self._context.api

    @property
    def consul(self) -> ConsulKV | None:
        return self._context.kv

    @property
    def prefix(self) -> str:
        return self._context.prefix

    @property
    def before_write(self) -> Callable[[str, int], None]:
        """The leader check run before every write of `update_service` /
        `update_node`: with several instances (swarmop.ha) it refuses unless this
        one leads."""
        return self._context.gate.before_write

    def update_service(
        self, service_id: str, mutate: swarm_write.Mutation
    ) -> swarm_write.WriteResult:
        """Apply `mutate` to the service's full current spec and write it with its
        version, retried on "update out of sequence", through the leader check
        (NotLeaderError, a TemporaryError, on a standby or deposed leader). For a
        handler that writes by itself rather than through `patch`."""
        return swarm_write.update_service(
            self.api, service_id, mutate, before_write=self.before_write
        )

    def update_node(self, node_id: str, mutate: swarm_write.Mutation) -> swarm_write.WriteResult:
        """Like `update_service`, for a node's spec (labels, availability, role)."""
        return swarm_write.update_node(self.api, node_id, mutate, before_write=self.before_write)

    def services(self) -> list[ServiceView]:
        reader = self._context.reader
        return [ServiceView(attrs, reader.list_tasks) for attrs in reader.list_services()]

    def nodes(self) -> list[NodeView]:
        return [NodeView(attrs) for attrs in self._context.reader.list_nodes()]

    def service(self, name: str) -> ServiceView | None:
        """The service with exactly this name, or None."""
        reader = self._context.reader
        attrs = inspect_named(reader, "service", name)
        return None if attrs is None else ServiceView(attrs, reader.list_tasks)

    def node(self, name_or_id: str) -> NodeView | None:
        """The node with this hostname or this full ID, or None."""
        attrs = self._context.reader.inspect_node(name_or_id)
        if attrs is None or not (
            attrs.get("ID") == name_or_id or is_named("node", name_or_id, attrs)
        ):
            return None
        return NodeView(attrs)

    def desired(self, kind: str, name: str, labels: Any) -> DesiredState:
        """Desired state of any object, from its labels and the cached Consul keys."""
        return self._context.desired_for(kind, name, labels)

    def report(self, kind: str, name: str, outcome: Outcome | str, message: str = "") -> None:
        """Put a finding on an object's published status, e.g. from a timer or daemon.

        `outcome` is ok, pending, blocked or error; the object's status shows the
        worst of its change handlers' outcome and every report, with all messages.
        Each handler has one report per object: a new one replaces it, and
        ``report(kind, name, "ok")`` (no message) withdraws it. Safe from any thread.
        """
        if kind not in ("service", "node"):
            raise ValueError(f"report: kind must be service or node, got {kind!r}")
        if not name:
            raise ValueError("report: name must not be empty")
        try:
            value = Outcome(outcome)
        except ValueError:
            allowed = ", ".join(item.value for item in Outcome)
            raise ValueError(f"report: outcome must be one of {allowed}, got {outcome!r}") from None
        self._context.board.report(
            "service" if kind == "service" else "node", name, self._source, value, str(message)
        )
