"""High availability: one leader among several operator instances, by a Consul session lock.

- `lease`: how long the leader may act after its last renew (monotonic clock only).
- `gate`: the check every write passes first; refuses once the lease is gone.
- `consul_session`: sessions, the lock key, blocking reads and transactions over HTTP.
- `guarded_kv`: Consul writes that carry `check-session` on the lock, so Consul itself
  refuses a deposed leader's writes.
- `elector`: the campaign loop (acquire, renew, stand by, resign).
- `leadership`: what the operator plugs in (gate, guarded client, role changes).
"""

from swarmop.ha.gate import OPEN_GATE, LeaderGate, NotLeaderError, OpenGate, Term, WriteGate
from swarmop.ha.leadership import HASettings, Leadership
from swarmop.ha.lease import Lease

__all__ = [
    "OPEN_GATE",
    "HASettings",
    "LeaderGate",
    "Leadership",
    "Lease",
    "NotLeaderError",
    "OpenGate",
    "Term",
    "WriteGate",
]
