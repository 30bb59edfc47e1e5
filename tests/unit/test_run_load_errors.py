"""`swarmop run` refuses handler modules it cannot load with a clear message and
status 2, in the log format asked for (before it connects to anything)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONSUL_"))}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/absent.sock"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "swarmop", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/absent.py"], "handler file {tmp}/absent.py does not exist"),
        (["-m", "swarmop_no_such_module"], "No module named 'swarmop_no_such_module'"),
    ],
)
def test_unloadable_handlers_are_one_json_error_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = run(tmp_path, *(a.format(tmp=tmp_path) for a in args), "--log-format", "json")
    assert done.returncode == 2, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("error", "swarmop", message.format(tmp=tmp_path))
    ]


def test_a_handler_file_with_a_syntax_error_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def handler(:\n")
    done = run(tmp_path, str(broken))
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert " ERROR swarmop: " in line and "(broken.py, line 1)" in line, line


def json_errors(done: subprocess.CompletedProcess[str]) -> list[tuple[str, str, str]]:
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    return [(r["level"], r["logger"], r["message"]) for r in records]


def test_a_handler_file_that_raises_at_import_is_one_error_line(tmp_path: Path) -> None:
    raising = tmp_path / "raising.py"
    raising.write_text("import swarmop\n\nraise RuntimeError('no settings for the handlers')\n")
    done = run(tmp_path, str(raising), "--log-format", "json")
    assert done.returncode == 2, done.stderr
    assert json_errors(done) == [
        (
            "error",
            "swarmop",
            f"handler file {raising} failed to import: RuntimeError: no settings for the "
            "handlers (raising.py, line 3)",
        )
    ]


def test_an_error_raised_inside_the_library_names_the_modules_own_line(tmp_path: Path) -> None:
    """A KeyError raised by os.environ points at the handler file, not at os.py."""
    raising = tmp_path / "needs_env.py"
    raising.write_text("import os\n\nTOKEN = os.environ['SWARMOP_TEST_NOT_SET']\n")
    done = run(tmp_path, str(raising))
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.endswith(
        f" ERROR swarmop: handler file {raising} failed to import: "
        "KeyError: 'SWARMOP_TEST_NOT_SET' (needs_env.py, line 3)"
    ), line


def test_a_handler_module_that_raises_at_import_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "swarmop_raising_handlers.py").write_text("1 / 0\n")
    done = run(tmp_path, "-m", "swarmop_raising_handlers", "--log-format", "json")
    assert done.returncode == 2, done.stderr
    assert json_errors(done) == [
        (
            "error",
            "swarmop",
            "handler module swarmop_raising_handlers failed to import: "
            "ZeroDivisionError: division by zero (swarmop_raising_handlers.py, line 1)",
        )
    ]
