"""`swarmop images`: build the stack file's nginx and example-app images into Docker hosts."""

from __future__ import annotations

import argparse
import os
import re
import sys

# A Docker image tag: what `docker tag` accepts.
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "images",
        help="build the nginx (with swarmop's agent) and example app images docker-stack.yml uses",
        description=(
            "Builds swarmop/nginx:TAG (nginx with swarmop's config agent) and\n"
            "swarmop/busybox:TAG (the example web backend and stand-in database) from this\n"
            "machine's static busybox and nginx binaries, and imports both into every\n"
            "Docker host given (docker import: no registry, no base image). Give every node\n"
            "that may run them, or import into one and push them to your registry.\n"
            "An image already there with the same content is left alone."
        ),
        epilog=(
            "examples:\n"
            "  swarmop images                          into the local daemon\n"
            "  swarmop images -H unix:///run/node-2/docker.sock -H tcp://127.0.0.1:2375\n"
            "  swarmop images --tag 1.0                then docker tag + docker push them and\n"
            "                                          set SWARMOP_NGINX_IMAGE and APP_IMAGE\n"
            "Needs ldd, a statically linked busybox (Debian: busybox-static) and nginx.\n"
            "Docs: docs/deploy.md (The nginx and example app images)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-H",
        "--docker-host",
        action="append",
        dest="docker_hosts",
        metavar="URL",
        help="a Docker daemon to import into (repeatable; default: $DOCKER_HOST or the "
        "local socket)",
    )
    parser.add_argument(
        "--docker-insecure",
        action="store_true",
        help="allow plaintext tcp:// to a host that is not on loopback",
    )
    parser.add_argument("--tag", default="latest", help="image tag (default: latest)")
    parser.add_argument("--busybox", help="static busybox binary (default: the one on PATH)")
    parser.add_argument("--nginx", help="nginx binary (default: the one on PATH or /usr/sbin)")
    parser.set_defaults(handler=run)


def _hosts(args: argparse.Namespace) -> list[str]:
    from urllib.parse import urlsplit  # noqa: PLC0415

    from swarmop.errors import ConfigurationError  # noqa: PLC0415
    from swarmop.settings import is_loopback_host  # noqa: PLC0415

    given = args.docker_hosts or [os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST]
    for host in given:
        parts = urlsplit(host)
        if parts.scheme not in ("unix", "tcp", "http") or (
            parts.scheme != "unix" and not parts.hostname
        ):
            raise ConfigurationError(f"Docker host {host!r}: give unix:///path or tcp://host:port")
        # The import speaks plain HTTP: across a network that is root on the node
        # for anyone listening, so only to loopback unless the user says so.
        remote = parts.scheme != "unix" and not is_loopback_host(parts.hostname or "")
        if remote and not args.docker_insecure:
            raise ConfigurationError(
                f"refusing plaintext Docker API at {host} (the import uses no TLS): run "
                "swarmop images on that node against its socket, or pass "
                "--docker-insecure if this network is trusted"
            )
    return list(given)


def run(args: argparse.Namespace) -> int:
    from swarmop.errors import ConfigurationError  # noqa: PLC0415
    from swarmop.sandbox.errors import SandboxError  # noqa: PLC0415
    from swarmop.sandbox.stack_images import find_binaries, install_stack_images  # noqa: PLC0415

    if not TAG.match(args.tag):
        print(f"swarmop images: {args.tag!r} is not a valid image tag", file=sys.stderr)
        return 2
    try:
        hosts = _hosts(args)
        binaries = find_binaries(args.busybox, args.nginx)
    except (ConfigurationError, SandboxError) as error:
        print(f"swarmop images: {error}", file=sys.stderr)
        return 2
    try:
        tags = install_stack_images(hosts, binaries, args.tag)
    except Exception as error:  # a daemon that refuses or is unreachable: say which, no trace
        print(f"swarmop images: {error}", file=sys.stderr)
        return 1
    for tag in tags:
        print(tag)
    return 0
