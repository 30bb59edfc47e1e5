"""Concurrent writers against the real stores (R10, R20): every write is
conditional on the version it was computed from, so racing writers never
erase each other's changes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import docker
import pytest

from swarmop.clients.consul import ConsulKV
from swarmop.clients.swarm_write import update_node
from swarmop.sandbox import SandboxInfo
from swarmop.sandbox.testing import Tracker, unique
from swarmop.settings import resolve_consul

pytestmark = pytest.mark.cluster

ROUNDS = 15


def race(*workers: Callable[[], None]) -> None:
    """Start the workers together; re-raise the first failure."""
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        start.wait()
        try:
            work()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    if errors:
        raise errors[0]


def test_two_actors_setting_different_node_labels_both_land(
    sandbox: SandboxInfo, tracker: Tracker
) -> None:
    """R10: each actor reads the full NodeSpec and writes with its version; the
    loser of a round re-reads, so neither label is lost."""
    clients = [
        docker.APIClient(base_url=sandbox.manager_docker_host, version="auto") for _ in range(2)
    ]
    node_id = str(clients[0].nodes()[-1]["ID"])
    tracker.node(node_id)  # restores the node's labels and availability afterwards
    names = [unique("race-a"), unique("race-b")]
    conflicts = [0, 0]

    def actor(index: int) -> Callable[[], None]:
        def work() -> None:
            for round_number in range(ROUNDS):

                def set_label(spec: dict[str, Any], value: str = str(round_number)) -> None:
                    spec.setdefault("Labels", {})[names[index]] = value

                conflicts[index] += update_node(clients[index], node_id, set_label).conflicts

        return work

    try:
        race(actor(0), actor(1))
        labels = clients[0].inspect_node(node_id)["Spec"].get("Labels") or {}
        assert labels.get(names[0]) == str(ROUNDS - 1), labels
        assert labels.get(names[1]) == str(ROUNDS - 1), labels
    finally:
        for client in clients:
            client.close()
    print(f"node label race: {ROUNDS} rounds per actor, conflicts retried {conflicts}")


def test_cas_writers_on_one_key_never_lose_an_update(
    sandbox: SandboxInfo, tracker: Tracker
) -> None:
    """R20: two writers CAS the same key from the same ModifyIndex: exactly one
    wins; the loser re-reads and tries again, so every increment lands."""
    key = tracker.consul_key(f"{unique('race')}/counter")
    writers = [ConsulKV(resolve_consul(addr=sandbox.consul_http_addr, env={})) for _ in range(2)]
    assert writers[0].put(key, "0", cas=0)

    # One round from the same index, by hand: exactly one of the two wins.
    entry = writers[0].get(key)
    assert entry is not None
    outcomes = [
        writer.put(key, f"from-{n}", cas=entry.modify_index) for n, writer in enumerate(writers)
    ]
    assert sorted(outcomes) == [False, True], outcomes
    winner = outcomes.index(True)
    current = writers[0].get(key)
    assert current is not None and current.value == f"from-{winner}"
    assert writers[0].put(key, "0", cas=current.modify_index)

    lost_rounds = [0, 0]

    def incrementer(index: int) -> Callable[[], None]:
        def work() -> None:
            kv = writers[index]
            for _ in range(ROUNDS):
                while True:
                    seen = kv.get(key)
                    assert seen is not None and seen.value is not None
                    if kv.put(key, str(int(seen.value) + 1), cas=seen.modify_index):
                        break
                    lost_rounds[index] += 1  # someone wrote since our read: read again

        return work

    race(incrementer(0), incrementer(1))
    final = writers[0].get(key)
    assert final is not None and final.value == str(2 * ROUNDS)
    print(f"CAS race: {2 * ROUNDS} increments, lost rounds re-read {lost_rounds}")
