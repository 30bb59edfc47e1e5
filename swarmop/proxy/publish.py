"""Delivery: publish rendered config to Consul for the agent beside nginx.

Keys, under `<prefix>/proxy/<proxy-service>/`:
  config        the http-context config text (the agent watches this key)
  config-hash   its sha256 hex, for people and tools
  status/<host> the agent's JSON report per nginx task (see `AgentStatus`)

This module and `nginx_check` are the only ones in swarmop.proxy doing I/O.
The Consul client is py-consul's synchronous `consul.Consul`; call these from a
worker thread in async code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from swarmop.proxy.allowlist import check_name
from swarmop.proxy.render import config_hash


class PublishResult(StrEnum):
    PUBLISHED = "published"
    UNCHANGED = "unchanged"  # the key already holds this config: no write, no reload
    CONFLICT = "conflict"  # someone wrote the key since we read it; re-plan and retry


def proxy_keys(prefix: str, proxy_service: str) -> dict[str, str]:
    base = f"{prefix.strip('/')}/proxy/{check_name(proxy_service, 'proxy service')}"
    return {
        "config": f"{base}/config",
        "config-hash": f"{base}/config-hash",
        "status": f"{base}/status/",
    }


def publish_config(
    consul: Any, *, prefix: str, proxy_service: str, config: str, expected_hash: str | None = None
) -> PublishResult:
    """Write `config` (and its hash) unless the key already holds it.

    The config write is a check-and-set on the ModifyIndex just read (0 =
    create only), so a concurrent writer is never overwritten blindly.
    """
    digest = config_hash(config)
    if expected_hash is not None and expected_hash != digest:
        raise ValueError("expected_hash does not match the config text")
    keys = proxy_keys(prefix, proxy_service)
    _, item = consul.kv.get(keys["config"])
    current = None if item is None else (item.get("Value") or b"")
    if current is not None and config_hash(current.decode("utf-8", "replace")) == digest:
        _, hash_item = consul.kv.get(keys["config-hash"])
        if hash_item is None or (hash_item.get("Value") or b"").decode() != digest:
            consul.kv.put(keys["config-hash"], digest)
        return PublishResult.UNCHANGED
    modify_index = 0 if item is None else int(item["ModifyIndex"])
    if not consul.kv.put(keys["config"], config.encode("utf-8"), cas=modify_index):
        return PublishResult.CONFLICT
    consul.kv.put(keys["config-hash"], digest)
    return PublishResult.PUBLISHED


@dataclass(frozen=True)
class AgentStatus:
    """One nginx task's report (the JSON the agent writes; see docs/proxy.md).

    `state` is 'ok' or 'error'; `hash` the config it last tried; `live_hash`
    the config it serves; `message` nginx's output on error; `time` when it
    last reported (ISO 8601, UTC; the agent reports again at least every
    heartbeat while idle). `reload` is the last reload's result ('ok',
    'error', '' before the first) at `reload_time`; `changed_time` is when the
    live config last changed, and `added`/`removed`/`changed` are the server
    names that change added, removed or altered.
    """

    task_host: str
    state: str
    hash: str
    live_hash: str
    time: str
    message: str
    reload: str = ""
    reload_time: str = ""
    changed_time: str = ""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value if isinstance(item, str | int))


def parse_agent_status(task_host: str, raw: bytes | str) -> AgentStatus:
    """Tolerant: anything unreadable becomes an 'error' status saying so."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("not an object")
    except (ValueError, TypeError) as error:
        return AgentStatus(task_host, "error", "", "", "", f"unreadable status: {error}")
    return AgentStatus(
        task_host=task_host,
        state=str(data.get("state", "error")),
        hash=str(data.get("hash", "")),
        live_hash=str(data.get("live_hash", "")),
        time=str(data.get("time", "")),
        message=str(data.get("message", "")),
        reload=str(data.get("reload", "")),
        reload_time=str(data.get("reload_time", "")),
        changed_time=str(data.get("changed_time", "")),
        added=_names(data.get("added")),
        removed=_names(data.get("removed")),
        changed=_names(data.get("changed")),
    )


def read_agent_status(consul: Any, *, prefix: str, proxy_service: str) -> dict[str, AgentStatus]:
    """Every nginx task's last report, by task host name."""
    base = proxy_keys(prefix, proxy_service)["status"]
    _, items = consul.kv.get(base, recurse=True)
    found: dict[str, AgentStatus] = {}
    for item in items or []:
        host = str(item["Key"])[len(base) :]
        if host:
            found[host] = parse_agent_status(host, item.get("Value") or b"")
    return found
