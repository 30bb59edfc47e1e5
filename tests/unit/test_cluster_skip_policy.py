"""The suite's skip policy, run for real on a tiny test file in a pytest subprocess:
a cluster test (or one missing a machine tool) skips with its reason, and fails
under SWARMOP_REQUIRE_CLUSTER=1; other tests are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
REASON = "no sandbox on this pretend machine"

TINY_TESTS = """
import pytest
from swarmop.sandbox.testing import skip_or_fail

@pytest.mark.cluster
def test_needs_the_cluster():
    pass

def test_needs_a_machine_tool():
    skip_or_fail("frobnicator not installed")

def test_plain():
    pass
"""

# Loaded after the suite's conftest: the machine it sees cannot run a sandbox,
# whatever this one can.
PRETEND_MACHINE = f"""
import conftest
conftest.cluster_unavailable_reason = lambda: {REASON!r}
"""


def _outcomes(tmp_path: Path, require: str | None) -> dict[str, tuple[str, str]]:
    """test name -> (passed | skipped | failed, message) from a run of TINY_TESTS."""
    (tmp_path / "test_tiny.py").write_text(TINY_TESTS)
    (tmp_path / "pretend_machine.py").write_text(PRETEND_MACHINE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    cluster: needs the sandbox\n")
    env = {k: v for k, v in os.environ.items() if k != "SWARMOP_REQUIRE_CLUSTER"}
    if require is not None:
        env["SWARMOP_REQUIRE_CLUSTER"] = require
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), str(tmp_path)])
    report = tmp_path / "report.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "conftest",
            "-p",
            "pretend_machine",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            "test_tiny.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        outcome, message = "passed", ""
        for child in case:
            if child.tag in ("skipped", "failure", "error"):
                outcome = {"failure": "failed", "error": "failed"}.get(child.tag, child.tag)
                message = child.get("message", "") + (child.text or "")
        outcomes[case.get("name", "")] = (outcome, message)
    return outcomes


@pytest.mark.parametrize("require", [None, "0"])
def test_without_the_requirement_machine_limits_skip_with_their_reason(
    tmp_path: Path, require: str | None
) -> None:
    outcomes = _outcomes(tmp_path, require)
    assert outcomes["test_needs_the_cluster"][0] == "skipped"
    assert REASON in outcomes["test_needs_the_cluster"][1]
    assert outcomes["test_needs_a_machine_tool"][0] == "skipped"
    assert "frobnicator not installed" in outcomes["test_needs_a_machine_tool"][1]
    assert outcomes["test_plain"][0] == "passed"


def test_with_the_requirement_a_skip_becomes_a_failure(tmp_path: Path) -> None:
    outcomes = _outcomes(tmp_path, "1")
    assert outcomes["test_needs_the_cluster"][0] == "failed"
    assert REASON in outcomes["test_needs_the_cluster"][1]
    assert outcomes["test_needs_a_machine_tool"][0] == "failed"
    assert "frobnicator not installed" in outcomes["test_needs_a_machine_tool"][1]
    assert outcomes["test_plain"][0] == "passed"
