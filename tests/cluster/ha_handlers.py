"""Handlers for the HA tests, run by real `swarmop run` subprocesses.

Only services labelled `hatest=<run id>` (the run id comes from $HATEST_RUN) are
touched, so a stray instance never writes elsewhere:

- `hatest.want=V` is copied to `hatest.applied=V` (a desired change the leader applies);
- `hatest.tick=on` makes a timer bump `hatest.ticks` every 0.5 s, so the leader
  writes continuously and a paused-then-resumed leader tries to write at once;
- `hatest.slow=V` starts a pass that logs `hatest.slow: holding`, waits
  HOLD seconds between reading the service and writing it, then sets
  `hatest.slow.by=<pid>` (a value only this process writes, so the write is
  never a no-op): a leader paused during the hold resumes in the middle of a
  pass that has passed the gate's pass check and must still be refused at the
  write.

Every write goes through `patch`, so the write gate logs it (logger
`swarmop.ha.writes`) with the instance, session, lock index and version.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import swarmop

RUN = os.environ.get("HATEST_RUN", "unset")
HOLD = 5.0
"""Seconds the `hatest.slow` pass holds before writing."""
test_log = logging.getLogger("hatest")


@swarmop.on.field(
    "service", field="spec.Labels.hatest.want", labels={"hatest": RUN}, id="hatest.apply"
)
def apply_wanted(labels: Any, patch: Any, logger: Any, **_: Any) -> None:
    wanted = labels.get("hatest.want")
    if wanted is not None and labels.get("hatest.applied") != wanted:
        patch.set_label("hatest.applied", wanted)
        logger.info(f"applying hatest.want={wanted}")


@swarmop.timer(
    "service", interval=0.5, labels={"hatest": RUN, "hatest.tick": "on"}, id="hatest.tick"
)
def tick(labels: Any, patch: Any, **_: Any) -> None:
    try:
        count = int(labels.get("hatest.ticks", "0"))
    except ValueError:
        count = 0
    patch.set_label("hatest.ticks", str(count + 1))


@swarmop.on.field(
    "service", field="spec.Labels.hatest.slow", labels={"hatest": RUN}, id="hatest.slow"
)
def slow_write(patch: Any, **_: Any) -> None:
    test_log.info("hatest.slow: holding")
    time.sleep(HOLD)
    patch.set_label("hatest.slow.by", str(os.getpid()))
