"""What the operator plugs in to run as one of several instances.

- `gate`: checked before every Swarm write (`before_write`) and before every
  reconcile (a standby watches but does not act).
- `guard(kv)`: the Consul client for the operator's own writes, each carrying
  `check-session` on the lock key.
- `run()`: the election loop; `resign()` hands over (SIGTERM).
- `follow(board, on_elected, on_demoted)`: role changes, reflected in the
  operator info (`leader`) and the event log; on election the operator relists
  everything, on demotion it stops its timers and daemons.
- `while_leading(fn, ...)`: run a task only while leading (the status publisher:
  `<prefix>/operator` and the statuses are written by the leader alone).

Keys (``<prefix>`` defaults to ``swarmop``):
- ``<prefix>/leader``: the lock. Its session is the leader's; its value is JSON
  ``{instance, host, pid, leader: true, since}``. Gone (or without a session)
  while nobody leads.
- ``<prefix>/operators/<instance>``: one per running instance, held by that
  instance's session (so it disappears when the instance dies), JSON
  ``{instance, host, pid, leader, since}``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from swarmop.clients.consul import ConsulKV
from swarmop.ha.consul_session import ConsulSessions
from swarmop.ha.elector import Elector
from swarmop.ha.gate import LeaderGate
from swarmop.ha.guarded_kv import LeaderKV
from swarmop.ha.lease import Clock, Lease
from swarmop.settings import ConsulSettings
from swarmop.status import member_key

logger = logging.getLogger("swarmop.ha")

DEFAULT_TTL = 10.0
DEFAULT_LOCK_DELAY = 1.0
DEFAULT_MARGIN = 1.0


class Board(Protocol):
    def update_info(self, **changes: Any) -> None: ...
    def record(self, kind: str, name: str, level: int, message: str) -> None: ...


@dataclass(frozen=True)
class HASettings:
    ttl: float = DEFAULT_TTL
    """Session TTL (Consul's minimum is 10 s). Renewed every TTL/3."""
    lock_delay: float = DEFAULT_LOCK_DELAY
    """Consul refuses the lock for this long after the holder's session *ends*
    (not after a release): a margin for a leader that lost its session early."""
    margin: float = DEFAULT_MARGIN
    """The leader stops writing this long before its TTL runs out."""

    def __post_init__(self) -> None:
        if self.ttl < 10 or self.ttl > 86400:
            raise ValueError(f"HA TTL must be 10..86400 s (Consul's limits), got {self.ttl}")
        if not 0 <= self.lock_delay <= 60:
            raise ValueError(f"HA lock-delay must be 0..60 s, got {self.lock_delay}")
        if not 0 <= self.margin < self.ttl / 3:
            raise ValueError(f"HA margin must be 0..TTL/3, got {self.margin}")

    @property
    def takeover_bound(self) -> float:
        """Worst case after a leader dies: Consul ends its session up to 2*TTL after
        the last renew, then the lock-delay runs."""
        return 2 * self.ttl + self.lock_delay


def lock_key(prefix: str) -> str:
    return f"{prefix}/leader"


class Leadership:
    def __init__(
        self,
        consul: ConsulSettings,
        *,
        prefix: str,
        instance: str,
        settings: HASettings | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings or HASettings()
        self.consul = consul
        self.instance = instance
        self.lock_key = lock_key(prefix)
        self.member_key = member_key(prefix, instance)
        self.gate = LeaderGate(instance, Lease(self.settings.ttl, self.settings.margin, clock))
        self.sessions = ConsulSessions(consul)
        self.elector = Elector(
            self.sessions,
            self.gate,
            lock_key=self.lock_key,
            member_key=self.member_key,
            describe=self._describe,
            lock_delay=self.settings.lock_delay,
            on_change=self._set_role,
        )
        self._leader = False
        self._since = time.time()
        self._changed: anyio.Event | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader

    def _describe(self, leader: bool) -> bytes:
        return json.dumps(
            {
                "instance": self.instance,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "leader": leader,
                "since": time.time(),
            },
            sort_keys=True,
        ).encode()

    def _set_role(self, leader: bool) -> None:
        self._leader = leader
        self._since = time.time()
        if self._changed is not None:
            self._changed.set()
            self._changed = anyio.Event()

    async def _next_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def guard(self, kv: ConsulKV) -> ConsulKV:
        return LeaderKV(kv.settings, gate=self.gate, sessions=self.sessions, lock_key=self.lock_key)

    async def run(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        try:
            await self.elector.run()
        finally:
            self.sessions.close()

    def resign(self) -> None:
        self.elector.resign()

    async def follow(
        self,
        board: Board,
        on_elected: Callable[[], Awaitable[None]],
        on_demoted: Callable[[], None],
    ) -> None:
        """Reflect role changes on the board and in the reactor, for as long as it runs."""
        acting = False
        board.record(
            "operator",
            "",
            logging.INFO,
            f"standing by: instance {self.instance} campaigns for {self.lock_key} "
            f"(TTL {self.settings.ttl:.0f}s, lock-delay {self.settings.lock_delay:.0f}s)",
        )
        while True:
            if self._leader != acting:
                acting = self._leader
                board.update_info(leader=acting)
                if acting:
                    board.record("operator", "", logging.WARNING, "elected leader: reconciling")
                    try:
                        await on_elected()
                    except Exception as error:
                        # The resync timer and the Docker watcher relist again later.
                        board.record(
                            "operator", "", logging.WARNING, f"relist after election: {error}"
                        )
                else:
                    on_demoted()
                    board.record(
                        "operator", "", logging.WARNING, "no longer the leader: standing by"
                    )
                continue
            await self._next_change()

    async def while_leading(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run `fn(*args)` while leading; cancelled on demotion, started again on election."""
        while True:
            while not self._leader:
                await self._next_change()
            async with anyio.create_task_group() as tg:

                async def demoted(scope: anyio.CancelScope = tg.cancel_scope) -> None:
                    while self._leader:
                        await self._next_change()
                    scope.cancel()

                tg.start_soon(demoted)
                await fn(*args)
                tg.cancel_scope.cancel()
