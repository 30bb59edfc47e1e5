"""The agent's Consul watch against real Consul behind a loopback proxy that
injects faults (R15, R16, R33 for the agent): X-Consul-Index 0, an index that
goes backwards, and a token that must travel only in a header.

The agent script and nginx run on this host (nginx under a temporary prefix,
on loopback); Consul is the sandbox's.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import consul
import pytest
from consul_fault_proxy import FaultProxy, Seen

from swarmop.proxy import AgentStatus, config_hash, proxy_keys, read_agent_status
from swarmop.proxy.nginx_check import DEFAULT_NGINX, default_user, main_config
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique, wait_until

pytestmark = pytest.mark.cluster

AGENT = Path(__file__).resolve().parents[2] / "swarmop" / "proxy" / "image" / "agent.sh"
TOKEN = "agent-test-token-5f1c"


def _query_index(seen: Seen) -> int:
    match = re.search(r"[?&]index=(\d+)", seen.request_line)
    assert match, seen.request_line
    return int(match.group(1))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def agent_env(
    consul_addr: str, kv_prefix: str, service: str, nginx_prefix: Path, tmp_path: Path
) -> dict[str, str]:
    """The agent's environment for nginx running under `nginx_prefix` on this host."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CONSUL_HTTP_ADDR": consul_addr,
        "SWARMOP_PROXY_SERVICE": service,
        "SWARMOP_PREFIX": kv_prefix,
        "SWARMOP_AGENT_NAME": "local-agent",
        "SWARMOP_WAIT": "5s",
        "SWARMOP_MIN_INTERVAL": "1",
        "SWARMOP_NGINX": str(DEFAULT_NGINX),
        "SWARMOP_NGINX_CONF": str(nginx_prefix / "nginx.conf"),
        "SWARMOP_CONF_DIR": str(nginx_prefix / "conf.d"),
        "SWARMOP_RUN_DIR": str(tmp_path / "run"),
    }


