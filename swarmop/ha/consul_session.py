"""Consul sessions, the lock key, blocking reads and KV transactions, over plain HTTP.

py-consul's `txn.put` sends no ACL token, so these calls use one requests
session with the resolved token in the `X-Consul-Token` header (never in a URL)
and the CA file as the verify bundle, like `swarmop.clients.consul`.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import Any

import requests

from swarmop.clients.consul import ConsulThrottled, ConsulUnavailable, blocking_index, next_index
from swarmop.settings import ConsulSettings

logger = logging.getLogger("swarmop.ha.consul")

REQUEST_TIMEOUT = 5.0


class TxnRolledBack(RuntimeError):
    """A transaction was refused as a whole; `errors` are Consul's (op index, message)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(f"op {index}: {what}" for index, what in errors))
        self.errors = errors


@dataclass(frozen=True)
class LockEntry:
    """The lock key as Consul has it: who holds it (session) and how often it was taken."""

    session: str | None
    lock_index: int
    modify_index: int
    value: bytes


def _seconds(value: float) -> str:
    return f"{max(0, round(value))}s"


def _encode(value: str | bytes) -> str:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


class ConsulSessions:
    def __init__(self, settings: ConsulSettings, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self._base = settings.address.rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()
        self._http.verify = settings.cacert if settings.cacert else settings.verify
        if settings.token:
            self._http.headers["X-Consul-Token"] = settings.token

    def close(self) -> None:
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> requests.Response:
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        try:
            response = self._http.request(
                method,
                f"{self._base}/v1/{path}",
                params=params,
                data=data,
                timeout=timeout or self._timeout,
            )
        except requests.RequestException as error:
            raise ConsulUnavailable(
                f"{method} /v1/{path.split('/', maxsplit=1)[0]}: {error}"
            ) from None
        if response.status_code in ok:
            return response
        text = response.text[:200].strip()
        if response.status_code in (429, 503):
            raise ConsulThrottled(f"{response.status_code} {text}")
        raise ConsulUnavailable(f"{method} /v1/{path}: HTTP {response.status_code} {text}")

    # --- sessions -----------------------------------------------------

    def create(self, name: str, *, ttl: float, lock_delay: float) -> str:
        """A TTL-only session (no health checks: only the TTL ends it) that deletes
        the keys it holds when it ends."""
        response = self._request(
            "PUT",
            "session/create",
            body={
                "Name": name,
                "TTL": _seconds(ttl),
                "LockDelay": _seconds(lock_delay),
                "Behavior": "delete",
                "Checks": [],
                "NodeChecks": [],
            },
        )
        session = response.json().get("ID")
        if not isinstance(session, str) or not session:
            raise ConsulUnavailable("session/create: no session ID in the answer")
        return session

    def renew(self, session: str) -> bool:
        """False when the session no longer exists (expired or destroyed)."""
        response = self._request(
            "PUT", f"session/renew/{session}", ok=(200, 404), timeout=self._timeout
        )
        if response.status_code == 404:
            return False
        try:
            return bool(response.json())
        except ValueError:
            return False

    def destroy(self, session: str) -> None:
        self._request("PUT", f"session/destroy/{session}")

    def info(self, session: str) -> dict[str, Any] | None:
        response = self._request("GET", f"session/info/{session}")
        items = response.json() or []
        return dict(items[0]) if items else None

    # --- the lock key -------------------------------------------------

    def acquire(self, key: str, session: str, value: str | bytes) -> bool:
        """Take the lock (or refresh its value when this session holds it already)."""
        raw = value.encode("utf-8") if isinstance(value, str) else value
        response = self._request("PUT", f"kv/{key}", params={"acquire": session}, body=raw)
        return response.text.strip() == "true"

    def release(self, key: str, session: str) -> bool:
        """Give the lock up. Unlike an ended session, a release starts no lock-delay."""
        response = self._request("PUT", f"kv/{key}", params={"release": session}, body=b"")
        return response.text.strip() == "true"

    def read(self, key: str, *, index: int = 0, wait: float = 0) -> tuple[int, LockEntry | None]:
        """The key, and Consul's index; with index >= 1 and wait, a blocking read."""
        params: dict[str, str] = {}
        sent = blocking_index(index)
        timeout = self._timeout
        if sent is not None and wait > 0:
            params = {"index": str(sent), "wait": _seconds(wait)}
            # Consul adds up to wait/16 of jitter; a black-holed query must not hang.
            timeout = wait + wait / 16 + self._timeout
        response = self._request("GET", f"kv/{key}", params=params, timeout=timeout, ok=(200, 404))
        received = next_index(0, response.headers.get("X-Consul-Index"))
        if response.status_code == 404:
            return received, None
        items = response.json() or []
        if not items:
            return received, None
        item = items[0]
        value = base64.b64decode(item.get("Value") or "")
        return received, LockEntry(
            session=item.get("Session") or None,
            lock_index=int(item.get("LockIndex", 0)),
            modify_index=int(item.get("ModifyIndex", 0)),
            value=value,
        )

    # --- transactions -------------------------------------------------

    def txn(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run KV operations atomically; raises TxnRolledBack when any check failed."""
        response = self._request("PUT", "txn", body=ops, ok=(200, 409))
        data = response.json() or {}
        if response.status_code == 409:
            errors = [
                (int(error.get("OpIndex", -1)), str(error.get("What", "")))
                for error in data.get("Errors") or []
            ]
            raise TxnRolledBack(errors)
        return list(data.get("Results") or [])

    @staticmethod
    def check_session_op(key: str, session: str) -> dict[str, Any]:
        return {"KV": {"Verb": "check-session", "Key": key, "Session": session}}

    @staticmethod
    def set_op(key: str, value: str | bytes, cas: int | None = None) -> dict[str, Any]:
        if cas is None:
            return {"KV": {"Verb": "set", "Key": key, "Value": _encode(value)}}
        return {"KV": {"Verb": "cas", "Key": key, "Value": _encode(value), "Index": cas}}

    @staticmethod
    def delete_op(key: str, *, recurse: bool = False, cas: int | None = None) -> dict[str, Any]:
        if recurse:
            return {"KV": {"Verb": "delete-tree", "Key": key}}
        if cas is not None:
            return {"KV": {"Verb": "delete-cas", "Key": key, "Index": cas}}
        return {"KV": {"Verb": "delete", "Key": key}}
