"""The operator's own Consul client against real Consul behind a fault proxy.

R16 index 0 and churn, R17 a black-holed blocking query, R18 429 and 503,
R19 an ACL-filtered listing, and R24 an HA leader that can reach Docker but
not Consul. The proxy (`consul_fault_proxy.py`) runs on loopback in front of
the sandbox's Consul agent; only the operator under test talks through it.
Figures (request rates, timeouts, the lease gap) are printed: run with -s.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import consul
import docker
import pytest
import swarmop.handlers  # registers the built-in handlers on the default registry
from consul_fault_proxy import BLACK_HOLE, Fault, FaultProxy, HideKeys, Reply, Seen
from ha_operators import (
    SETTINGS,
    TAKEOVER_BOUND,
    Operators,
    assert_no_overlap,
    labels_of,
    operators,
)

import swarmop
from swarmop.clients.consul import read_timeout
from swarmop.clients.swarm_write import update_service
from swarmop.registry import Registry, default_registry
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique, wait_until
from swarmop.settings import Settings, resolve_consul, resolve_docker
from swarmop.testing import OperatorRunner

__all__ = ["operators"]  # a fixture: used by name, not by reference

pytestmark = pytest.mark.cluster

SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
BURST = 2
"""The burst of watch_consul's token bucket."""
assert swarmop.handlers.services  # imported for its registrations


@pytest.fixture
def proxy(sandbox: SandboxInfo) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(sandbox.consul_http_addr)
    yield fault_proxy
    fault_proxy.close()


def settings_via(sandbox: SandboxInfo, proxy: FaultProxy, prefix: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "docker": resolve_docker(host=sandbox.manager_docker_host, env={}),
        "consul": resolve_consul(addr=proxy.address, env={}),
        "prefix": prefix,
        "resync_interval": 600.0,  # only the watches bring Consul keys in
    }
    values.update(extra)
    return Settings(**values)


def watch_path(prefix: str, collection: str = "services") -> str:
    return f"/v1/kv/{prefix}/{collection}/"


def set_label(api: docker.APIClient, service_id: str, name: str, value: str) -> None:
    update_service(
        api, service_id, lambda spec: spec.setdefault("Labels", {}).__setitem__(name, value)
    )


def replicas_of(api: docker.APIClient, service_id: str) -> int:
    return int(api.inspect_service(service_id)["Spec"]["Mode"]["Replicated"]["Replicas"])


class DesiredReplicas:
    """A registry whose one handler records each service's desired replicas and source."""

    def __init__(self, marker: str) -> None:
        self.registry = Registry()
        self.lock = threading.Lock()
        self.values: dict[str, tuple[Any, str | None]] = {}

        @swarmop.on.field(
            "service", field="desired.replicas", labels={"test": marker}, registry=self.registry
        )
        def replicas(name: str, new: Any, desired: Any, **_: Any) -> None:
            entry = desired.get("replicas")
            with self.lock:
                self.values[name] = (new, entry.source.value if entry else None)

    def wait(self, name: str, value: int, source: str, timeout: float = 60) -> None:
        wait_until(
            lambda: self.values.get(name) == (value, source),
            timeout=timeout,
            what=f"{name}: desired replicas {value} from {source} handled (have {self.values})",
        )


