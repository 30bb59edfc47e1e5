"""Writing back what Consul lost while it was away.

A Consul agent can come back from an outage empty (a dev agent keeps nothing;
a server may lose its data). Nothing about the objects changed meanwhile, so
the publisher, which sends only changes, would not publish their statuses
again, and the state store, whose cache still holds every entry, would not
notice that <prefix>/state/ is gone: an operator restarted after that would
run every create handler again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from swarmop.reactor.context import Context, Key
from swarmop.reactor.store import ConsulStateStore

Touch = Callable[[Key, Mapping[str, Any] | None], None]


def restore_consul(ctx: Context, touch: Touch) -> None:
    """Republish every status, the event log and the operator info, and have every
    object's worker check its stored state against Consul (writing it back where
    it is missing). The writes go through the same kv as always, so with leader
    election only the leader makes them; a standby's checks wait for its election."""
    ctx.board.republish_all()
    keys: set[Key] = set()
    if isinstance(ctx.store, ConsulStateStore):
        keys.update(ctx.store.recheck_all())
    with ctx.lock:
        keys.update(ctx.known)
    for key in sorted(keys):
        touch(key, None)


def recheck_stored(ctx: Context) -> None:
    """On election: the previous leader may have written stored state since this
    instance cached it, so each object's next load reads Consul again."""
    if isinstance(ctx.store, ConsulStateStore):
        ctx.store.recheck_all()
