"""Pure parts of the core: filters, diffs, progress, Consul index rules, settings, registry."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import swarmop
from swarmop import errors
from swarmop.clients.consul import ConsulKV, TokenBucket, blocking_index, next_index
from swarmop.errors import ConfigurationError
from swarmop.filters import ABSENT, PRESENT, match_labels, resolve_field
from swarmop.planning.diff import diff
from swarmop.planning.progress import Cycle, HandlerProgress, ObjectState, restart_cycle
from swarmop.reactor.patch import Patch
from swarmop.registry import Reason, Registry
from swarmop.settings import resolve_consul, resolve_docker


def test_label_filters() -> None:
    labels = {"a": "1", "b": "x"}
    assert match_labels(labels, {"a": "1", "b": PRESENT, "c": ABSENT})
    assert not match_labels(labels, {"a": "2"})
    assert not match_labels(labels, {"c": PRESENT})
    assert match_labels(labels, {"b": lambda v: v == "x"})
    assert not match_labels(labels, {"b": lambda v: v is None})


def test_resolve_field_with_dotted_keys() -> None:
    data = {"spec": {"Labels": {"swarmop.replicas": "3"}}, "desired": {"proxy.host": "a.b"}}
    assert resolve_field(data, "spec.Labels.swarmop.replicas") == "3"
    assert resolve_field(data, "desired.proxy.host") == "a.b"
    assert resolve_field(data, "desired.missing") is None
    assert resolve_field(data, ("spec", "Labels", "swarmop.replicas")) == "3"


def test_diff() -> None:
    items = diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4})
    assert [(i.op, i.field, i.old, i.new) for i in items] == [
        ("change", ("b", "c"), 2, 3),
        ("add", ("d",), None, 4),
    ]
    assert diff(None, None) == ()


def test_progress_round_trip_and_restart_keeps_retries() -> None:
    cycle = Cycle(
        "update", "t1", {"h": HandlerProgress(10.0, retries=2, delayed_until=99.0)}, ("h", "g")
    )
    state = ObjectState("id1", {"spec": {}}, cycle)
    assert ObjectState.from_json(state.to_json()) == state
    again = restart_cycle(
        cycle.with_handler("g", HandlerProgress(5.0, done=True)), "update", "t2", ("h", "g"), 50.0
    )
    assert again.handlers["h"].retries == 2 and again.handlers["h"].delayed_until is None
    assert not again.handlers["g"].done and again.handlers["g"].started == 50.0
    with pytest.raises(ValueError):
        ObjectState.from_json("{}")


@pytest.mark.parametrize(
    ("previous", "received", "expected"),
    [(0, "9", 9), (9, "10", 10), (10, "9", 0), (5, "0", 0), (5, "junk", 0), (5, None, 0)],
)
def test_consul_index_rules(previous: int, received: Any, expected: int) -> None:
    assert next_index(previous, received) == expected


def test_blocking_index_never_below_one() -> None:
    assert blocking_index(0) is None
    assert blocking_index(1) == 1


def test_token_bucket() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=2, clock=lambda: now[0])
    assert bucket.delay() == 0 and bucket.delay() == 0
    assert bucket.delay() == pytest.approx(0.5)
    now[0] = 10.0
    assert bucket.delay() == 0


def test_docker_settings() -> None:
    assert resolve_docker(env={}).host.startswith("unix://")
    assert resolve_docker(host="tcp://127.0.0.1:2375", env={}).uses_tls is False
    with pytest.raises(ConfigurationError, match="plaintext"):
        resolve_docker(host="tcp://10.0.0.5:2375", env={})
    assert resolve_docker(host="tcp://10.0.0.5:2375", allow_insecure=True, env={})
    with pytest.raises(ConfigurationError):
        resolve_docker(env={"DOCKER_TLS_VERIFY": "maybe"})
    with pytest.raises(ConfigurationError, match="missing"):
        resolve_docker(env={"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent"})


def test_consul_settings_token_precedence_and_hygiene() -> None:
    env = {"CONSUL_HTTP_ADDR": "127.0.0.1:8500", "CONSUL_HTTP_TOKEN": "env-secret"}
    from_env = resolve_consul(env=env)
    assert from_env is not None and from_env.token == "env-secret"
    assert from_env.token_source == "env"
    flagged = resolve_consul(token="flag-secret", env=env)
    assert flagged is not None and flagged.token == "flag-secret"
    assert flagged.token_source == "flag"
    assert "secret" not in repr(flagged)
    assert resolve_consul(env={}) is None
    with pytest.raises(ConfigurationError):
        resolve_consul(addr="ftp://x", env={})
    with pytest.raises(ConfigurationError, match="CA file"):
        resolve_consul(addr="https://127.0.0.1:8501", cacert="/nonexistent", env={})


def test_consul_client_uses_resolved_token_not_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "env-secret")
    settings = resolve_consul(addr="127.0.0.1:1", token="flag-secret", env={})
    assert settings is not None
    kv = ConsulKV(settings)
    assert kv._client.token == "flag-secret"


def test_decorators_register_with_filters() -> None:
    registry = Registry()

    @swarmop.on.update(
        "service", field="desired.replicas", new=PRESENT, registry=registry, id="scale"
    )
    def scale(**_: Any) -> None: ...

    @swarmop.timer("node", interval=5, registry=registry)
    def tick(**_: Any) -> None: ...

    assert [h.reason for h in registry.all()] == [Reason.UPDATE, Reason.TIMER]
    with pytest.raises(ValueError, match="unknown resource"):
        swarmop.on.create("pod", registry=registry)
    with pytest.raises(ValueError, match="already registered"):
        swarmop.on.update("service", registry=registry, id="scale")(scale)
    with pytest.raises(ValueError, match="need field"):
        swarmop.on.update("service", new=1, registry=registry)


def test_patch_changes_only_its_fields() -> None:
    spec = {"Labels": {"a": "1"}, "Mode": {"Replicated": {"Replicas": 5}}, "Other": [1]}
    patch = Patch("service")
    patch.set_label("b", "2")
    patch.remove_label("a")
    patch.set_replicas(3)
    patch.apply(spec)
    assert spec == {"Labels": {"b": "2"}, "Mode": {"Replicated": {"Replicas": 3}}, "Other": [1]}
    with pytest.raises(TypeError):
        patch.set_availability("drain")


def test_every_handler_error_is_exported_and_documented() -> None:
    """Handlers raise these to steer the reactor: each is public API, so it is
    reachable as swarmop.<Name> and described in docs/api.md."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    defined = [
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, errors.HandlerError)
        and value is not errors.HandlerError
        and value.__module__ == errors.__name__
    ]
    assert "TemporaryError" in defined
    for name in defined:
        assert getattr(swarmop, name) is getattr(errors, name)
        assert name in swarmop.__all__
        assert f"swarmop.{name}(" in docs, name