def test_index_zero_and_churn_never_send_index_zero_and_stay_within_the_token_bucket(
    *,
    sandbox: SandboxInfo,
    proxy: FaultProxy,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
) -> None:
    """R16: the proxy answers X-Consul-Index 0 while a key under the prefix changes
    about 50 times a second; then the real index, under the same churn."""
    watched = {watch_path(prefix, "services"), watch_path(prefix, "nodes")}
    zero = threading.Event()
    zero.set()
    proxy.rewrite_index = lambda path, index: 0 if zero.is_set() and path in watched else index
    marker = unique("m")
    handled = DesiredReplicas(marker)
    name = unique("churn")
    tracker.create_service(name, command=SLEEPER, replicas=0, labels={"test": marker})
    churn_key = f"{prefix}/services/{unique('noisy')}/replicas"

    def churn(seconds: float) -> int:
        writes = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            consul_client.kv.put(churn_key, str(writes))
            writes += 1
            time.sleep(0.02)
        return writes

    settings = settings_via(sandbox, proxy, prefix, consul_watch_rate=2.0)
    with OperatorRunner(settings, registry=handled.registry) as runner:
        ctx = runner.operator.context  # type: ignore[union-attr]
        assert ctx is not None
        rate = ctx.settings.consul_watch_rate
        zero_writes = churn(4.0)
        zero_phase_end = time.monotonic()
        zero.clear()
        real_writes = churn(4.0)
        consul_client.kv.put(f"{prefix}/services/{name}/replicas", "3")
        handled.wait(name, 3, "consul")
        assert runner.exception is None

    for path in sorted(watched):
        reads = proxy.requests_to(path)
        sent = [int(r.query["index"]) for r in reads if "index" in r.query]
        span = reads[-1].at - reads[0].at
        # A token bucket lets at most `burst + rate * span` requests through in any
        # window of `span` seconds; +1 for the moment between taking a token and the
        # request's arrival here.
        bound = BURST + rate * span + 1
        print(
            f"{path}: {len(reads)} requests in {span:.1f}s (bucket bound {bound:.1f}, "
            f"{zero_writes + real_writes} key writes), {len(sent)} with an index"
        )
        assert reads, f"no watch request on {path}"
        assert all(index >= 1 for index in sent), sent
        assert len(reads) <= bound
        zero_answered = [r for r in reads if r.at < zero_phase_end and r.index_out == 0]
        assert zero_answered, "no answer with index 0 reached the operator"
        after_zero = reads[reads.index(zero_answered[0]) + 1 :]
        # Until the proxy stops saying 0, each next read is a plain read.
        for read in after_zero:
            if read.at >= zero_phase_end:
                break
            assert "index" not in read.query, read.request_line
    services_reads = proxy.requests_to(watch_path(prefix, "services"))
    assert any("index" in r.query for r in services_reads if r.at > zero_phase_end), (
        "the watch never blocked again once the real index came back"
    )


def test_black_holed_blocking_query_times_out_and_the_watch_resumes(
    *,
    sandbox: SandboxInfo,
    proxy: FaultProxy,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
) -> None:
    """R17: the proxy reads the blocking query and never answers. The operator's
    read gives up after about wait + wait/16 + margin and the watch carries on."""
    path = watch_path(prefix)
    healed = threading.Event()

    def fault(seen: Seen) -> Fault | None:
        if not healed.is_set() and seen.path == path and "index" in seen.query:
            return BLACK_HOLE
        return None

    proxy.fault = fault
    marker = unique("m")
    handled = DesiredReplicas(marker)
    name = unique("hole")
    tracker.create_service(
        name, command=SLEEPER, replicas=0, labels={"test": marker, "swarmop.replicas": "0"}
    )
    key = f"{prefix}/services/{name}/replicas"
    with OperatorRunner(settings_via(sandbox, proxy, prefix), registry=handled.registry) as runner:
        handled.wait(name, 0, "label")
        hole: Seen = wait_until(
            lambda: next((s for s in proxy.requests_to(path) if s.fault == "black-hole"), None),
            what="a blocking query to be black-holed",
        )
        wait = float(hole.query["wait"].rstrip("s"))
        # Heal at once: the query already held stays unanswered, like a dead connection.
        healed.set()
        consul_client.kv.put(key, "1")  # changed while the watch hangs
        wait_until(
            lambda: hole.closed_at is not None,
            timeout=read_timeout(wait) + 15,
            what="the operator to give up on the black-holed query",
        )
        assert hole.closed_at is not None
        gave_up_after = hole.closed_at - hole.at
        print(
            f"black-holed query (wait {wait:.0f}s) abandoned after {gave_up_after:.1f}s; "
            f"read timeout {read_timeout(wait):.1f}s"
        )
        # Not before Consul itself could have answered: a timeout shorter than the
        # wait would break every quiet watch.
        assert gave_up_after >= wait
        handled.wait(name, 1, "consul", timeout=30)  # the change made during the hang
        consul_client.kv.put(key, "2")  # and one made after the watch resumed
        handled.wait(name, 2, "consul", timeout=30)
        resumed = [s for s in proxy.requests_to(path) if s.at > hole.closed_at]
        assert any(int(s.query.get("index", "0")) >= 1 for s in resumed)
        assert runner.exception is None


