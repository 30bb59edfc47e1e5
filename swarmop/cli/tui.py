"""`swarmop tui`: the terminal UI. Textual is imported only when this command runs."""

from __future__ import annotations

import argparse
import sys

# Plain data, no Textual: safe to import while registering.
from swarmop.tui.model import OPERATOR_STALE_AFTER


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tui",
        help="terminal UI: nodes, services, tasks, events; desired next to actual",
        description=(
            "Shows the swarm next to the desired state swarmop reads (labels and Consul keys), "
            "with the operator's reconcile status. Scale and drain write desired state, which "
            "the operator applies."
        ),
    )
    parser.add_argument("--docker-host", help="Docker API of a manager (default: $DOCKER_HOST)")
    parser.add_argument(
        "--docker-insecure",
        action="store_true",
        help="allow a plaintext tcp:// Docker API that is not on loopback",
    )
    parser.add_argument(
        "--consul-addr", help="Consul HTTP address (default: $CONSUL_HTTP_ADDR; none: labels only)"
    )
    parser.add_argument("--consul-token", help="Consul ACL token (default: $CONSUL_HTTP_TOKEN)")
    parser.add_argument("--consul-cacert", help="CA file for Consul over HTTPS ($CONSUL_CACERT)")
    parser.add_argument("--prefix", default=None, help="Consul key prefix (default: swarmop)")
    parser.add_argument(
        "--read-only", action="store_true", help="show only: every action is refused"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="seconds between full relists (default: 2)"
    )
    parser.add_argument(
        "--operator-stale-after",
        type=float,
        default=OPERATOR_STALE_AFTER,
        metavar="SECONDS",
        help=(
            "report the operator as not seen when its last resync is older than this "
            "(default: %(default)g, three of swarmop run's 60 s resyncs; use about three "
            "times the operator's --resync-interval)"
        ),
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `swarmop --help` and other commands never load the TUI.
    from swarmop.tui.connection import ConnectionOptionError, resolve_connection  # noqa: PLC0415

    try:
        connection = resolve_connection(
            docker_host=args.docker_host,
            docker_insecure=args.docker_insecure,
            consul_addr=args.consul_addr,
            consul_token=args.consul_token,
            consul_cacert=args.consul_cacert,
            prefix=args.prefix,
            read_only=args.read_only,
        )
    except ConnectionOptionError as error:
        print(f"swarmop tui: {error}", file=sys.stderr)
        return 2
    if args.interval <= 0:
        print("swarmop tui: --interval must be positive", file=sys.stderr)
        return 2
    if not args.operator_stale_after > 0:
        print("swarmop tui: --operator-stale-after must be positive", file=sys.stderr)
        return 2

    from swarmop.tui.launch import build_app  # noqa: PLC0415

    app = build_app(
        connection, interval=args.interval, operator_stale_after=args.operator_stale_after
    )
    app.run()
    return 0
