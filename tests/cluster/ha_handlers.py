"""Handlers for the HA tests, run by real `swarmop run` subprocesses.

Only services labelled `hatest=<run id>` (the run id comes from $HATEST_RUN) are
touched, so a stray instance never writes elsewhere:

- `hatest.want=V` is copied to `hatest.applied=V` (a desired change the leader applies);
- `hatest.tick=on` makes a timer bump `hatest.ticks` every 0.5 s, so the leader
  writes continuously and a paused-then-resumed leader tries to write at once.

Every write goes through `patch`, so the write gate logs it (logger
`swarmop.ha.writes`) with the instance, session, lock index and version.
"""

from __future__ import annotations

import os
from typing import Any

import swarmop

RUN = os.environ.get("HATEST_RUN", "unset")


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
