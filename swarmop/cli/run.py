"""`swarmop run [FILE | -m MODULE]...`: load handler modules and run the operator."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import anyio

from swarmop.errors import ConfigurationError
from swarmop.ha import HASettings, Leadership
from swarmop.reactor.board import OBJECT_FIELD
from swarmop.reactor.operator import Operator, new_instance_id
from swarmop.registry import default_registry
from swarmop.settings import (
    DEFAULT_PREFIX,
    DEFAULT_RESYNC_INTERVAL,
    Settings,
    check_prefix,
    parse_http_addr,
    resolve_consul,
    resolve_docker,
)

BUILTIN_HANDLERS = "swarmop.handlers"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator with handler modules (default: the built-in handlers)",
        description=(
            "Load handler modules (files or -m modules) and reconcile the swarm. With none, "
            "the built-in handlers run. Environment: DOCKER_HOST, DOCKER_TLS_VERIFY, "
            "DOCKER_CERT_PATH, CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT "
            "(flags win over variables). Without Consul it runs from labels alone."
        ),
        epilog=(
            "examples:\n"
            "  swarmop run                                        the built-in handlers\n"
            "  swarmop run my_handlers.py -m pkg.more             your own handlers\n"
            "  swarmop run --http 0.0.0.0:8080 --log-format json  as in a container\n"
            "\n"
            "DOCKER_TLS_VERIFY: 1/true/yes verify the daemon with $DOCKER_CERT_PATH/ca.pem;\n"
            "empty, 0/false/no or unset do not; other values are refused. Plaintext tcp://\n"
            "to a non-loopback host needs --docker-insecure. CONSUL_HTTP_SSL_VERIFY=false\n"
            "turns Consul certificate checks off. Prefer CONSUL_HTTP_TOKEN to\n"
            "--consul-token: a flag is visible to anyone who can list processes.\n"
            "SWARMOP_PROXY_TEMPLATES=DIR: the built-in proxy looks for its templates in DIR\n"
            "first (DIR/nginx/swarmop.conf.j2 replaces the packaged one). Read when the proxy\n"
            "daemon starts; a missing directory stops it with an error on the proxy's status.\n"
            "Docs: docs/api.md (handlers, options), docs/deploy.md (container, HA),\n"
            "docs/proxy.md (templates, the nginx agent)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="handler module files")
    parser.add_argument(
        "-m",
        "--module",
        action="append",
        default=[],
        dest="modules",
        metavar="MODULE",
        help="handler module to import (repeatable)",
    )
    parser.add_argument("--docker-host", help="Docker API address (default: $DOCKER_HOST)")
    parser.add_argument(
        "--docker-insecure",
        action="store_true",
        help="allow plaintext tcp:// to a non-loopback Docker host",
    )
    parser.add_argument("--consul-addr", help="Consul HTTP address (default: $CONSUL_HTTP_ADDR)")
    parser.add_argument("--consul-token", help="Consul ACL token (beats $CONSUL_HTTP_TOKEN)")
    parser.add_argument("--consul-cacert", help="CA file for Consul TLS (default: $CONSUL_CACERT)")
    parser.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help="Consul key prefix for desired state, status and the leader lock "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--resync-interval",
        type=float,
        default=DEFAULT_RESYNC_INTERVAL,
        help="seconds between full lists (default %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="process log level, any case (default info); handlers' INFO messages reach "
        "the object's event log whatever this is",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="without Consul: keep handler progress in files here, so a restarted "
        "operator does not rerun finished handlers (default: in memory)",
    )
    parser.add_argument(
        "--log-format",
        default="plain",
        choices=["plain", "json"],
        help="plain lines, or one JSON object per line for log collectors (default plain)",
    )
    parser.add_argument(
        "--http", metavar="ADDR:PORT", help="serve /healthz, /readyz and /status here"
    )
    parser.add_argument(
        "--ha",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="leader election through a Consul lock, so several instances can run "
        "(default: on when Consul is configured)",
    )
    parser.add_argument(
        "--instance-id", help="this instance's name in logs and status (default: host-pid-random)"
    )
    parser.add_argument(
        "--ha-ttl",
        type=float,
        default=HASettings.ttl,
        help="leader session TTL in seconds, >= 10 (default %(default)s)",
    )
    parser.add_argument(
        "--ha-lock-delay",
        type=float,
        default=HASettings.lock_delay,
        help="Consul lock-delay after a leader's session ends (default %(default)s)",
    )
    parser.set_defaults(handler=run_command)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        about = getattr(record, OBJECT_FIELD, None)
        if isinstance(about, str) and about:
            line["object"] = about  # "service/web": for filtering without parsing messages
        return json.dumps(line)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Request lines of HTTP libraries are never logged: they could carry secrets.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def load_handlers(files: list[str], modules: list[str]) -> None:
    if not files and not modules:
        modules = [BUILTIN_HANDLERS]
    for index, file in enumerate(files):
        path = Path(file)
        if not path.is_file():
            raise ConfigurationError(f"handler file {file} does not exist")
        spec = importlib.util.spec_from_file_location(f"swarmop_user_{index}_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"cannot load {file} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        with _import_errors(f"handler file {file}", spec.origin):
            spec.loader.exec_module(module)
    for name in modules:
        with _import_errors(f"handler module {name}", None):
            importlib.import_module(name)


@contextlib.contextmanager
def _import_errors(what: str, origin: str | None) -> Iterator[None]:
    """Any exception a module raises while it is imported is a load error: one line
    naming the module, the exception and the line of the module that raised it
    (`origin`, else the innermost), not a traceback. ImportError and SyntaxError
    pass through: their own text says it all."""
    try:
        yield
    except (ImportError, SyntaxError):
        raise
    except Exception as error:
        frames = [
            frame
            for frame in traceback.extract_tb(error.__traceback__)
            if not frame.filename.startswith("<")  # importlib's frozen frames
        ]
        own = [frame for frame in frames if origin is not None and frame.filename == origin]
        where = ""
        if own or frames:
            frame = (own or frames)[-1]
            where = f" ({Path(frame.filename).name}, line {frame.lineno})"
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise ConfigurationError(f"{what} failed to import: {text}{where}") from error


def build_settings(args: argparse.Namespace) -> Settings:
    return Settings(
        docker=resolve_docker(host=args.docker_host, allow_insecure=args.docker_insecure),
        consul=resolve_consul(
            addr=args.consul_addr, token=args.consul_token, cacert=args.consul_cacert
        ),
        prefix=check_prefix(args.prefix),
        resync_interval=max(1.0, float(args.resync_interval)),
        http=parse_http_addr(args.http) if args.http else None,
        log_level=args.log_level,
        log_format=args.log_format,
        state_dir=getattr(args, "state_dir", None) or None,
        instance=getattr(args, "instance_id", None) or new_instance_id(),
    )


def build_leadership(args: argparse.Namespace, settings: Settings) -> Leadership | None:
    """None (a single instance) without Consul or with --no-ha."""
    wanted = getattr(args, "ha", None)
    if settings.consul is None:
        if wanted:
            raise ConfigurationError("--ha needs Consul: set --consul-addr or CONSUL_HTTP_ADDR")
        return None
    if wanted is False:
        return None
    try:
        ha = HASettings(
            ttl=getattr(args, "ha_ttl", HASettings.ttl),
            lock_delay=getattr(args, "ha_lock_delay", HASettings.lock_delay),
        )
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    assert settings.instance is not None
    return Leadership(
        settings.consul, prefix=settings.prefix, instance=settings.instance, settings=ha
    )


def _stop_before_start(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def run_command(args: argparse.Namespace) -> int:
    # Until the event loop listens for SIGTERM, its default action would end the
    # process with -15; before the operator holds anything, stopping is a clean exit.
    signal.signal(signal.SIGTERM, _stop_before_start)
    setup_logging(args.log_level, args.log_format)
    log = logging.getLogger("swarmop")
    try:
        settings = build_settings(args)
        leadership = build_leadership(args, settings)
        load_handlers(args.files, args.modules)
    except (ConfigurationError, ImportError, SyntaxError) as error:
        log.error("%s", error)
        return 2
    if not default_registry.all():
        log.warning("no handlers registered: the operator will only watch and publish status")
    operator = Operator(settings, default_registry, leadership)

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        operator.stop()
                        return

            tg.start_soon(on_signal)
            await operator.run()
            tg.cancel_scope.cancel()

    anyio.run(main)
    return 0
