"""Suite-wide behaviour of the `cluster` marker.

A cluster test needs the real sandbox swarm: root and the machine tools that
`make setup` installs. Where the machine cannot run it the test is skipped with
the reason; with SWARMOP_REQUIRE_CLUSTER=1 (CI) it fails instead, so a green run
never hides skipped cluster tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarmop.sandbox import SandboxError
from swarmop.sandbox.testing import skip_or_fail
from swarmop.sandbox.tools import find_tools

CLUSTER_DIR = Path(__file__).parent / "cluster"


def cluster_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "not root: the sandbox swarm needs root"
    try:
        find_tools()
    except SandboxError as error:
        if "dockerd not installed" in str(error):
            return "dockerd not installed: run make setup"
        return str(error)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/cluster/ is a cluster test, marked or not.
    for item in items:
        if CLUSTER_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.cluster)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cluster") is None:
        return
    reason = cluster_unavailable_reason()
    if reason is not None:
        skip_or_fail(f"cluster test: {reason}")
