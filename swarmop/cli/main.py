"""Entry point of the `swarmop` command: builds the parser from the subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from swarmop import __version__

# Each subcommand lives in its own module exposing `register(subparsers)`; the
# module is imported here by name so one broken or slow subcommand (e.g. the TUI
# pulling in Textual) costs nothing to the others until it is chosen.
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "swarmop.cli.run",
    "swarmop.cli.sandbox",
    "swarmop.cli.tui",
    "swarmop.cli.images",
)


class _Registrar(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarmop",
        description=(
            "An operator for Docker Swarm. Desired state lives in `swarmop.*` labels on "
            "services and nodes and in Consul keys; swarmop reconciles the swarm to match."
        ),
        epilog="Run `swarmop COMMAND --help` for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"swarmop {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        module = cast(_Registrar, importlib.import_module(module_name))
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
