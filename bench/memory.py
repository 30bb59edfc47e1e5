"""Resident memory of `swarmop run` and of the TUI against a sandbox with many services.

    .venv/bin/python bench/memory.py --sandbox NAME [--services 1000] [--resync-interval 30]
        [--resyncs 3] [--no-tui]

Brings the sandbox up if needed and removes left-over bench services, so the
first figures see only the sandbox's own objects (its nodes). Then:

- `swarmop run` (the built-in handlers, Consul, leader election on, a Consul
  prefix of its own) as a real child process, started twice: once on the
  sandbox as it is, once after N services at 0 replicas were created (the same
  `bench-tui-NNNN` services bench/tui.py makes, through its helper). Each time
  VmRSS and VmHWM come from /proc/<pid>/status when /readyz first answers 200
  and again once the process is leader and idle (no CPU for a few seconds:
  every object has been processed). The second run stays up for R resyncs
  (`--resync-interval`, the operator info's `last_resync` in /status advances)
  and is measured idle after each, which shows whether relisting grows memory.
  The times in parentheses count from the operator's start.
- the TUI: the real Textual app headless (as bench/tui.py drives it), each time
  in a fresh Python process, measured from its own /proc/self/status once the
  services table first holds every service; with no extra services and with N.

Prints the figures with the command that reproduces them. Removes the
services and every Consul key it wrote, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import consul
import docker
from swarmop.tui.connection import resolve_connection
from swarmop.tui.launch import build_app

from swarmop.sandbox import Sandbox, SandboxInfo

IDLE_WINDOW = 3.0  # seconds the process must stay (almost) without CPU to count as idle
IDLE_CPU = 0.03  # CPU seconds per second below which it counts as idle
TIMEOUT = 600.0
# Loopback only, and never through a proxy from the environment.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def load_tui_bench() -> ModuleType:
    """bench/tui.py by path: `import tui` would find the TUI package instead."""
    path = Path(__file__).with_name("tui.py")
    spec = importlib.util.spec_from_file_location("bench_tui", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- process memory ---------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    hwm_kib: int

    def __str__(self) -> str:
        return f"VmRSS {self.rss_kib / 1024:6.1f} MiB   VmHWM {self.hwm_kib / 1024:6.1f} MiB"


def read_memory(pid: int | str = "self") -> Memory:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(value.split()[0])  # the kernel says kB; it means KiB
    return Memory(values["VmRSS"], values["VmHWM"])


def cpu_seconds(pid: int) -> float:
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def line(label: str, memory: Memory) -> None:
    print(f"  {label:<46} {memory}", flush=True)


def per_item(before: Memory, after: Memory, count: int) -> str:
    return f"{(after.rss_kib - before.rss_kib) / count:.1f} KiB"


# --- the operator as a child process ------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def swarmop_command() -> list[str]:
    script = Path(sys.executable).with_name("swarmop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "swarmop"]


def child_environment() -> dict[str, str]:
    """The caller's environment without Docker or Consul settings: flags say where to go."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DOCKER_", "CONSUL_", "SWARMOP_"))
    }


