"""`swarmop sandbox ...`: a real multi-node swarm with Consul on one machine."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from swarmop.sandbox import DEFAULT_NAME, Sandbox, SandboxError, all_sandbox_names
from swarmop.sandbox.report import degraded_remedy, describe_not_up, status_lines

NAME_ENV = "SWARMOP_SANDBOX"


def _default_name() -> str:
    return os.environ.get(NAME_ENV) or DEFAULT_NAME


def _add_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--name",
        default=_default_name(),
        help=f"sandbox name (default: ${NAME_ENV} or {DEFAULT_NAME!r}); "
        "sandboxes with different names run side by side",
    )


def _reporting_errors(
    action: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return action(args)
        except SandboxError as error:
            print(f"swarmop sandbox: {error}", file=sys.stderr)
            return 1

    return run


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    info = Sandbox(args.name).up(nodes=args.nodes, example=args.example, recreate=args.recreate)
    elapsed = time.monotonic() - started
    print(
        f"sandbox {info.name!r} is up ({len(info.nodes)} nodes, {elapsed:.1f}s). "
        f'Point your shell at it with:\n  eval "$(swarmop sandbox env --name {info.name})"'
    )
    return 0


def _env(args: argparse.Namespace) -> int:
    sandbox = Sandbox(args.name)
    info = sandbox.info()
    if info is None:
        print(f"swarmop sandbox: {describe_not_up(sandbox)}", file=sys.stderr)
        return 1
    problems = sandbox.problems()
    if problems:
        # stderr, so `eval "$(swarmop sandbox env)"` still works on a sandbox
        # with a node stopped on purpose.
        print(
            f"swarmop sandbox: warning: sandbox {info.name!r} is degraded "
            f"({'; '.join(problems)}): {degraded_remedy(info.name)}",
            file=sys.stderr,
        )
    print(f"export DOCKER_HOST={info.manager_docker_host}")
    print(f"export CONSUL_HTTP_ADDR={info.consul_http_addr}")
    print(f"export {NAME_ENV}={info.name}")
    return 0


def _status(args: argparse.Namespace) -> int:
    lines, healthy = status_lines(Sandbox(args.name))
    print("\n".join(lines))
    return 0 if healthy else 1


def _down(args: argparse.Namespace) -> int:
    names = all_sandbox_names() if args.all else [args.name]
    if not names:
        print("no sandboxes on this machine")
    for name in names:
        Sandbox(name).down()
        print(f"sandbox {name!r} is down; nothing of it is left")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="manage a local multi-node test swarm with Consul",
        description=(
            "A real Docker Swarm of several nodes on this machine (each dockerd in its own "
            "network namespace) with a Consul dev agent and local images. Needs root and "
            "the tools `make setup` installs. The host's own network is not touched."
        ),
    )

    def show_help(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(handler=show_help)
    commands = parser.add_subparsers(dest="sandbox_command", metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="create the sandbox (or check that it runs)",
        description=(
            "Create the sandbox: node-1 is the manager, the others are workers. On a "
            "sandbox that is already up this only checks it and returns (it refuses another "
            "--nodes unless --recreate is given); leftovers of a crashed one are cleaned first."
        ),
    )
    _add_name(up)
    up.add_argument(
        "--nodes",
        type=int,
        default=None,
        help="number of nodes (default: the running sandbox's, or 3 for a new one)",
    )
    up.add_argument(
        "--recreate",
        action="store_true",
        help="remove a running sandbox and build it again (a new swarm; its services and "
        "Consul data are lost), e.g. to change --nodes",
    )
    up.add_argument(
        "--example",
        action="store_true",
        help="also deploy the example: network swarmop-example, services web (2 busybox "
        "httpd backends), db (on the node labelled storage=ssd) and nginx (port 80, host mode)",
    )
    up.set_defaults(handler=_reporting_errors(_up))

    env = commands.add_parser(
        "env",
        help="print shell lines that point docker and consul at the sandbox",
        description='Use as: eval "$(swarmop sandbox env)"',
    )
    _add_name(env)
    env.set_defaults(handler=_reporting_errors(_env))

    status = commands.add_parser(
        "status",
        help="show nodes, Consul, images and example services",
        description=(
            "Exit status 0 when everything answers, 1 otherwise (down, degraded, or "
            "leftovers of a killed run, which `down` removes)."
        ),
    )
    _add_name(status)
    status.set_defaults(handler=_reporting_errors(_status))

    down = commands.add_parser(
        "down",
        help="stop and remove the sandbox completely",
        description=(
            "Stop every daemon of the sandbox and remove its namespaces, links, mounts and "
            "files. Also cleans a sandbox whose processes were killed."
        ),
    )
    target = down.add_mutually_exclusive_group()
    target.add_argument(
        "--name",
        default=_default_name(),
        help=f"sandbox name (default: ${NAME_ENV} or {DEFAULT_NAME!r})",
    )
    target.add_argument("--all", action="store_true", help="every sandbox on this machine")
    down.set_defaults(handler=_reporting_errors(_down))