def test_rate_limited_answers_back_off_and_the_watch_recovers(
    *,
    sandbox: SandboxInfo,
    proxy: FaultProxy,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
) -> None:
    """R18: two 429s, then two 503s, on the blocking query. Both are backed off
    exponentially (with one agent there is no other server to try at once); the
    watch keeps its index and picks up a later change."""
    path = watch_path(prefix)
    armed = threading.Event()
    answers = iter([429, 429, 503, 503])
    lock = threading.Lock()

    def fault(seen: Seen) -> Fault | None:
        if not armed.is_set() or seen.path != path or "index" not in seen.query:
            return None
        with lock:
            status = next(answers, None)
        return None if status is None else Reply(status, b"rate limit exceeded")

    proxy.fault = fault
    marker = unique("m")
    handled = DesiredReplicas(marker)
    name = unique("throttle")
    tracker.create_service(
        name, command=SLEEPER, replicas=0, labels={"test": marker, "swarmop.replicas": "0"}
    )
    with OperatorRunner(settings_via(sandbox, proxy, prefix), registry=handled.registry) as runner:
        handled.wait(name, 0, "label")
        armed.set()
        # Wake the blocking query forwarded before arming.
        consul_client.kv.put(f"{prefix}/services/{unique('wake')}/replicas", "1")

        def throttled_then_through() -> list[Seen] | None:
            reads = proxy.requests_to(path)
            faulted = [i for i, s in enumerate(reads) if s.fault]
            if len(faulted) < 4 or len(reads) <= faulted[-1] + 1:
                return None
            return reads[faulted[0] : faulted[-1] + 2]

        window = wait_until(
            throttled_then_through, timeout=60, what="4 throttled answers, then a read through"
        )
        assert [s.status for s in window[:4]] == [429, 429, 503, 503]
        assert window[4].fault is None  # forwarded to Consul
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(window)]
        print("gaps after 429, 429, 503, 503:", ", ".join(f"{gap:.2f}s" for gap in gaps))
        # Exponential backoff: each retry waits longer than the one before, and far
        # longer than the token bucket alone would make it.
        assert all(later > earlier for earlier, later in itertools.pairwise(gaps)), gaps
        assert min(gaps) > 1 / runner.operator.context.settings.consul_watch_rate  # type: ignore[union-attr]
        # Throttling is not an outage: the retries stay blocking queries on the same index.
        assert len({s.query.get("index") for s in window}) == 1
        assert int(window[0].query["index"]) >= 1
        consul_client.kv.put(f"{prefix}/services/{name}/replicas", "2")
        handled.wait(name, 2, "consul", timeout=60)
        assert runner.exception is None


def test_acl_filtered_listing_does_not_drop_the_keys_it_hides(
    *,
    sandbox: SandboxInfo,
    proxy: FaultProxy,
    docker_api: docker.APIClient,
    consul_client: consul.Consul,
    tracker: Tracker,
    prefix: str,
) -> None:
    """R19: the proxy hides a service's `replicas` key and says the answer was
    filtered by ACLs. The built-in handlers keep the Consul value; they do not
    fall back to the label."""
    path = watch_path(prefix)
    name = unique("acl")
    key = f"{prefix}/services/{name}/replicas"
    consul_client.kv.put(key, "2")
    service_id = tracker.create_service(
        name, command=SLEEPER, replicas=1, labels={"swarmop.replicas": "1"}
    )
    with OperatorRunner(settings_via(sandbox, proxy, prefix), registry=default_registry) as runner:
        wait_until(lambda: replicas_of(docker_api, service_id) == 2, what="the Consul key applied")
        proxy.fault = lambda seen: HideKeys(frozenset({key})) if seen.path == path else None
        # Another key under the prefix changes: the blocking query answers, filtered.
        consul_client.kv.put(f"{prefix}/services/{unique('other')}/replicas", "1")

        def read_after_a_filtered_answer() -> bool:
            # The watch asking again means it has dealt with the filtered answer.
            reads = proxy.requests_to(path)
            filtered = [i for i, s in enumerate(reads) if s.fault == "hide-keys"]
            return bool(filtered) and len(reads) > filtered[0] + 1

        wait_until(
            read_after_a_filtered_answer, timeout=60, what="the watch past a filtered answer"
        )
        # A reconcile while Consul's answers are incomplete: the label now says 3.
        changed_at = time.time()
        set_label(docker_api, service_id, "swarmop.replicas", "3")

        def reconciled() -> Any:
            status = runner.board.get(("service", name))
            ran = status is not None and status.last_run and status.last_run > changed_at
            return status if ran else None

        status = wait_until(reconciled, timeout=60, what="the service reconciled after the label")
        assert status.desired["replicas"].value == 2
        assert status.desired["replicas"].source == "consul"
        assert replicas_of(docker_api, service_id) == 2
        assert "ACLs" in (runner.board.info.consul_error or ""), runner.board.info
        # Healed: the watch reads everything again and follows a later change.
        proxy.fault = lambda _seen: None
        wait_until(
            lambda: runner.board.info.consul_error is None,
            timeout=60,
            what="the watch reading complete answers again",
        )
        consul_client.kv.put(key, "1")
        wait_until(
            lambda: replicas_of(docker_api, service_id) == 1,
            what="a later Consul change applied",
        )
        assert runner.exception is None