@pytest.fixture
def local_nginx(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    if not DEFAULT_NGINX.exists() or shutil.which("busybox") is None:
        pytest.fail(f"needs {DEFAULT_NGINX} and busybox (make setup installs them)")
    prefix = tmp_path / "nginx"
    (prefix / "conf.d").mkdir(parents=True)
    (prefix / "tmp").mkdir()
    port = _free_port()
    (prefix / "nginx.conf").write_text(
        main_config(prefix / "conf.d" / "*.conf", prefix, user=default_user())
    )
    (prefix / "conf.d" / "00-default.conf").write_text(
        f"server {{ listen 127.0.0.1:{port} default_server; return 404; }}\n"
    )
    subprocess.run(
        [str(DEFAULT_NGINX), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"],
        check=True,
    )
    yield prefix, port
    pid = int((prefix / "nginx.pid").read_text())
    os.kill(pid, signal.SIGQUIT)


def test_agent_watch_floors_and_resets_the_index_and_sends_the_token_in_a_header(
    sandbox: SandboxInfo,
    consul_client: consul.Consul,
    tracker: Tracker,
    local_nginx: tuple[Path, int],
    tmp_path: Path,
) -> None:
    prefix_dir, port = local_nginx
    kv_prefix = tracker.consul_prefix(unique("swarmop-agent-watch"))
    service = "edge"
    key = proxy_keys(kv_prefix, service)["config"]
    fault = FaultProxy(sandbox.consul_http_addr)
    mode = {"value": "zero"}
    fault.rewrite_index = lambda _path, index: {"zero": 0, "huge": 10**9}.get(mode["value"], index)
    env = agent_env(f"127.0.0.1:{fault.port}", kv_prefix, service, prefix_dir, tmp_path)
    env["CONSUL_HTTP_TOKEN"] = TOKEN
    agent = subprocess.Popen(
        ["busybox", "sh", str(AGENT)], env=env, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        # Index 0 from Consul while the key changes fast: the agent floors the
        # index at 1 and still queries at most about once per second.
        started = time.monotonic()
        for n in range(40):
            consul_client.kv.put(key, f"server {{ listen 127.0.0.1:{port}; return 200; }} # {n}\n")
            time.sleep(0.05)
        wait_until(lambda: len(fault.watches()) >= 3, timeout=30, what="three watch queries")
        watches = fault.watches()
        elapsed = time.monotonic() - started
        assert all(_query_index(seen) >= 1 for seen in watches)
        assert len(watches) <= elapsed / 1.0 + 2, (len(watches), elapsed)

        # An index far ahead, then the real (lower) one: the agent starts over at 1.
        mode["value"] = "huge"
        wait_until(
            lambda: any(s.index_out == 10**9 for s in fault.watches()),
            timeout=30,
            what="a response with the inflated index",
        )
        mode["value"] = "real"
        final = f"server {{ listen 127.0.0.1:{port}; return 204; }}\n"
        consul_client.kv.put(key, final)
        wait_until(
            lambda: any(
                item.ok and item.live_hash == config_hash(final)
                for item in read_agent_status(
                    consul_client, prefix=kv_prefix, proxy_service=service
                ).values()
            ),
            timeout=60,
            what="the final config live after the index went backwards",
        )
        last_inflated = max(i for i, seen in enumerate(fault.watches()) if seen.index_out == 10**9)
        watches = wait_until(
            lambda: len(w := fault.watches()) > last_inflated + 2 and w,
            timeout=30,
            what="two watch queries after the inflated index",
        )
        following, reset = watches[last_inflated + 1], watches[last_inflated + 2]
        assert _query_index(following) == 10**9
        assert following.index_out is not None and following.index_out < 10**9
        assert _query_index(reset) == 1

        # The token goes in a header, never in a URL.
        assert all(seen.headers.get("x-consul-token") == TOKEN for seen in fault.seen)
        assert not any(TOKEN in seen.request_line for seen in fault.seen)
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(timeout=10)
        fault.close()


def _get(port: int, host: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _live(consul_client: consul.Consul, prefix: str, service: str, text: str) -> bool:
    return any(
        item.ok and item.live_hash == config_hash(text)
        for item in read_agent_status(consul_client, prefix=prefix, proxy_service=service).values()
    )


def test_a_torn_write_and_a_config_nginx_refuses_never_reach_nginx(
    sandbox: SandboxInfo,
    consul_client: consul.Consul,
    tracker: Tracker,
    local_nginx: tuple[Path, int],
    tmp_path: Path,
) -> None:
    """R30: the agent is killed between writing a config and renaming it into
    place, leaving half a file beside the live one; and a config that fails
    `nginx -t` is published. nginx keeps serving the last good config through
    both, and the next good config replaces the torn file."""
    prefix_dir, port = local_nginx
    conf_dir = prefix_dir / "conf.d"
    kv_prefix = tracker.consul_prefix(unique("swarmop-agent-torn"))
    service = "edge"
    key = proxy_keys(kv_prefix, service)["config"]
    consul_addr = sandbox.consul_http_addr.removeprefix("http://")
    env = agent_env(consul_addr, kv_prefix, service, prefix_dir, tmp_path)

    def start_agent() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            ["busybox", "sh", str(AGENT)],
            env=env,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def server(body: str) -> str:
        return (
            f"server {{ listen 127.0.0.1:{port}; server_name torn.test; return 200 '{body}'; }}\n"
        )

    first, second = server("first"), server("second")
    agent = start_agent()
    try:
        consul_client.kv.put(key, first)
        wait_until(lambda: _live(consul_client, kv_prefix, service, first), what="first live")
        assert _get(port, "torn.test") == (200, b"first")
    finally:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)

    # What a kill between write and rename leaves behind: half of the next file.
    torn = conf_dir / ".swarmop.conf.tmp"
    torn.write_text(second[: len(second) // 2])
    nginx = [str(DEFAULT_NGINX), "-p", str(prefix_dir), "-c", str(prefix_dir / "nginx.conf")]
    subprocess.run([*nginx, "-t", "-q"], check=True)  # the torn file is not part of the config
    subprocess.run([*nginx, "-s", "reload"], check=True)
    assert _get(port, "torn.test") == (200, b"first")

    agent = start_agent()
    try:
        consul_client.kv.put(key, second)
        wait_until(lambda: _live(consul_client, kv_prefix, service, second), what="second live")
        assert _get(port, "torn.test") == (200, b"second")
        assert not torn.exists(), "the next good write replaces the torn file"

        broken = second.replace("return 200", "retrun 200")
        consul_client.kv.put(key, broken)
        wait_until(
            lambda: any(
                not item.ok
                for item in read_agent_status(
                    consul_client, prefix=kv_prefix, proxy_service=service
                ).values()
            ),
            what="the agent to report the config nginx refused",
        )
        assert _get(port, "torn.test") == (200, b"second")
        assert (conf_dir / "swarmop.conf").read_text() == second

        # `nginx -t` does not bind: a listen address another process holds
        # passes the test and fails only inside the reload. The master keeps
        # its workers and the previous config, and so must the file on disk.
        with socket.create_server(("127.0.0.1", 0)) as holder:
            held = holder.getsockname()[1]
            unbindable = second + f"server {{ listen 127.0.0.1:{held}; return 200 'held'; }}\n"
            consul_client.kv.put(key, unbindable)
            refused = wait_until(
                lambda: next(
                    (
                        item
                        for item in read_agent_status(
                            consul_client, prefix=kv_prefix, proxy_service=service
                        ).values()
                        if not item.ok and item.hash == config_hash(unbindable)
                    ),
                    None,
                ),
                timeout=30,
                what="the agent to report the reload nginx did not take",
            )
        assert refused.reload == "error"
        assert refused.live_hash == config_hash(second)
        assert (conf_dir / "swarmop.conf").read_text() == second
        assert _get(port, "torn.test") == (200, b"second")
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(timeout=10)


def test_an_idle_agent_reports_again_every_heartbeat_without_reloading(
    sandbox: SandboxInfo,
    consul_client: consul.Consul,
    tracker: Tracker,
    local_nginx: tuple[Path, int],
    tmp_path: Path,
) -> None:
    """The operator tells a quiet agent from a gone one by its report's time: an
    idle agent writes its last report again every SWARMOP_HEARTBEAT seconds,
    refused configs included, and does not reload nginx for it."""
    prefix_dir, port = local_nginx
    kv_prefix = tracker.consul_prefix(unique("swarmop-agent-beat"))
    service = "edge"
    key = proxy_keys(kv_prefix, service)["config"]
    consul_addr = sandbox.consul_http_addr.removeprefix("http://")
    env = agent_env(consul_addr, kv_prefix, service, prefix_dir, tmp_path)
    env.update(SWARMOP_WAIT="2s", SWARMOP_HEARTBEAT="2")
    agent = subprocess.Popen(
        ["busybox", "sh", str(AGENT)], env=env, stderr=subprocess.DEVNULL, start_new_session=True
    )

    def report() -> AgentStatus:
        (found,) = read_agent_status(
            consul_client, prefix=kv_prefix, proxy_service=service
        ).values()
        return found

    try:
        good = f"server {{ listen 127.0.0.1:{port}; server_name beat.test; return 200; }}\n"
        consul_client.kv.put(key, good)
        wait_until(lambda: _live(consul_client, kv_prefix, service, good), what="good live")
        first = report()
        assert first.reload == "ok" and first.added == ("beat.test",)
        beat = wait_until(
            lambda: (r := report()).time != first.time and r,
            timeout=30,
            what="a heartbeat with a newer time",
        )
        assert (beat.state, beat.live_hash) == ("ok", first.live_hash)
        assert (beat.reload_time, beat.changed_time) == (first.reload_time, first.changed_time)

        broken = good.replace("return 200", "retrun 200")
        consul_client.kv.put(key, broken)
        refused = wait_until(
            lambda: (r := report()).state == "error" and r, what="the refusal reported"
        )
        again = wait_until(
            lambda: (r := report()).time != refused.time and r,
            timeout=30,
            what="the refusal reported again",
        )
        assert (again.state, again.hash, again.message) == (
            "error",
            config_hash(broken),
            refused.message,
        )
        assert again.reload_time == first.reload_time
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        agent.wait(timeout=10)
