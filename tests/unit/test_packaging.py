"""The installed distribution maps handlers/, tui/ and templates/ under swarmop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {
    "swarmop": "swarmop",
    "swarmop.handlers": "handlers",
    "swarmop.tui": "tui",
    "swarmop.templates": "templates",
}
GENERIC_NAMES = ("handlers", "tui", "templates")
PROBE = """
import importlib, json, sys
out = {}
for name in ("swarmop", "swarmop.handlers", "swarmop.tui", "swarmop.templates", "swarmop.desired"):
    out[name] = importlib.import_module(name).__file__
for name in ("handlers", "tui", "templates"):
    try:
        importlib.import_module(name)
        out[name] = "importable"
    except ModuleNotFoundError:
        out[name] = None
print(json.dumps(out))
"""


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_directory_is_listed() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for package, directory in MAPPED.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory).parts
            found.add(".".join((package, *relative)))
    # A mapped subpackage (swarmop.handlers inside swarmop/) never collides.
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def _probe(python: Path, env: dict[str, str], cwd: Path) -> dict[str, str | None]:
    result = subprocess.run(
        [str(python), "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def _dependency_path() -> str:
    return sysconfig.get_paths()["purelib"]


def test_wheel_installs_under_swarmop_namespace(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = wheel_dir.glob("swarmop-*.whl")
    top_levels = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert not top_levels & set(GENERIC_NAMES), top_levels
    assert any(name.endswith(".j2") for name in zipfile.ZipFile(wheel).namelist()) or not list(
        (ROOT / "templates").rglob("*.j2")
    ), "templates are missing from the wheel"

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), _dependency_path()])}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = _probe(Path(sys.executable), env | {"PYTHONNOUSERSITE": "1"}, elsewhere)
    # sys.executable is the project venv (editable install present), so put the
    # target first and check that it is what was imported.
    for name in ("swarmop", "swarmop.handlers", "swarmop.tui", "swarmop.templates"):
        assert found[name] is not None and found[name].startswith(str(target)), (name, found[name])
    for name in GENERIC_NAMES:
        assert found[name] is None, f"`import {name}` must not work after install"


@pytest.mark.timeout(300)
def test_editable_install_imports_from_another_directory(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            str(ROOT),
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": _dependency_path()},
    )
    env = {**os.environ, "PYTHONPATH": _dependency_path()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = _probe(python, env, elsewhere)
    assert found["swarmop.handlers"] == str(ROOT / "handlers" / "__init__.py")
    assert found["swarmop.tui"] == str(ROOT / "tui" / "__init__.py")
    for name in GENERIC_NAMES:
        assert found[name] is None, f"`import {name}` must not work after an editable install"