def lease_renewals(proxy: FaultProxy) -> list[Seen]:
    """Session creates and renews that Consul accepted, as seen by the proxy."""
    return [
        s
        for s in proxy.snapshot()
        if s.method == "PUT"
        and s.status == 200
        and (s.path == "/v1/session/create" or s.path.startswith("/v1/session/renew/"))
    ]


def test_leader_cut_off_from_consul_stops_writing_before_its_lease_ends(
    operators: Operators,
    proxy: FaultProxy,
    tracker: Tracker,
    docker_api: docker.APIClient,
) -> None:
    """R24: the leader still reaches Docker, but its Consul requests are black-holed.
    It must stop writing by its lease deadline (last accepted renew + TTL - margin,
    below the TTL) and demote; the instance that reaches Consul leads."""
    cut = operators.start("inst-cut", extra_env={"CONSUL_HTTP_ADDR": proxy.address})
    assert operators.wait_leader(wait_until, timeout=30) == cut.instance
    operators.start("inst-direct")
    service = tracker.create_service(
        labels={"hatest": operators.run_id, "hatest.tick": "on"}, command=["sleep", "1d"]
    )
    wait_until(
        lambda: int(labels_of(docker_api, service).get("hatest.ticks", "0")) >= 3,
        what="the leader's timer to write",
    )
    proxy.fault = lambda _seen: BLACK_HOLE
    cut_at = time.time()
    second = operators.wait_leader(wait_until, timeout=TAKEOVER_BOUND, other_than=cut.instance)
    took = time.time() - cut_at
    wait_until(
        lambda: "no longer the leader" in cut.log.read_text(errors="replace"),
        timeout=SETTINGS.ttl,
        what="the cut-off instance to demote itself",
    )
    ticks = int(labels_of(docker_api, service).get("hatest.ticks", "0"))
    wait_until(
        lambda: int(labels_of(docker_api, service).get("hatest.ticks", "0")) >= ticks + 3,
        what="the new leader's timer to write",
    )
    # The lease starts right before a renew is sent, so it ends no later than the
    # last accepted renew's arrival here + TTL - margin (the same host's clock).
    accepted = [s for s in lease_renewals(proxy) if s.wall < cut_at]
    deadline = max(s.wall for s in accepted) + SETTINGS.ttl - SETTINGS.margin
    allowed = [w for w in cut.writes() if w.allowed and w.what.startswith("object=")]
    refused = [w for w in cut.writes() if not w.allowed and w.time.timestamp() > cut_at]
    last = max(w.time.timestamp() for w in allowed)
    print(
        f"cut at 0s; last allowed write at {last - cut_at:+.2f}s, "
        f"{deadline - last:.2f}s before the lease deadline ({deadline - cut_at:+.2f}s); "
        f"{len(refused)} writes refused after the cut; {second} led after {took:.1f}s"
    )
    after_deadline = [w for w in allowed if w.time.timestamp() > deadline]
    assert after_deadline == [], "the cut-off leader wrote after its lease ran out"
    assert second == "inst-direct"
    assert operators.leader() == second
    assert_no_overlap(operators.all_writes())
