"""`swarmop run` as users start it, against the real sandbox: handler modules given
with `-m`, JSON log lines, and examples/hello.py doing what docs/api.md says."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import consul
import docker
import pytest
from ha_operators import REPO, OperatorProcess, Operators, labels_of, operators

from swarmop.sandbox.testing import Tracker, unique, wait_until

__all__ = ["operators"]  # a fixture: used by name, not by reference

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
EXAMPLE = REPO / "examples" / "hello.py"
HTTP_LINE = re.compile(r"HTTP endpoint on 127\.0\.0\.1:(\d+)")

MODULE = """\
import os

import swarmop

RUN = os.environ["HATEST_RUN"]


@swarmop.on.create("service", labels={{"hatest": RUN}}, id="{module}")
def handled(logger, patch, **_):
    logger.{level}("{module} handled it")
    patch.set_label("{module}", "yes")
"""


def stop(process: OperatorProcess) -> None:
    process.signal(signal.SIGTERM)
    assert process.popen.wait(60) == 0


def http_port(process: OperatorProcess) -> int:
    found = wait_until(
        lambda: HTTP_LINE.search(process.log.read_text(errors="replace")),
        what="the HTTP endpoint's address in the log",
    )
    assert found is not None
    return int(found.group(1))


def get_status(port: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/status")
        response = connection.getresponse()
        assert response.status == 200, response.status
        body: dict[str, Any] = json.loads(response.read())
        return body
    finally:
        connection.close()


def test_modules_given_with_m_run_and_log_json_lines(
    *, docker_api: docker.APIClient, tracker: Tracker, operators: Operators, tmp_path: Path
) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    for module, level in (("cli_first", "info"), ("cli_second", "warning")):
        (modules / f"{module}.py").write_text(MODULE.format(module=module, level=level))
    name = unique("cli")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=0, labels={"hatest": operators.run_id}
    )
    path = os.pathsep.join(filter(None, [str(modules), os.environ.get("PYTHONPATH")]))
    process = operators.start(
        "modules",
        {"PYTHONPATH": path},
        handlers=["-m", "cli_first", "-m", "cli_second"],
        extra_args=["--no-ha", "--log-format", "json", "--log-level", "info"],
    )
    wait_until(
        lambda: {"cli_first", "cli_second"} <= labels_of(docker_api, service_id).keys(),
        what="both modules' handlers writing their labels",
    )
    stop(process)

    lines = [line for line in process.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    basic = {"time", "level", "logger", "message"}
    assert records and all(set(r) - {"object"} == basic for r in records)
    for record in records:
        datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S")
    found = {(r["level"], r["logger"], r["message"]) for r in records}
    # A handler's logger names its object in the message and in the object field.
    assert ("info", "swarmop.operator", f"[service {name}] cli_first handled it") in found
    assert ("warning", "swarmop.operator", f"[service {name}] cli_second handled it") in found
    assert ("info", "swarmop.operator", "initial list done; ready") in found
    handled = [r for r in records if r["message"].endswith(" handled it")]
    assert handled and all(r.get("object") == f"service/{name}" for r in handled), handled
    assert all("object" not in r for r in records if r["message"] == "initial list done; ready")


def test_the_example_module_does_what_the_docs_say(
    *,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    operators: Operators,
) -> None:
    """docs/api.md: `swarmop run examples/hello.py --http ...`, a service labelled
    example=hello with swarmop.replicas=2, then a Consul key that wins over it."""
    process = operators.start("example", handlers=[EXAMPLE], extra_args=["--http", "127.0.0.1:0"])
    port = http_port(process)
    name = unique("hello")
    service_id = tracker.create_service(
        name,
        command=SLEEPER,
        replicas=0,
        labels={"example": "hello", "swarmop.replicas": "2"},
    )

    def seen() -> str | None:
        return labels_of(docker_api, service_id).get("example.seen")

    def status() -> dict[str, Any] | None:
        body = get_status(port)
        return next((item for item in body["objects"] if item["name"] == name), None)

    def logged() -> list[str]:
        body = get_status(port)
        return [event["message"] for event in body["events"] if event["object"] == name]

    wait_until(lambda: seen() == "2 from label", what="the label the example writes")
    first = wait_until(
        lambda: (found := status()) and found["message"] == "seen: replicas 2 from label" and found,
        what="the example's status message",
    )
    assert first is not None
    assert first["outcome"] == "ok"
    assert first["desired"]["replicas"] == {"value": 2, "source": "label"}
    assert f"hello {name} (create): replicas 2 from label" in logged()

    consul_client.kv.put(f"{operators.prefix}/services/{name}/replicas", "3")
    wait_until(lambda: seen() == "3 from consul", what="the Consul key winning over the label")
    wait_until(
        lambda: (
            {f"hello {name} (update): replicas 3 from consul", "desired replicas 2 -> 3"}
            <= set(logged())
        ),
        what="the update and field handlers' messages in the event log",
    )
    assert labels_of(docker_api, service_id)["swarmop.replicas"] == "2"  # the label is kept

    docker_api.remove_service(service_id)
    wait_until(lambda: f"{name} was removed" in logged(), what="the delete handler")
    stop(process)
    assert "example handlers loaded" in process.log.read_text()  # from on.startup
