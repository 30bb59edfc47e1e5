"""Publishing config to Consul (with a fake KV) and reading agent status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from swarmop.proxy import PublishResult, config_hash, proxy_keys, publish_config, read_agent_status
from swarmop.proxy.allowlist import InvalidProxyValue


class FakeKV:
    """Consul KV semantics that matter here: ModifyIndex and check-and-set."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[int, bytes]] = {}
        self.index = 10
        self.writes: list[str] = []

    def get(self, key: str, recurse: bool = False) -> tuple[int, Any]:
        if recurse:
            items = [
                {"Key": k, "Value": v, "ModifyIndex": i}
                for k, (i, v) in sorted(self.data.items())
                if k.startswith(key)
            ]
            return self.index, items or None
        if key not in self.data:
            return self.index, None
        index, value = self.data[key]
        return self.index, {"Key": key, "Value": value, "ModifyIndex": index}

    def put(self, key: str, value: str | bytes, cas: int | None = None) -> bool:
        current = self.data.get(key)
        if cas is not None and (current[0] if current else 0) != cas:
            return False
        self.index += 1
        self.data[key] = (self.index, value.encode() if isinstance(value, str) else value)
        self.writes.append(key)
        return True


class FakeConsul:
    def __init__(self) -> None:
        self.kv = FakeKV()


CONFIG = "server { listen 80; server_name a.local; }\n"


def test_first_publish_writes_config_and_hash() -> None:
    consul = FakeConsul()
    result = publish_config(consul, prefix="swarmop", proxy_service="nginx", config=CONFIG)
    assert result is PublishResult.PUBLISHED
    assert consul.kv.data["swarmop/proxy/nginx/config"][1] == CONFIG.encode()
    assert consul.kv.data["swarmop/proxy/nginx/config-hash"][1] == config_hash(CONFIG).encode()


def test_unchanged_config_is_not_written_again() -> None:
    consul = FakeConsul()
    publish_config(consul, prefix="swarmop", proxy_service="nginx", config=CONFIG)
    writes = list(consul.kv.writes)
    result = publish_config(consul, prefix="swarmop", proxy_service="nginx", config=CONFIG)
    assert result is PublishResult.UNCHANGED
    assert consul.kv.writes == writes


def test_concurrent_writer_makes_the_publish_a_conflict() -> None:
    consul = FakeConsul()
    publish_config(consul, prefix="swarmop", proxy_service="nginx", config=CONFIG)
    real_get = consul.kv.get

    def racing_get(key: str, recurse: bool = False) -> tuple[int, Any]:
        answer = real_get(key, recurse)
        consul.kv.put(key, b"someone else's config")
        return answer

    consul.kv.get = racing_get  # type: ignore[method-assign]
    result = publish_config(consul, prefix="swarmop", proxy_service="nginx", config=CONFIG + "#")
    assert result is PublishResult.CONFLICT
    assert consul.kv.data["swarmop/proxy/nginx/config"][1] == b"someone else's config"


def test_a_hostile_proxy_service_name_cannot_pick_the_key() -> None:
    with pytest.raises(InvalidProxyValue):
        proxy_keys("swarmop", "../services/web")


def test_mismatched_expected_hash_is_refused() -> None:
    with pytest.raises(ValueError, match="hash"):
        publish_config(
            FakeConsul(), prefix="swarmop", proxy_service="nginx", config=CONFIG, expected_hash="0"
        )


def test_agent_status_is_read_per_task_and_garbage_is_an_error() -> None:
    consul = FakeConsul()
    good = {"state": "ok", "hash": "h1", "live_hash": "h1", "time": "t", "message": ""}
    consul.kv.put("swarmop/proxy/nginx/status/node-2", json.dumps(good))
    consul.kv.put("swarmop/proxy/nginx/status/node-3", b"\xff not json")
    status = read_agent_status(consul, prefix="swarmop", proxy_service="nginx")
    assert status["node-2"].ok
    assert status["node-2"].live_hash == "h1"
    assert not status["node-3"].ok
    assert "unreadable" in status["node-3"].message


def test_no_status_yet_is_an_empty_mapping() -> None:
    assert read_agent_status(FakeConsul(), prefix="swarmop", proxy_service="nginx") == {}
