"""The campaign loop: hold a Consul session, take the lock when it is free, keep it, let go.

One session per attempt at leading (TTL only, behavior delete, a short
lock-delay). As a standby the loop renews its session every TTL/3 and blocks
on the lock key in between, so it sees a release or a deleted key at once. As
leader it renews every TTL/3 and checks that the key still names its session;
when a renew fails it retries until the lease (monotonic) runs out, then
demotes, drops the session and campaigns again with a new one.

Resigning (SIGTERM): the gate closes, writes in flight finish, then the lock
is *released* before the session is destroyed: a release starts no
lock-delay, so a standby takes over at once instead of after the TTL.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from swarmop.clients.consul import ConsulUnavailable
from swarmop.clients.detached import run_detached
from swarmop.ha.consul_session import ConsulSessions, LockEntry
from swarmop.ha.gate import LeaderGate, Term

logger = logging.getLogger("swarmop.ha")

T = TypeVar("T")

STEP_DOWN_WAIT = 5.0
"""How long a resigning leader waits for writes in flight before releasing anyway."""
ACQUIRE_RETRY = 0.25
"""Pause between attempts while the lock is free but refused (Consul's lock-delay)."""
BACKOFF_CAP = 10.0


class Elector:
    def __init__(
        self,
        sessions: ConsulSessions,
        gate: LeaderGate,
        *,
        lock_key: str,
        member_key: str,
        describe: Callable[[bool], bytes],
        lock_delay: float,
        on_change: Callable[[bool], None],
    ) -> None:
        self.sessions = sessions
        self.gate = gate
        self.lease = gate.lease
        self.lock_key = lock_key
        self.member_key = member_key
        self.describe = describe
        self.lock_delay = lock_delay
        self.on_change = on_change
        self._resign: anyio.Event | None = None
        self._resign_requested = False
        self.terms = 0

    # --- control ------------------------------------------------------

    def resign(self) -> None:
        """Stop campaigning; a leader hands over (from the event loop's thread)."""
        self._resign_requested = True
        if self._resign is not None:
            self._resign.set()

    @property
    def resigning(self) -> bool:
        return self._resign_requested

    # --- helpers ------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), abandon_on_cancel=True
        )

    async def _unless_resigning(self, work: Callable[[], Awaitable[T]]) -> T | None:
        """Run `work`, or give up (None) as soon as a resign is requested."""
        assert self._resign is not None
        resign = self._resign
        result: list[T] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                result.append(await work())
                tg.cancel_scope.cancel()

            async def watch() -> None:
                await resign.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(run)
            tg.start_soon(watch)
        return result[0] if result else None

    async def _sleep(self, seconds: float) -> None:
        await self._unless_resigning(lambda: anyio.sleep(seconds))

    # --- the loop -----------------------------------------------------

    async def run(self) -> None:
        self._resign = anyio.Event()
        if self._resign_requested:
            self._resign.set()
        failures = 0
        while not self._resign_requested:
            clock = self.lease.clock
            sent = clock()
            try:
                session = await self._call(
                    self.sessions.create,
                    f"swarmop {self.gate.instance}",
                    ttl=self.lease.ttl,
                    lock_delay=self.lock_delay,
                )
            except Exception as error:
                failures += 1
                delay = min(BACKOFF_CAP, 0.5 * math.pow(2, min(failures, 6)))
                if failures == 1:
                    logger.warning("cannot create a Consul session (%s); retrying", error)
                await self._sleep(delay)
                continue
            failures = 0
            self.lease.renewed(sent)
            try:
                await self._campaign(session)
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(STEP_DOWN_WAIT):
                    try:
                        await self._call(self.sessions.destroy, session)
                    except Exception as error:
                        logger.debug("destroying session %s: %s", session, error)
                self.lease.expire()

    async def _campaign(self, session: str) -> None:
        await self._announce(session, leader=False)
        index = 0
        free = True  # unknown at first: try to take it
        while not self._resign_requested:
            if not self.lease.valid():
                logger.warning("session %s ran out before it could be renewed", session)
                return
            if free:
                term = await self._try_acquire(session)
                if term is not None:
                    await self._lead(session, term)
                    return
                index = 0  # refused: look at the key now instead of blocking on it
            if self.lease.renew_due_in() <= 0 and not await self._renew(session):
                return
            wait = max(1.0, self.lease.renew_due_in())

            async def read(wait: float = wait, index: int = index) -> tuple[int, LockEntry | None]:
                # A blocking query: detached so that it never delays the process's exit.
                return await run_detached(self.sessions.read, self.lock_key, index=index, wait=wait)

            try:
                got = await self._unless_resigning(read)
            except ConsulUnavailable as error:
                logger.info("watching %s: %s", self.lock_key, error)
                index, free = 0, False
                await self._sleep(1.0)
                continue
            if got is None:
                return
            received, entry = got
            free = entry is None or entry.session is None
            if free and index == 0:
                # Free but just refused: Consul's lock-delay after the last holder's
                # session ended. Retry shortly rather than block on an unchanging key.
                await self._sleep(ACQUIRE_RETRY)
            # Consul's index rules: an index that goes backwards means start over.
            index = received if received > index else 0

    async def _try_acquire(self, session: str) -> Term | None:
        try:
            taken = await self._call(
                self.sessions.acquire, self.lock_key, session, self.describe(True)
            )
            if not taken:
                return None
            _index, entry = await self._call(self.sessions.read, self.lock_key)
        except ConsulUnavailable as error:
            logger.info("acquiring %s: %s", self.lock_key, error)
            await self._sleep(ACQUIRE_RETRY)
            return None
        if entry is None or entry.session != session:
            return None
        return Term(session=session, lock_index=entry.lock_index, index=entry.modify_index)

    async def _renew(self, session: str) -> bool:
        """Renew once; False when the session is gone (or the lease ran out meanwhile)."""
        while not self._resign_requested:
            sent = self.lease.clock()
            timeout = max(0.5, min(5.0, self.lease.remaining()))
            try:
                with anyio.fail_after(timeout):
                    alive = await self._call(self.sessions.renew, session)
            except (ConsulUnavailable, TimeoutError) as error:
                reason = str(error) or f"no answer within {timeout:.1f}s"
                if not self.lease.valid():
                    logger.warning("cannot renew session %s (%s): lease over", session, reason)
                    return False
                logger.info("renewing session %s: %s; retrying", session, reason)
                await self._sleep(min(1.0, self.lease.remaining()))
                continue
            if not alive:
                logger.warning("session %s is gone (expired or destroyed)", session)
                return False
            self.lease.renewed(sent)
            return True
        return True

    async def _lead(self, session: str, term: Term) -> None:
        self.terms += 1
        self.gate.elect(term)
        logger.warning(
            "leading: instance %s holds %s (session %s, term %d)",
            self.gate.instance,
            self.lock_key,
            session,
            term.index,
        )
        self.on_change(True)
        await self._announce(session, leader=True)
        assert self._resign is not None
        stepped_down = False
        try:
            while True:
                with anyio.move_on_after(self.lease.renew_due_in()):
                    await self._resign.wait()
                if self._resign_requested:
                    break
                if not await self._renew(session):
                    return
                if not await self._still_holding(session):
                    return
            await self._step_down(session)
            stepped_down = True
        finally:
            if self._resign_requested and not stepped_down:
                # Cancelled while handing over (the operator is ending): still release,
                # so the standby does not wait for Consul's lock-delay.
                await self._step_down(session)
            self.gate.demote()
            self.on_change(False)

    async def _still_holding(self, session: str) -> bool:
        try:
            _index, entry = await self._call(self.sessions.read, self.lock_key)
        except ConsulUnavailable as error:
            logger.info("reading %s: %s", self.lock_key, error)
            return True  # the renew just worked; the next round looks again
        if entry is None or entry.session != session:
            logger.warning("lock %s is no longer held by session %s", self.lock_key, session)
            return False
        return True

    async def _step_down(self, session: str) -> None:
        with anyio.CancelScope(shield=True):
            self.gate.close()
            idle = await anyio.to_thread.run_sync(self.gate.wait_idle, STEP_DOWN_WAIT)
            if not idle:
                logger.warning("writes still in flight after %.0fs; releasing", STEP_DOWN_WAIT)
            with anyio.move_on_after(STEP_DOWN_WAIT):
                try:
                    await self._call(self.sessions.release, self.lock_key, session)
                    logger.warning("released %s for a standby", self.lock_key)
                except Exception as error:
                    logger.warning("releasing %s: %s", self.lock_key, error)

    async def _announce(self, session: str, *, leader: bool) -> None:
        """Keep `<prefix>/operators/<instance>` (held by our session, gone with it)."""
        try:
            await self._call(self.sessions.acquire, self.member_key, session, self.describe(leader))
        except Exception as error:
            logger.debug("announcing %s: %s", self.member_key, error)
