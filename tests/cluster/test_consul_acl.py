"""R21/R33 against a Consul agent with ACLs on and default policy deny.

The sandbox's Consul runs without ACLs, so these tests start a second dev agent
on loopback with `acl { enabled, default_policy = "deny" }`, give the operator
a token limited to its prefix, and check that every request the operator makes
(watches, state, status, sessions, transactions) carries the token in the
header, never in a URL, and that a refused write is reported, not fatal.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import consul
import pytest
from consul_fault_proxy import FaultProxy

import swarmop
from swarmop.clients.consul import ConsulKV
from swarmop.ha.consul_session import ConsulSessions, TxnRolledBack
from swarmop.registry import Registry
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.sandbox.tools import find_tools
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.testing import OperatorRunner

pytestmark = pytest.mark.cluster

ROOT_TOKEN = "acl-test-root-3c9a"
PREFIX = "acltest"
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class AclConsul:
    address: str  # host:port
    operator_token: str

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"http://{self.address}/v1/{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"X-Consul-Token": ROOT_TOKEN},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def acl_consul() -> Iterator[AclConsul]:
    binary = find_tools().consul
    if binary is None:
        pytest.fail("consul is missing: run `make setup`")
    http, serf_lan, serf_wan, server = _free_ports(4)
    config = (
        f"ports {{ http = {http}, dns = -1, grpc = -1, serf_lan = {serf_lan}, "
        f"serf_wan = {serf_wan}, server = {server} }}\n"
        'acl { enabled = true, default_policy = "deny", down_policy = "deny", '
        f'tokens {{ master = "{ROOT_TOKEN}" }} }}\n'
    )
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "acl.hcl").write_text(config)
        agent = subprocess.Popen(
            [binary, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
             "-node", unique("acl"), "-config-file", str(Path(folder) / "acl.hcl")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = AclConsul(f"127.0.0.1:{http}", "")

            def leader_with_acls() -> bool:
                try:
                    return bool(base.api("GET", "acl/token/self"))
                except OSError:
                    return False

            wait_until(leader_with_acls, timeout=60, what="the ACL-enabled Consul agent")
            rules = (
                f'key_prefix "{PREFIX}/" {{ policy = "write" }}\n'
                'session_prefix "" { policy = "write" }\n'
            )
            base.api("PUT", "acl/policy", {"Name": "swarmop-operator", "Rules": rules})
            token = base.api("PUT", "acl/token", {"Policies": [{"Name": "swarmop-operator"}]})
            yield AclConsul(base.address, str(token["SecretID"]))
        finally:
            agent.terminate()
            agent.wait(30)


def test_the_operator_works_through_a_prefix_token_and_sends_it_only_in_headers(
    sandbox: SandboxInfo, acl_consul: AclConsul, tracker: Tracker
) -> None:
    root = consul.Consul(*acl_consul.address.split(":"), token=ROOT_TOKEN)
    proxy = FaultProxy(acl_consul.address)
    registry = Registry()
    seen: dict[str, tuple[Any, str]] = {}
    marker = unique("m")

    @swarmop.on.field(
        "service", field="desired.replicas", labels={"test": marker}, registry=registry
    )
    def replicas(name: str, new: Any, desired: Any, **_: Any) -> None:
        seen[name] = (new, desired.get("replicas").source.value)

    name = unique("acl")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    settings = Settings(
        docker=resolve_docker(host=sandbox.manager_docker_host, env={}),
        consul=resolve_consul(
            addr=f"127.0.0.1:{proxy.port}", token=acl_consul.operator_token, env={}
        ),
        prefix=PREFIX,
        resync_interval=600.0,
    )
    try:
        with OperatorRunner(settings, registry=registry) as runner:
            root.kv.put(f"{PREFIX}/services/{name}/replicas", "0")
            wait_until(lambda: seen.get(name) == (0, "consul"), what="the key, read with the token")
            wait_until(
                lambda: root.kv.get(f"{PREFIX}/status/services/{name}")[1] is not None,
                what="the status, written with the token",
            )
            assert runner.board.info.consul_error is None
            messages = [event.message for event in runner.snapshot().events]
            assert not [m for m in messages if "Consul unavailable" in m], messages
        requests = proxy.snapshot()
        assert requests, "the operator talked to Consul through the proxy"
        missing = [s.request_line for s in requests if s.headers.get("x-consul-token") is None]
        assert not missing, missing
        assert {s.headers["x-consul-token"] for s in requests} == {acl_consul.operator_token}
        leaked = [s.request_line for s in requests if acl_consul.operator_token in s.request_line]
        assert not leaked, leaked
        assert not [s for s in requests if "token=" in s.target]
    finally:
        proxy.close()
        root.kv.delete(f"{PREFIX}/", recurse=True)


def test_a_write_outside_the_tokens_prefix_is_refused_not_fatal(acl_consul: AclConsul) -> None:
    kv = ConsulKV(resolve_consul(addr=acl_consul.address, token=acl_consul.operator_token, env={}))  # type: ignore[arg-type]
    assert kv.put(f"{PREFIX}/allowed", "yes")
    with pytest.raises(consul.ACLPermissionDenied):
        kv.put("elsewhere/denied", "no")
    anonymous = ConsulKV(resolve_consul(addr=acl_consul.address, env={}))  # type: ignore[arg-type]
    with pytest.raises(consul.ACLPermissionDenied):
        anonymous.put(f"{PREFIX}/anonymous", "no")
    assert kv.get(f"{PREFIX}/allowed") is not None
    assert kv.delete(f"{PREFIX}/allowed")


def test_a_failed_check_in_a_transaction_leaves_no_partial_state(acl_consul: AclConsul) -> None:
    settings = resolve_consul(addr=acl_consul.address, token=acl_consul.operator_token, env={})
    assert settings is not None
    sessions = ConsulSessions(settings)
    kv = ConsulKV(settings)
    key_a, key_b = f"{PREFIX}/txn/{unique('a')}", f"{PREFIX}/txn/{unique('b')}"
    assert kv.put(key_a, "1")
    stale = kv.get(key_a)
    assert stale is not None
    assert kv.put(key_a, "2")  # someone wrote since we read
    ops = [
        {"KV": {"Verb": "set", "Key": key_b, "Value": "YQ=="}},
        {"KV": {"Verb": "check-index", "Key": key_a, "Index": stale.modify_index}},
    ]
    with pytest.raises(TxnRolledBack):
        sessions.txn(ops)
    assert kv.get(key_b) is None, "the set before the failed check must not apply"
    fresh = kv.get(key_a)
    assert fresh is not None
    ops[1]["KV"]["Index"] = fresh.modify_index
    sessions.txn(ops)  # retried on a fresh read: both apply
    written = kv.get(key_b)
    assert written is not None and written.value == "a"
    session = sessions.create(unique("acl-session"), ttl=10, lock_delay=0)
    try:
        assert sessions.acquire(f"{PREFIX}/txn/lock", session, b"{}")
    finally:
        sessions.destroy(session)
    kv.delete(f"{PREFIX}/txn/", recurse=True)
