"""Consul KV access: reads, blocking queries with Consul's index rules, CAS writes.

py-consul 1.8.0 lets CONSUL_HTTP_TOKEN override a token given in code and
ignores CONSUL_CACERT; this client sets the resolved token explicitly on every
request (header only) and passes the CA file as the verify bundle.

The tree read behind the watchers goes straight through `requests`, not
py-consul, for two reasons:

- its read timeout must outlast the query's own wait. Consul answers a
  blocking query only after `wait` plus up to `wait/16` of jitter, so the
  timeout is `wait + wait/16 + BLOCKING_MARGIN`; every other call keeps the
  short timeout. (py-consul derives a blocking query's timeout from
  `connections_timeout` in a release-specific way: 1.8.0 adds the wait to it;
  used as is, 10 s would end every quiet 30 s query.) A black-holed query
  then fails after that long instead of hanging.
- `kv.get` hides the response headers, and `X-Consul-Results-Filtered-By-ACLs`
  says that keys were left out of the listing. An incomplete listing must not
  look like deleted keys, so such a read raises `ConsulResultsFiltered`.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import consul
import requests
from consul.exceptions import ACLPermissionDenied, BadRequest, ClientError, ConsulException

from swarmop.settings import ConsulSettings

logger = logging.getLogger("swarmop.consul")

DEFAULT_TIMEOUT = 10.0
"""Connecting, and answering any call that is not a blocking query."""
BLOCKING_MARGIN = 5.0
"""How long past a blocking query's wait and jitter its answer may still take."""
FILTERED_HEADER = "X-Consul-Results-Filtered-By-ACLs"


class ConsulUnavailable(RuntimeError):
    """Consul could not be reached or answered with a server error."""


class ConsulThrottled(ConsulUnavailable):
    """429 or 503: back off before the next request.

    Both get the same treatment, an exponential backoff: with a single agent
    to talk to there is no other server to retry a 429 on at once.
    """


class ConsulResultsFiltered(ConsulUnavailable):
    """Consul left keys out of a listing (ACLs): the listing is incomplete.

    Missing keys are not deleted keys: the caller keeps what it knew and reads
    again later, as when Consul is unreachable.
    """


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


def read_timeout(wait: float | None, short: float = DEFAULT_TIMEOUT) -> float:
    """How long to wait for an answer: `short`, or for a blocking query of `wait`
    seconds its wait plus Consul's jitter (up to wait/16) plus a margin."""
    if not wait or wait <= 0:
        return short
    return wait + wait / 16 + BLOCKING_MARGIN


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
        self._timeout = timeout
        self._base = settings.address.rstrip("/")
        self._http = requests.Session()
        self._http.verify = verify
        if settings.token:
            self._http.headers["X-Consul-Token"] = settings.token
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except ConsulException as error:
            text = str(error)
            if text.startswith(("429", "503")):
                raise ConsulThrottled(text[:200]) from None
            if isinstance(error, ClientError | BadRequest | ACLPermissionDenied):
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
        """All keys under `prefix`; with index >= 1 and wait, a blocking query.

        Raises ConsulResultsFiltered when ACLs left keys out of the answer.
        """
        params: dict[str, str] = {"recurse": "1"}
        sent = blocking_index(index)
        waited: float | None = None
        if sent is not None and wait:
            waited = float(max(1, int(wait)))
            params.update(index=str(sent), wait=f"{waited:.0f}s")
        url = f"{self._base}/v1/kv/{urllib.parse.quote(prefix, safe='/')}"
        try:
            response = self._http.get(
                url, params=params, timeout=(self._timeout, read_timeout(waited, self._timeout))
            )
        except requests.RequestException as error:
            raise ConsulUnavailable(f"GET /v1/kv/{prefix}: {error}") from None
        _raise_for_status(response)
        received = next_index(0, response.headers.get("X-Consul-Index"))
        if response.headers.get(FILTERED_HEADER, "").strip().lower() == "true":
            raise ConsulResultsFiltered(
                f"GET /v1/kv/{prefix}: ACLs left keys out of the answer (index {received})"
            )
        if response.status_code == 404:
            return received, {}
        try:
            items = response.json() or []
            entries = {
                str(item["Key"]): KVEntry(
                    str(item["Key"]),
                    None if item.get("Value") is None else _text(base64.b64decode(item["Value"])),
                    int(item.get("ModifyIndex", 0)),
                )
                for item in items
            }
        except (ValueError, TypeError, KeyError) as error:
            raise ConsulUnavailable(f"GET /v1/kv/{prefix}: unreadable answer: {error}") from None
        return received, entries

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


def _raise_for_status(response: requests.Response) -> None:
    """Map an HTTP error to the exceptions the py-consul calls raise here."""
    code = response.status_code
    if code in (200, 404):
        return
    text = f"{code} {response.text[:200].strip()}"
    if code in (429, 503):
        raise ConsulThrottled(text)
    if code == 403:
        raise ACLPermissionDenied(text)
    if 400 <= code < 500:
        raise ClientError(text)
    raise ConsulUnavailable(text)


__all__ = [
    "BLOCKING_MARGIN",
    "ConsulKV",
    "ConsulResultsFiltered",
    "ConsulThrottled",
    "ConsulUnavailable",
    "KVEntry",
    "TokenBucket",
    "blocking_index",
    "next_index",
    "read_timeout",
]
