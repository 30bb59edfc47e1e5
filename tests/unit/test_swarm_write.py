"""Read-modify-write control flow of swarm_write, against an in-memory fake API.

The real daemon's behaviour (HTTP 500 "update out of sequence") is exercised by
the cluster tests; here the fake reproduces it to pin down the retry logic.
"""

from __future__ import annotations

import copy
from typing import Any

import docker.errors
import pytest
import requests

from swarmop.clients import swarm_write
from swarmop.clients.swarm_write import SwarmWriteError, update_service


class FakeServiceAPI:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.version = 10
        self.writes: list[tuple[int, dict[str, Any]]] = []
        self.before_each_write: list[Any] = []
        self.lose_response_once = False

    def inspect_service(self, _service_id: str) -> dict[str, Any]:
        return {"Version": {"Index": self.version}, "Spec": copy.deepcopy(self.spec)}

    def _url(self, template: str, *args: str) -> str:
        return template.format(*args)

    def _post_json(self, _url: str, data: dict[str, Any], params: dict[str, int]) -> dict[str, Any]:
        if self.before_each_write:
            self.before_each_write.pop(0)(self)
        if params["version"] != self.version:
            response = requests.Response()
            response.status_code = 500
            raise docker.errors.APIError(
                "500", response=response, explanation="rpc error: update out of sequence"
            )
        self.writes.append((params["version"], data))
        self.spec = copy.deepcopy(data)
        self.version += 1
        if self.lose_response_once:
            self.lose_response_once = False
            raise requests.ConnectionError("connection reset by peer")
        return {}

    def _raise_for_status(self, _response: Any) -> None:
        return None


def _spec() -> dict[str, Any]:
    return {
        "Name": "web",
        "Labels": {"a": "1"},
        "Mode": {"Replicated": {"Replicas": 5}},
        "TaskTemplate": {"Placement": {"Constraints": ["node.role==worker"]}},
        "EndpointSpec": {"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]},
    }


def set_label(spec: dict[str, Any]) -> None:
    spec.setdefault("Labels", {})["swarmop.seen"] = "yes"


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm_write.time, "sleep", lambda _s: None)


def test_writes_full_spec_with_only_the_mutated_field_changed() -> None:
    api = FakeServiceAPI(_spec())
    result = update_service(api, "web", set_label)
    assert result.changed and result.attempts == 1 and result.version_read == 10
    ((version, written),) = api.writes
    expected = _spec()
    expected["Labels"]["swarmop.seen"] = "yes"
    assert version == 10 and written == expected


def test_no_write_when_nothing_changes() -> None:
    api = FakeServiceAPI(_spec())
    assert not update_service(api, "web", lambda spec: None).changed
    assert not update_service(api, "web", lambda spec: False).changed
    assert api.writes == []


def test_conflicting_writer_change_survives_and_ours_is_reapplied() -> None:
    api = FakeServiceAPI(_spec())

    def other_writer(fake: FakeServiceAPI) -> None:
        fake.spec["TaskTemplate"]["ContainerSpec"] = {"Image": "web:2"}
        fake.version += 1

    api.before_each_write.append(other_writer)
    result = update_service(api, "web", set_label)
    assert result.changed and result.conflicts == 1 and result.attempts == 2
    assert api.spec["TaskTemplate"]["ContainerSpec"] == {"Image": "web:2"}
    assert api.spec["Labels"]["swarmop.seen"] == "yes"
    assert api.spec["Mode"] == {"Replicated": {"Replicas": 5}}


def test_lost_response_is_settled_by_rereading_not_by_resending() -> None:
    api = FakeServiceAPI(_spec())
    api.lose_response_once = True
    result = update_service(api, "web", set_label)
    assert result.changed and result.indeterminate == 1
    assert len(api.writes) == 1, "the write must not be sent twice"


def test_lost_response_of_a_relative_change_is_not_applied_twice() -> None:
    """A mutate that bumps a counter (ForceUpdate, a handler's patch.mutate) must
    not run again on the re-read spec when the write in doubt has landed."""
    api = FakeServiceAPI(_spec())
    api.lose_response_once = True

    def bump(spec: dict[str, Any]) -> None:
        task = spec.setdefault("TaskTemplate", {})
        task["ForceUpdate"] = int(task.get("ForceUpdate") or 0) + 1

    update_service(api, "web", bump)
    assert len(api.writes) == 1, "the write must not be sent twice"
    assert api.spec["TaskTemplate"]["ForceUpdate"] == 1


def test_gives_up_after_bounded_attempts() -> None:
    api = FakeServiceAPI(_spec())

    def always_conflict(fake: FakeServiceAPI) -> None:
        fake.version += 1
        fake.before_each_write.append(always_conflict)

    api.before_each_write.append(always_conflict)
    with pytest.raises(SwarmWriteError, match="after 3 attempts"):
        update_service(api, "web", set_label, attempts=3)


def test_before_write_can_veto_a_write() -> None:
    api = FakeServiceAPI(_spec())

    class NotLeader(Exception):
        pass

    def refuse(_object_id: str, _version: int) -> None:
        raise NotLeader

    with pytest.raises(NotLeader):
        update_service(api, "web", set_label, before_write=refuse)
    assert api.writes == []
