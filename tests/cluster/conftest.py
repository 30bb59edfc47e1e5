"""Fixtures for tests against the real sandbox swarm and its Consul.

One sandbox (name `swarmop-test`, or $SWARMOP_TEST_SANDBOX) is brought up for the
whole session and removed at its end ($SWARMOP_KEEP_SANDBOX=1 keeps it, to make
repeated runs quick). A kept sandbox with another node count than 3 is not
rebuilt behind anyone's back: the session stops with `up`'s message saying how.
Tests create what they need and register it with `tracker`, which removes it
afterwards, even when the test fails. A test that must create or break a whole
sandbox gets one of its own from `side_sandbox`, named after the session's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import consul
import docker
import pytest

from swarmop.sandbox import Sandbox, SandboxInfo
from swarmop.sandbox.layout import validate_name
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.settings import Settings, resolve_consul, resolve_docker

SANDBOX_NAME = os.environ.get("SWARMOP_TEST_SANDBOX", "swarmop-test")
KEEP_ENV = "SWARMOP_KEEP_SANDBOX"
API_VERSION = "1.41"


@pytest.fixture(scope="session")
def sandbox_control() -> Iterator[Sandbox]:
    """The session's `Sandbox` (for fault injection: stop/start nodes or Consul)."""
    control = Sandbox(SANDBOX_NAME)
    control.up(nodes=3)
    yield control
    if os.environ.get(KEEP_ENV) != "1":
        control.down()


def side_sandbox_name(purpose: str) -> str:
    """`<session sandbox>-<purpose>`, shortened to fit the 24 characters a name may have."""
    stem = SANDBOX_NAME[: 24 - len(purpose) - 1].rstrip("-")
    return validate_name(f"{stem}-{purpose}")


@pytest.fixture
def side_sandbox() -> Iterator[Callable[[str], Sandbox]]:
    """`side_sandbox("crash")`: a sandbox of the test's own, next to the session's,
    cleared of an earlier run's leftovers now and removed after the test (always,
    even with $SWARMOP_KEEP_SANDBOX=1)."""
    made: list[Sandbox] = []

    def make(purpose: str) -> Sandbox:
        side = Sandbox(side_sandbox_name(purpose))
        side.down()
        made.append(side)
        return side

    yield make
    for side in made:
        side.down()


@pytest.fixture(scope="session")
def sandbox(sandbox_control: Sandbox) -> SandboxInfo:
    info = sandbox_control.info()
    assert info is not None, "the session sandbox is not up"
    return info


@pytest.fixture(scope="session")
def docker_api(sandbox: SandboxInfo) -> Iterator[docker.APIClient]:
    api = docker.APIClient(base_url=sandbox.manager_docker_host, version=API_VERSION, timeout=60)
    yield api
    api.close()


@pytest.fixture(scope="session")
def docker_client(sandbox: SandboxInfo) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(
        base_url=sandbox.manager_docker_host, version=API_VERSION, timeout=60
    )
    yield client
    client.close()


@pytest.fixture(scope="session")
def node_clients(sandbox: SandboxInfo) -> Iterator[dict[str, docker.DockerClient]]:
    """hostname -> DockerClient on that node's own daemon (containers run where asked)."""
    clients = {
        node.hostname: docker.DockerClient(
            base_url=node.docker_host, version=API_VERSION, timeout=60
        )
        for node in sandbox.nodes
    }
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="session")
def consul_client(sandbox: SandboxInfo) -> consul.Consul:
    host, port = sandbox.consul_http_addr.rsplit(":", 1)
    return consul.Consul(host=host, port=int(port))


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    return wait_until


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    return unique


@pytest.fixture
def tracker(docker_api: docker.APIClient, consul_client: consul.Consul) -> Iterator[Tracker]:
    tracked = Tracker(docker_api, consul_client)
    yield tracked
    problems = tracked.cleanup()
    if problems:
        pytest.fail("cleanup after the test failed: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def prefix(tracker: Tracker, request: pytest.FixtureRequest) -> str:
    """A Consul key prefix of the test's own (named after its module), removed afterwards."""
    stem = request.module.__name__.removeprefix("test_").replace("_", "-")
    name = unique(stem)
    tracker.consul_prefix(name + "/")
    return name


@pytest.fixture
def settings(sandbox: SandboxInfo, prefix: str) -> Settings:
    """An operator's settings for the session sandbox, with Consul, under `prefix`."""
    return Settings(
        docker=resolve_docker(host=sandbox.manager_docker_host, env={}),
        consul=resolve_consul(addr=sandbox.consul_http_addr, env={}),
        prefix=prefix,
        resync_interval=60.0,
    )
