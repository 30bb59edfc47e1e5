"""R32: the TLS variables' meaning, one explicit rule per value (see
swarmop.settings), including the values other tools read differently."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmop.errors import ConfigurationError
from swarmop.settings import resolve_consul, resolve_docker

REMOTE = "tcp://10.0.0.5:2376"
LOOPBACK = "tcp://127.0.0.1:2375"
UNIX = "unix:///var/run/docker.sock"


@pytest.fixture
def certs(tmp_path: Path) -> str:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("placeholder\n")
    return str(tmp_path)


@pytest.mark.parametrize(
    ("verify", "expected"),
    [
        (None, False),
        ("", False),
        ("0", False),  # docker-py would read "0" as on; here it means off
        ("false", False),
        ("no", False),
        ("1", True),
        ("true", True),
        ("yes", True),
    ],
)
@pytest.mark.parametrize("host", [UNIX, LOOPBACK, REMOTE])
def test_docker_tls_verify_values_with_a_cert_path(
    certs: str, verify: str | None, expected: bool, host: str
) -> None:
    env = {"DOCKER_HOST": host, "DOCKER_CERT_PATH": certs}
    if verify is not None:
        env["DOCKER_TLS_VERIFY"] = verify
    settings = resolve_docker(env=env)
    assert settings.tls_verify is expected
    # Client certificates alone mean TLS (without checking the daemon's certificate).
    assert settings.uses_tls


@pytest.mark.parametrize("verify", [None, "", "0", "false"])
def test_plaintext_remote_docker_is_refused_unless_opted_in(verify: str | None) -> None:
    env = {"DOCKER_HOST": REMOTE}
    if verify is not None:
        env["DOCKER_TLS_VERIFY"] = verify
    with pytest.raises(ConfigurationError, match="refusing plaintext Docker API"):
        resolve_docker(env=env)
    allowed = resolve_docker(env=env, allow_insecure=True)
    assert not allowed.uses_tls


@pytest.mark.parametrize("host", [UNIX, LOOPBACK, "tcp://localhost:2375", "tcp://[::1]:2375"])
def test_local_plaintext_docker_needs_no_opt_in(host: str) -> None:
    assert not resolve_docker(env={"DOCKER_HOST": host}).uses_tls


@pytest.mark.parametrize("verify", ["1", "true"])
def test_tls_verify_without_certificates_is_an_error(tmp_path: Path, verify: str) -> None:
    env = {"DOCKER_HOST": REMOTE, "DOCKER_TLS_VERIFY": verify, "DOCKER_CERT_PATH": str(tmp_path)}
    with pytest.raises(ConfigurationError, match=r"missing ca\.pem, cert\.pem, key\.pem"):
        resolve_docker(env=env)


@pytest.mark.parametrize("value", ["2", "maybe", "on-ish"])
def test_unknown_tls_verify_value_is_refused_not_guessed(value: str) -> None:
    with pytest.raises(ConfigurationError, match="DOCKER_TLS_VERIFY"):
        resolve_docker(env={"DOCKER_HOST": LOOPBACK, "DOCKER_TLS_VERIFY": value})


def test_docker_host_flag_beats_the_variable() -> None:
    settings = resolve_docker(host=LOOPBACK, env={"DOCKER_HOST": REMOTE})
    assert settings.host == LOOPBACK


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, True), ("1", True), ("true", True), ("false", False), ("0", False)],
)
def test_consul_ssl_verify_values(value: str | None, expected: bool) -> None:
    env = {"CONSUL_HTTP_ADDR": "https://consul.example:8501"}
    if value is not None:
        env["CONSUL_HTTP_SSL_VERIFY"] = value
    settings = resolve_consul(env=env)
    assert settings is not None and settings.verify is expected


def test_consul_http_ssl_picks_https_for_a_bare_address() -> None:
    plain = resolve_consul(env={"CONSUL_HTTP_ADDR": "consul:8500"})
    secure = resolve_consul(env={"CONSUL_HTTP_ADDR": "consul:8501", "CONSUL_HTTP_SSL": "true"})
    assert plain is not None and plain.scheme == "http"
    assert secure is not None and secure.scheme == "https"


def test_consul_cacert_flag_beats_the_variable_and_must_exist(tmp_path: Path) -> None:
    flag, env_ca = tmp_path / "flag.pem", tmp_path / "env.pem"
    flag.write_text("x")
    env_ca.write_text("x")
    env = {"CONSUL_HTTP_ADDR": "https://consul:8501", "CONSUL_CACERT": str(env_ca)}
    from_env = resolve_consul(env=env)
    assert from_env is not None and from_env.cacert == str(env_ca)
    from_flag = resolve_consul(cacert=str(flag), env=env)
    assert from_flag is not None and from_flag.cacert == str(flag)
    with pytest.raises(ConfigurationError, match="does not exist"):
        resolve_consul(env={**env, "CONSUL_CACERT": str(tmp_path / "absent.pem")})