class OperatorProcess:
    """`swarmop run` with the built-in handlers, watched through /proc and its HTTP endpoint."""

    def __init__(self, info: SandboxInfo, prefix: str, resync_interval: float, log: Path) -> None:
        self.port = free_port()
        self.log = log
        command = [
            *swarmop_command(),
            "run",
            "--docker-host",
            info.manager_docker_host,
            "--consul-addr",
            info.consul_http_addr,
            "--prefix",
            prefix,
            "--resync-interval",
            f"{resync_interval:g}",
            "--http",
            f"127.0.0.1:{self.port}",
        ]
        with log.open("ab") as output:
            # A session of its own: Ctrl-C reaches only this script, which stops it in order.
            self.process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=child_environment(),
                start_new_session=True,
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def memory(self) -> Memory:
        return read_memory(self.pid)

    def get(self, path: str) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body); (0, None) while nothing listens yet."""
        try:
            with LOOPBACK.open(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, None

    def operator_info(self) -> dict[str, Any]:
        status, body = self.get("/status")
        return dict(body["operator"]) if status == 200 else {}

    def wait(self, check: Callable[[], bool], what: str, interval: float = 0.25) -> float:
        """Seconds since the start once check() holds; exits with the log's tail otherwise."""
        deadline = time.monotonic() + TIMEOUT
        while not check():
            if self.process.poll() is not None:
                raise SystemExit(
                    f"the operator exited ({self.process.returncode}) while waiting for "
                    f"{what}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(f"waited {TIMEOUT:g} s for {what}:\n{self.log_tail()}")
            time.sleep(interval)
        return time.monotonic() - self.started

    def wait_ready(self) -> float:
        return self.wait(lambda: self.get("/readyz")[0] == 200, "/readyz to answer 200")

    def wait_leader(self) -> float:
        return self.wait(lambda: bool(self.operator_info().get("leader")), "leadership")

    def wait_idle(self) -> float:
        """Until the process used almost no CPU for IDLE_WINDOW seconds: all work done."""
        samples: deque[tuple[float, float]] = deque()

        def idle() -> bool:
            now = time.monotonic()
            samples.append((now, cpu_seconds(self.pid)))
            while len(samples) > 1 and now - samples[1][0] >= IDLE_WINDOW:
                samples.popleft()
            (then, cpu_then), (_, cpu_now) = samples[0], samples[-1]
            return now - then >= IDLE_WINDOW and (cpu_now - cpu_then) / (now - then) < IDLE_CPU

        return self.wait(idle, "the operator to go idle")

    def wait_resync(self, after: float) -> float:
        def advanced() -> bool:
            last = self.operator_info().get("last_resync")
            return last is not None and float(last) > after

        return self.wait(advanced, "last_resync to advance", interval=1.0)

    def last_resync(self) -> float:
        return float(self.operator_info().get("last_resync") or 0.0)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running_operator(
    info: SandboxInfo, prefix: str, resync_interval: float, log: Path
) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(info, prefix, resync_interval, log)
    try:
        yield operator
    finally:
        operator.stop()


def ready_and_idle(operator: OperatorProcess, label: str) -> Memory:
    ready_after = operator.wait_ready()
    at_ready = operator.memory()
    operator.wait_leader()
    idle_after = operator.wait_idle()
    idle = operator.memory()
    line(f"{label}, at /readyz 200 ({ready_after:.1f} s)", at_ready)
    line(f"{label}, leader and idle ({idle_after:.1f} s)", idle)
    return idle


# --- the TUI, each time in a process of its own -------------------------------------


async def paint_once(info: SandboxInfo, rows: int) -> dict[str, Any]:
    after_imports = read_memory()
    connection = resolve_connection(
        docker_host=info.manager_docker_host,
        consul_addr=info.consul_http_addr,
        prefix="swarmop",
        read_only=True,
        environ={},
    )
    app = build_app(connection)
    async with app.run_test(size=(170, 40)) as pilot:
        table = app.table("services")
        started = time.monotonic()
        while not app.synced or len(table.shown) < rows:
            if time.monotonic() - started > TIMEOUT:
                raise SystemExit(f"the services table never held {rows} rows")
            await pilot.pause(0.01)
        await pilot.pause()  # the frame with those rows
        painted = read_memory()
        shown = len(table.shown)
    return {
        "after_imports": after_imports.__dict__,
        "painted": painted.__dict__,
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "rows": shown,
    }


def measure_tui(sandbox: str, rows: int) -> tuple[Memory, Memory, int]:
    """(after imports, after first paint, rows shown) from a fresh headless app."""
    command = [sys.executable, __file__, "--sandbox", sandbox, "--tui-child", str(rows)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=child_environment(),
        start_new_session=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the TUI probe failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Memory(**result["after_imports"]), Memory(**result["painted"]), int(result["rows"])


# --- cleanup --------------------------------------------------------------------------


def interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def clean_up(api: docker.APIClient, kv: consul.Consul, prefix: str, tui_bench: ModuleType) -> None:
    # Removing a thousand services takes a while; a second Ctrl-C must not leave half.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        print("cleaning up (Ctrl-C is ignored until done)...", flush=True)
        tui_bench.remove_services(api)
        kv.kv.delete(prefix + "/", recurse=True)
    finally:
        signal.signal(signal.SIGINT, previous)


# --- main -------------------------------------------------------------------------------


def reproduce_command(args: argparse.Namespace) -> str:
    command = [
        ".venv/bin/python",
        "bench/memory.py",
        "--sandbox",
        args.sandbox,
        "--services",
        str(args.services),
        "--resync-interval",
        f"{args.resync_interval:g}",
        "--resyncs",
        str(args.resyncs),
    ]
    if not args.tui:
        command.append("--no-tui")
    return shlex.join(command)


def bench(args: argparse.Namespace, info: SandboxInfo, log: Path) -> None:
    tui_bench = load_tui_bench()
    api = docker.APIClient(base_url=info.manager_docker_host, version="1.41", timeout=120)
    host, port = info.consul_http_addr.removeprefix("http://").rsplit(":", 1)
    kv = consul.Consul(host=host, port=int(port))
    prefix = f"bench-mem-{int(time.time())}"
    count = args.services
    try:
        leftovers = api.services(filters={"name": tui_bench.PREFIX})
        if leftovers:
            print(f"removing {len(leftovers)} left-over {tui_bench.PREFIX}* services", flush=True)
            tui_bench.remove_services(api)
        baseline = len(api.services())
        print(
            f"sandbox {info.name}: {len(info.nodes)} nodes, {baseline} services of its own; "
            f"operator prefix {prefix}/, log {log}",
            flush=True,
        )

        if args.tui:
            tui_imports, tui_empty, _ = measure_tui(args.sandbox, baseline)

        print("swarmop run (built-in handlers, Consul, leader election):", flush=True)
        with running_operator(info, prefix, args.resync_interval, log) as operator:
            alone = ready_and_idle(operator, "(a) sandbox only")
        kv.kv.delete(prefix + "/", recurse=True)  # the second run starts from no state too

        tui_bench.ensure_services(api, count)
        with running_operator(info, prefix, args.resync_interval, log) as operator:
            crowded = ready_and_idle(operator, f"(b) {count} services")
            after_resyncs: list[Memory] = []
            for index in range(1, args.resyncs + 1):
                since = operator.last_resync()
                resynced = operator.wait_resync(since)
                operator.wait_idle()
                after_resyncs.append(operator.memory())
                line(f"(c) after resync {index} ({resynced:.1f} s), idle", after_resyncs[-1])
        print(f"  per service, ((b) - (a)) / {count}: {per_item(alone, crowded, count)} VmRSS")
        if after_resyncs:
            print(
                f"  growth over {len(after_resyncs)} resyncs, (c) last - (b): "
                f"{(after_resyncs[-1].rss_kib - crowded.rss_kib) / 1024:+.1f} MiB VmRSS"
            )

        if args.tui:
            _, tui_full, shown = measure_tui(args.sandbox, baseline + count)
            print("swarmop tui (the Textual app headless, in a process of its own):")
            line("after imports, before the app", tui_imports)
            line(f"first paint, {baseline} service rows", tui_empty)
            line(f"first paint, {shown} service rows", tui_full)
            print(f"  per service row: {per_item(tui_empty, tui_full, count)} VmRSS")
    finally:
        clean_up(api, kv, prefix, tui_bench)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="mem-bench", help="sandbox name (created if absent)")
    parser.add_argument("--services", type=int, default=1000, help="extra services (0 replicas)")
    parser.add_argument(
        "--resync-interval",
        type=float,
        default=30.0,
        help="the operator's, in seconds; longer than processing N services takes, so (b) "
        "comes before the first timed resync (default %(default)s)",
    )
    parser.add_argument("--resyncs", type=int, default=3, help="resyncs to measure after")
    parser.add_argument("--no-tui", dest="tui", action="store_false", help="skip the TUI")
    parser.add_argument("--tui-child", type=int, metavar="ROWS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.services < 1:
        parser.error("--services must be at least 1")

    if args.tui_child is not None:
        info = Sandbox(args.sandbox).info()
        if info is None:
            raise SystemExit(f"sandbox {args.sandbox!r} is not up")
        print(json.dumps(asyncio.run(paint_once(info, args.tui_child))))
        return 0

    print(f"reproduce: {reproduce_command(args)}", flush=True)
    signal.signal(signal.SIGTERM, interrupt)
    info = Sandbox(args.sandbox).up(nodes=3)
    with tempfile.NamedTemporaryFile(prefix="swarmop-mem-", suffix=".log", delete=False) as f:
        log = Path(f.name)
    try:
        bench(args, info, log)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        log.unlink()
        return 130
    log.unlink()  # kept when something failed: the message points at it
    return 0


if __name__ == "__main__":
    sys.exit(main())
