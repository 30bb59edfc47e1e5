"""ConsulKV against a scripted HTTP server on loopback: the tree read's timeout,
index, error mapping and ACL-filtered answers (R16-R19 at the client's level)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from consul.exceptions import ACLPermissionDenied

import swarmop.clients.consul as consul_module
from swarmop.clients.consul import (
    BLOCKING_MARGIN,
    DEFAULT_TIMEOUT,
    ConsulKV,
    ConsulResultsFiltered,
    ConsulThrottled,
    ConsulUnavailable,
    read_timeout,
)
from swarmop.settings import resolve_consul

TOKEN = "unit-secret-token"


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    black_hole: bool = False
    """Read the request, never answer (until the server stops)."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class ScriptedConsul:
    """Answers every request with `answer(request)`; records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.answer: Callable[[Request], Answer] = lambda _request: Answer(body=[])
        self.released = threading.Event()
        scripted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                url = urllib.parse.urlsplit(self.path)
                request = Request(
                    self.command,
                    url.path,
                    dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                )
                scripted.requests.append(request)
                answer = scripted.answer(request)
                if answer.black_hole:
                    scripted.released.wait()
                    self.close_connection = True
                    return
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_DELETE = _serve

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[ScriptedConsul]:
    server = ScriptedConsul()
    yield server
    server.close()


@pytest.fixture
def kv(scripted: ScriptedConsul) -> ConsulKV:
    settings = resolve_consul(addr=f"127.0.0.1:{scripted.port}", token=TOKEN, env={})
    assert settings is not None
    return ConsulKV(settings)


def entry(key: str, value: str | None, modify_index: int) -> dict[str, Any]:
    encoded = None if value is None else base64.b64encode(value.encode()).decode()
    return {"Key": key, "Value": encoded, "ModifyIndex": modify_index, "Flags": 0}


class TimeoutSpy:
    """Records the timeout of every request sent through `requests`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        original = requests.Session.request

        def request(session: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
            self.calls.append((method, url, kwargs.get("timeout")))
            return original(session, method, url, **kwargs)

        monkeypatch.setattr(requests.Session, "request", request)


def test_read_timeout_outlasts_the_wait_and_its_jitter() -> None:
    assert read_timeout(None) == DEFAULT_TIMEOUT
    assert read_timeout(0) == DEFAULT_TIMEOUT
    assert read_timeout(None, short=3.0) == 3.0
    assert read_timeout(30) == 30 + 30 / 16 + BLOCKING_MARGIN
    assert read_timeout(16, short=1.0) == 16 + 1 + BLOCKING_MARGIN


def test_blocking_tree_read_gets_the_long_read_timeout_and_other_calls_the_short_one(
    scripted: ScriptedConsul, kv: ConsulKV, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = TimeoutSpy(monkeypatch)
    scripted.answer = lambda _request: Answer(body=[], headers={"X-Consul-Index": "7"})

    kv.get_tree("p/services/", index=7, wait=30.0)
    kv.get_tree("p/services/")
    kv.get_tree("p/services/", index=7)  # an index without a wait is not a blocking query
    kv.get("p/services/web/replicas")
    kv.put("p/services/web/replicas", "3")

    timeouts = [timeout for _method, _url, timeout in spy.calls]
    assert timeouts[0] == (DEFAULT_TIMEOUT, 30 + 30 / 16 + BLOCKING_MARGIN)
    assert timeouts[1] == (DEFAULT_TIMEOUT, DEFAULT_TIMEOUT)
    assert timeouts[2] == (DEFAULT_TIMEOUT, DEFAULT_TIMEOUT)
    assert timeouts[3:] == [DEFAULT_TIMEOUT, DEFAULT_TIMEOUT]  # py-consul's own calls
    assert [r.query.get("wait") for r in scripted.requests[:3]] == ["30s", None, None]


def test_index_zero_is_a_plain_read_and_a_header_index_is_parsed_as_an_integer(
    scripted: ScriptedConsul, kv: ConsulKV
) -> None:
    scripted.answer = lambda _request: Answer(body=[], headers={"X-Consul-Index": "10"})
    received, _ = kv.get_tree("p/services/", index=0, wait=30.0)
    assert received == 10
    kv.get_tree("p/services/", index=received, wait=30.0)
    scripted.answer = lambda _request: Answer(body=[], headers={"X-Consul-Index": "0"})
    assert kv.get_tree("p/services/", index=9, wait=30.0)[0] == 0

    plain, blocking, _third = scripted.requests
    assert "index" not in plain.query and "wait" not in plain.query
    assert plain.query["recurse"] == "1"
    assert blocking.query["index"] == "10" and blocking.query["wait"] == "30s"
    assert all(r.query.get("index") != "0" for r in scripted.requests)


def test_tree_values_are_decoded_and_the_token_travels_in_a_header_only(
    scripted: ScriptedConsul, kv: ConsulKV
) -> None:
    scripted.answer = lambda _request: Answer(
        body=[
            entry("p/services/web/replicas", "3", 11),
            entry("p/services/web/empty", None, 12),
        ],
        headers={"X-Consul-Index": "12"},
    )
    received, entries = kv.get_tree("p/services/")
    assert received == 12
    assert entries["p/services/web/replicas"].value == "3"
    assert entries["p/services/web/replicas"].modify_index == 11
    assert entries["p/services/web/empty"].value is None
    (request,) = scripted.requests
    assert request.path == "/v1/kv/p/services/"
    assert request.headers["x-consul-token"] == TOKEN
    assert TOKEN not in json.dumps(request.query)


def test_missing_prefix_is_an_empty_tree(scripted: ScriptedConsul, kv: ConsulKV) -> None:
    scripted.answer = lambda _request: Answer(status=404, headers={"X-Consul-Index": "5"})
    assert kv.get_tree("p/nodes/") == (5, {})


@pytest.mark.parametrize("filtered_status", [200, 404])
def test_an_acl_filtered_listing_raises_instead_of_looking_like_deleted_keys(
    scripted: ScriptedConsul, kv: ConsulKV, filtered_status: int
) -> None:
    """R19: hidden keys are not deleted keys; Consul may answer 404 when it hid them all."""
    scripted.answer = lambda _request: Answer(
        status=filtered_status,
        body=[entry("p/services/web/colour", "blue", 3)] if filtered_status == 200 else None,
        headers={"X-Consul-Index": "8", "X-Consul-Results-Filtered-By-ACLs": "true"},
    )
    with pytest.raises(ConsulResultsFiltered, match="ACLs left keys out"):
        kv.get_tree("p/services/", index=4, wait=30.0)
    # The watcher's error path keeps its last known keys for any ConsulUnavailable.
    assert issubclass(ConsulResultsFiltered, ConsulUnavailable)
    assert not issubclass(ConsulResultsFiltered, ConsulThrottled)


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limit_answers_are_throttled(
    scripted: ScriptedConsul, kv: ConsulKV, status: int
) -> None:
    scripted.answer = lambda _request: Answer(status=status, body="slow down")
    with pytest.raises(ConsulThrottled, match=str(status)):
        kv.get_tree("p/services/", index=4, wait=30.0)
    with pytest.raises(ConsulThrottled, match=str(status)):
        kv.put("p/services/web/replicas", "3")


def test_server_errors_and_denials_keep_their_meaning(
    scripted: ScriptedConsul, kv: ConsulKV
) -> None:
    scripted.answer = lambda _request: Answer(status=500, body="boom")
    for call in (
        lambda: kv.get_tree("p/services/"),
        lambda: kv.put("p/services/web/replicas", "3"),
        lambda: kv.get("p/services/web/replicas"),
    ):
        with pytest.raises(ConsulUnavailable) as caught:
            call()
        assert not isinstance(caught.value, ConsulThrottled)
    scripted.answer = lambda _request: Answer(status=403, body="Permission denied")
    with pytest.raises(ACLPermissionDenied):
        kv.get_tree("p/services/")
    with pytest.raises(ACLPermissionDenied):
        kv.put("p/services/web/replicas", "3")


def test_a_black_holed_blocking_read_fails_instead_of_hanging(
    scripted: ScriptedConsul, kv: ConsulKV, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R17: the server reads the query and never answers; the read timeout ends it."""
    monkeypatch.setattr(consul_module, "BLOCKING_MARGIN", 0.2)
    scripted.answer = lambda _request: Answer(black_hole=True)
    with pytest.raises(ConsulUnavailable, match="timed out"):
        kv.get_tree("p/services/", index=4, wait=1.0)
    (request,) = scripted.requests
    assert request.query["wait"] == "1s"


def test_an_unreachable_agent_is_unavailable() -> None:
    settings = resolve_consul(addr="127.0.0.1:1", env={})
    assert settings is not None
    with pytest.raises(ConsulUnavailable):
        ConsulKV(settings).get_tree("p/services/")
