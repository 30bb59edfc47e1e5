"""Consul writes that only a current leader can make.

Every put and delete becomes a transaction whose first operation is
`check-session` on the lock key with this instance's session: if the session
no longer holds the lock (expired, destroyed, another leader), Consul rolls the
whole transaction back. The local gate is asked first, so a known-deposed
instance does not even send the request. Reads are unchanged.
"""

from __future__ import annotations

import logging

from swarmop.clients.consul import ConsulKV
from swarmop.ha.consul_session import ConsulSessions, TxnRolledBack
from swarmop.ha.gate import LeaderGate, NotLeaderError
from swarmop.settings import ConsulSettings


class LeaderKV(ConsulKV):
    def __init__(
        self,
        settings: ConsulSettings,
        *,
        gate: LeaderGate,
        sessions: ConsulSessions,
        lock_key: str,
    ) -> None:
        super().__init__(settings)
        self._gate = gate
        self._sessions = sessions
        self._lock_key = lock_key

    def _guarded(self, op: dict[str, object], what: str) -> bool:
        """Run one operation under the lock check; False when its own CAS lost."""
        # Status and progress writes are frequent: logged at debug; Swarm writes at info.
        term = self._gate.check(what, level=logging.DEBUG)
        try:
            self._sessions.txn([self._sessions.check_session_op(self._lock_key, term.session), op])
        except TxnRolledBack as error:
            if any(index == 0 for index, _ in error.errors):
                raise NotLeaderError(
                    f"{what}: Consul refused the write, session {term.session} no longer "
                    f"holds {self._lock_key}"
                ) from None
            return False
        return True

    def put(self, key: str, value: str | bytes, *, cas: int | None = None) -> bool:
        return self._guarded(self._sessions.set_op(key, value, cas), f"consul put {key}")

    def delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        return self._guarded(
            self._sessions.delete_op(key, recurse=recurse, cas=cas), f"consul delete {key}"
        )
