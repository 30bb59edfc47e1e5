"""The `swarmop` command's help, version and argument errors, run as a user runs them."""

from __future__ import annotations

import importlib.metadata

import swarmop
from swarmop.sandbox.testing import run_swarmop as swarmop_cli


def test_version_is_the_installed_distributions() -> None:
    result = swarmop_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"swarmop {importlib.metadata.version('swarmop')}\n"
    assert swarmop.__version__ == importlib.metadata.version("swarmop")


def test_help_lists_the_subcommands() -> None:
    result = swarmop_cli("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: swarmop")
    for command in ("run", "sandbox", "tui"):
        assert f"    {command} " in result.stdout, result.stdout


def test_no_command_prints_help_and_exits_2() -> None:
    result = swarmop_cli()
    assert result.returncode == 2
    assert "usage: swarmop" in result.stdout


def test_sandbox_help_lists_its_commands() -> None:
    result = swarmop_cli("sandbox", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: swarmop sandbox")
    for command in ("up", "env", "status", "down"):
        assert f"    {command} " in result.stdout, result.stdout
    bare = swarmop_cli("sandbox")
    assert bare.returncode == 2
    assert "usage: swarmop sandbox" in bare.stdout


def test_sandbox_up_help_offers_recreate_to_change_the_node_count() -> None:
    result = swarmop_cli("sandbox", "up", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--name", "--nodes", "--example", "--recreate"):
        assert option in result.stdout


def test_a_node_count_out_of_range_is_refused_before_anything_runs() -> None:
    result = swarmop_cli("sandbox", "up", "--name", "never-made", "--nodes", "0")
    assert result.returncode == 1
    assert "--nodes must be between 1 and 20, got 0" in result.stderr


def test_an_invalid_sandbox_name_is_refused_clearly() -> None:
    result = swarmop_cli("sandbox", "status", "--name", "Not_Valid")
    assert result.returncode == 1
    assert "invalid sandbox name 'Not_Valid'" in result.stderr
    assert "Traceback" not in result.stderr
