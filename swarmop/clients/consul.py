"""Consul KV access: reads, blocking queries with Consul's index rules, CAS writes.

py-consul 1.8.0 lets CONSUL_HTTP_TOKEN override a token given in code and
ignores CONSUL_CACERT; this client sets the resolved token explicitly on every
request (header only) and passes the CA file as the verify bundle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import consul
import consul.base

from swarmop.settings import ConsulSettings

logger = logging.getLogger("swarmop.consul")

DEFAULT_TIMEOUT = 10.0


class ConsulUnavailable(RuntimeError):
    """Consul could not be reached or answered with a server error."""


class ConsulThrottled(ConsulUnavailable):
    """429 or 503: back off before the next request."""


def next_index(previous: int, received: Any) -> int:
    """Consul's blocking-query index rules.

    The header arrives as a string: compare as integers (``"10" > "9"``). If it
    goes backwards (snapshot restore, deleted highest key) start over from 0 so
    the next read returns at once; never send an index below 1.
    """
    try:
        value = int(received)
    except (TypeError, ValueError):
        return 0
    if value < previous or value <= 0:
        return 0
    return value


def blocking_index(index: int) -> int | None:
    """The index to send: None (a plain read) for 0, else at least 1."""
    return None if index <= 0 else max(index, 1)


class TokenBucket:
    """Rate limit for watch loops: `rate` tokens/s, up to `burst` saved."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def delay(self) -> float:
        """Take a token; returns how long to wait before using it (0 when available)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate


@dataclass(frozen=True)
class KVEntry:
    key: str
    value: str | None
    modify_index: int


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class ConsulKV:
    def __init__(self, settings: ConsulSettings, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.settings = settings
        verify: bool | str = settings.cacert if settings.cacert else settings.verify
        self._client = consul.Consul(
            host=settings.host,
            port=settings.port,
            scheme=settings.scheme,
            verify=verify,
            token=None,
            connections_timeout=timeout,
        )
        # Overrides whatever py-consul took from the environment.
        self._client.token = settings.token
        self._token = settings.token
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except consul.base.ConsulException as error:
            text = str(error)
            if text.startswith(("429", "503")):
                raise ConsulThrottled(text[:200]) from None
            if isinstance(error, consul.base.ClientError | consul.base.BadRequest):
                raise
            if isinstance(error, consul.base.ACLPermissionDenied):
                raise
            raise ConsulUnavailable(text[:200]) from None
        except OSError as error:
            raise ConsulUnavailable(str(error)) from None
        except Exception as error:
            # requests' ConnectionError/Timeout are OSErrors; anything else from the
            # transport is reported the same way rather than crashing a watcher.
            if type(error).__module__.startswith(("requests", "urllib3")):
                raise ConsulUnavailable(str(error)) from None
            raise

    def ping(self) -> bool:
        self._call(self._client.status.leader)
        return True

    def get(self, key: str) -> KVEntry | None:
        _index, item = self._call(lambda: self._client.kv.get(key, token=self._token))
        if not item:
            return None
        return KVEntry(key, _text(item.get("Value")), int(item.get("ModifyIndex", 0)))

    def get_tree(
        self, prefix: str, *, index: int = 0, wait: float | None = None
    ) -> tuple[int, dict[str, KVEntry]]:
        """All keys under `prefix`; with index >= 1 and wait, a blocking query."""
        sent = blocking_index(index)
        wait_text = f"{max(1, int(wait))}s" if wait and sent else None
        raw_index, items = self._call(
            lambda: self._client.kv.get(
                prefix, index=sent, wait=wait_text, recurse=True, token=self._token
            )
        )
        entries = {
            str(item["Key"]): KVEntry(
                str(item["Key"]), _text(item.get("Value")), int(item.get("ModifyIndex", 0))
            )
            for item in items or []
        }
        return next_index(0, raw_index), entries

    def put(self, key: str, value: str | bytes, *, cas: int | None = None) -> bool:
        """Write; with cas=N only if the key's ModifyIndex is N (0: only if absent).
        Consul answers a lost CAS with HTTP 200 and body false: that is returned."""
        return bool(self._call(lambda: self._client.kv.put(key, value, cas=cas, token=self._token)))

    def delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        return bool(
            self._call(
                lambda: self._client.kv.delete(key, recurse=recurse, cas=cas, token=self._token)
            )
        )


__all__ = [
    "ConsulKV",
    "ConsulThrottled",
    "ConsulUnavailable",
    "KVEntry",
    "TokenBucket",
    "blocking_index",
    "next_index",
]
