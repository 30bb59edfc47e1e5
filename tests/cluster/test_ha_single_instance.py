"""Without Consul a single instance runs, and says that it is not highly available.

A real `swarmop run` subprocess (the HA test handlers, no CONSUL_HTTP_ADDR)
against the sandbox: the warning is in its log and in the event log `/status`
serves, its status says it acts (no election to lose), and it reconciles from
labels alone.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from typing import Any

import docker
import pytest
from ha_operators import Operators, labels_of, operators

from swarmop.sandbox.testing import Tracker

__all__ = ["operators"]  # a fixture: used by name, not by reference

pytestmark = pytest.mark.cluster

NOT_HA = (
    "NOT highly available: leader election is off (no Consul, or --no-ha); "
    "run exactly one instance of this operator"
)
HTTP_LINE = re.compile(r"HTTP endpoint on 127\.0\.0\.1:(\d+)")


def test_without_consul_a_single_instance_says_it_is_not_highly_available(
    operators: Operators, tracker: Tracker, docker_api: docker.APIClient, wait_until: Any
) -> None:
    solo = operators.start("solo", consul=False, extra_args=["--http", "127.0.0.1:0"])

    def port() -> int | None:
        found = HTTP_LINE.search(solo.log.read_text(errors="replace"))
        return int(found.group(1)) if found else None

    http_port = wait_until(port, timeout=60, what="the HTTP endpoint's port in the log")
    service = tracker.create_service(
        labels={"hatest": operators.run_id, "hatest.want": "one"}, command=["sleep", "1d"]
    )
    wait_until(
        lambda: labels_of(docker_api, service).get("hatest.applied") == "one",
        timeout=60,
        what="the single instance to apply hatest.want=one from labels alone",
    )

    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/status", timeout=10) as reply:
        status = json.load(reply)
    warnings = [e for e in status["events"] if e["kind"] == "operator" and e["level"] == "warning"]
    assert NOT_HA in [e["message"] for e in warnings], status["events"]
    assert any(e["message"].startswith("Consul is not configured") for e in warnings)
    assert status["operator"]["instance"] == "solo"
    assert status["operator"]["leader"] is True  # acts alone: no lock to hold or lose

    log = solo.log.read_text(errors="replace")
    assert NOT_HA in log
    assert "swarmop.ha" not in log  # no election ran: no lock, no session
    solo.signal(signal.SIGTERM)
    assert solo.popen.wait(60) == 0
