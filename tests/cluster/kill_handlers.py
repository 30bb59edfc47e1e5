"""Handlers for the kill test in test_core_reactor.py, run by a real `swarmop run`.

Only services labelled `hatest=<run id>` ($HATEST_RUN) are handled. Every call
appends `<handler> <service>` to the file $KILLTEST_CALLS, so the test counts
calls across processes; while $KILLTEST_BLOCK is `second`, the second create
handler never returns (the test kills the process while it runs).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import swarmop

RUN = os.environ.get("HATEST_RUN", "unset")
CALLS = Path(os.environ.get("KILLTEST_CALLS", "/dev/null"))
BLOCK = os.environ.get("KILLTEST_BLOCK", "")


def record(handler: str, name: str) -> None:
    with CALLS.open("a", encoding="utf-8") as calls:
        calls.write(f"{handler} {name}\n")


@swarmop.on.create("service", labels={"hatest": RUN}, id="kill.first")
def first(name: str, **_: Any) -> None:
    record("first", name)


@swarmop.on.create("service", labels={"hatest": RUN}, id="kill.second")
def second(name: str, **_: Any) -> None:
    record("second", name)
    while BLOCK == "second":
        time.sleep(1)


@swarmop.on.create("service", labels={"hatest": RUN}, id="kill.third")
def third(name: str, **_: Any) -> None:
    record("third", name)


@swarmop.on.resume("service", labels={"hatest": RUN}, id="kill.resume")
def resumed(name: str, **_: Any) -> None:
    record("resume", name)
