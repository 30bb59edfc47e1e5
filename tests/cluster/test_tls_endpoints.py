"""R32 against real endpoints: the sandbox's Consul and manager dockerd behind a
TLS proxy. The CA files the operator resolves are the ones its clients use, a
wrong CA fails, and Docker's client certificate is presented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import consul
import docker.errors
import pytest
from tls_endpoints import Authority, TLSProxy, make_authority

from swarmop.clients.consul import ConsulKV, ConsulUnavailable
from swarmop.clients.docker import DockerReader, make_api
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.settings import resolve_consul, resolve_docker

pytestmark = pytest.mark.cluster

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(autouse=True)
def requests_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many machines export REQUESTS_CA_BUNDLE; requests then lets it replace a
    session's own CA. Set here, the CA the operator resolved must still win."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    monkeypatch.setenv("CURL_CA_BUNDLE", SYSTEM_BUNDLE)


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Authority]:
    base = tmp_path_factory.mktemp("tls")
    return make_authority(base / "good", "swarmop"), make_authority(base / "other", "other")


@pytest.fixture
def consul_over_tls(
    sandbox: SandboxInfo, authorities: tuple[Authority, Authority]
) -> Iterator[str]:
    host, port = sandbox.consul_http_addr.removeprefix("http://").rsplit(":", 1)
    proxy = TLSProxy(authorities[0], (host, int(port)))
    try:
        yield f"https://127.0.0.1:{proxy.port}"
    finally:
        proxy.close()


@pytest.fixture
def docker_over_tls(
    sandbox: SandboxInfo, authorities: tuple[Authority, Authority]
) -> Iterator[TLSProxy]:
    socket_path = sandbox.manager_docker_host.removeprefix("unix://")
    proxy = TLSProxy(authorities[0], socket_path, require_client_cert=True)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def written_key(consul_client: consul.Consul, tracker: Tracker) -> tuple[str, str]:
    key = tracker.consul_key(f"{unique('tls')}/value")
    consul_client.kv.put(key, "over-tls")
    return key, "over-tls"


def test_consul_cacert_flag_and_variable_are_the_ca_the_client_uses(
    consul_over_tls: str, authorities: tuple[Authority, Authority], written_key: tuple[str, str]
) -> None:
    key, value = written_key
    good, other = authorities
    by_flag = resolve_consul(addr=consul_over_tls, cacert=str(good.ca), env={})
    by_env = resolve_consul(
        env={"CONSUL_HTTP_ADDR": consul_over_tls, "CONSUL_CACERT": str(good.ca)}
    )
    for settings in (by_flag, by_env):
        assert settings is not None
        entry = ConsulKV(settings).get(key)
        assert entry is not None and entry.value == value
    # The flag beats the variable: a wrong CA given as the flag is the one used.
    wrong_flag = resolve_consul(
        addr=consul_over_tls,
        cacert=str(other.ca),
        env={"CONSUL_CACERT": str(good.ca)},
    )
    assert wrong_flag is not None
    with pytest.raises(ConsulUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        ConsulKV(wrong_flag).get(key)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_consul_without_the_ca_fails_unless_verification_is_turned_off(
    consul_over_tls: str, written_key: tuple[str, str]
) -> None:
    key, value = written_key
    system_trust = resolve_consul(addr=consul_over_tls, env={})
    assert system_trust is not None and system_trust.verify
    with pytest.raises(ConsulUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        ConsulKV(system_trust).get(key)
    for off in ("false", "0"):
        unverified = resolve_consul(addr=consul_over_tls, env={"CONSUL_HTTP_SSL_VERIFY": off})
        assert unverified is not None and not unverified.verify
        entry = ConsulKV(unverified).get(key)
        assert entry is not None and entry.value == value


def cert_folder(tmp: Path, ca_from: Authority, client_from: Authority) -> Path:
    """DOCKER_CERT_PATH layout: ca.pem to verify the daemon, cert.pem/key.pem to
    prove who we are."""
    folder = tmp / unique("certs")
    folder.mkdir()
    (folder / "ca.pem").write_bytes(ca_from.ca.read_bytes())
    for name in ("cert.pem", "key.pem"):
        (folder / name).write_bytes((client_from.folder / name).read_bytes())
    return folder


def test_docker_tls_verify_uses_the_cert_path(
    docker_over_tls: TLSProxy, authorities: tuple[Authority, Authority], tmp_path: Path
) -> None:
    good, other = authorities
    host = f"tcp://127.0.0.1:{docker_over_tls.port}"
    certs = cert_folder(tmp_path, good, good)
    settings = resolve_docker(
        env={"DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
    )
    api = make_api(settings)
    try:
        hostnames = {n["Description"]["Hostname"] for n in DockerReader(api).list_nodes()}
    finally:
        api.close()
    assert "node-1" in hostnames

    # A daemon certificate from another CA is refused by the client ...
    wrong_ca = cert_folder(tmp_path, other, good)
    with pytest.raises(docker.errors.DockerException, match="CERTIFICATE_VERIFY_FAILED"):
        make_api(
            resolve_docker(
                env={
                    "DOCKER_HOST": host,
                    "DOCKER_TLS_VERIFY": "1",
                    "DOCKER_CERT_PATH": str(wrong_ca),
                }
            )
        )
    # ... and a client certificate from another CA by the daemon's side. The
    # proxy counts a failed handshake in its own thread, possibly after the client
    # has raised, so the count is awaited rather than read at once.
    failures = wait_until(
        lambda: docker_over_tls.handshake_failures,
        timeout=10,
        what="the proxy to count the refused daemon certificate's aborted handshake",
    )
    wrong_client = cert_folder(tmp_path, good, other)
    with pytest.raises(docker.errors.DockerException):
        make_api(
            resolve_docker(
                env={
                    "DOCKER_HOST": host,
                    "DOCKER_TLS_VERIFY": "1",
                    "DOCKER_CERT_PATH": str(wrong_client),
                }
            )
        )
    wait_until(
        lambda: docker_over_tls.handshake_failures > failures,
        timeout=10,
        what="the proxy to refuse the client certificate from another CA",
    )
