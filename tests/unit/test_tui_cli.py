"""`swarmop tui` registers without loading Textual."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

CHECK = """
import argparse, sys
import swarmop.cli.tui as tui
parser = argparse.ArgumentParser()
tui.register(parser.add_subparsers())
args = parser.parse_args(["tui", "--read-only", "--prefix", "p"])
assert args.read_only and args.prefix == "p" and callable(args.handler)
print("textual" in sys.modules)
"""


def test_registering_the_subcommand_does_not_import_textual() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_bad_consul_address_is_a_clear_error(capsys: object) -> None:
    import argparse  # noqa: PLC0415

    from swarmop.cli import tui  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    tui.register(parser.add_subparsers())
    args = parser.parse_args(["tui", "--consul-addr", "ftp://nowhere:1"])
    assert args.handler(args) == 2


def test_operator_stale_after_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["tui", "--operator-stale-after", "0"])
    assert args.handler(args) == 2
    assert "--operator-stale-after must be positive" in capsys.readouterr().err


def test_operator_stale_after_defaults_to_the_models_threshold() -> None:
    from swarmop.tui.model import OPERATOR_STALE_AFTER  # noqa: PLC0415

    assert parse(["tui"]).operator_stale_after == OPERATOR_STALE_AFTER
    assert parse(["tui", "--operator-stale-after", "900"]).operator_stale_after == 900.0


def parse(argv: list[str]) -> argparse.Namespace:
    from swarmop.cli import tui  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    tui.register(parser.add_subparsers())
    return parser.parse_args(argv)
