"""The status contract round-trips through JSON and rejects malformed input clearly."""

from __future__ import annotations

import json

import pytest

from swarmop import status as st


def make_status() -> st.ObjectStatus:
    return st.ObjectStatus(
        kind="service",
        name="web",
        id="abc",
        last_run=1700000000.5,
        handler="replicas",
        outcome=st.Outcome.PENDING,
        message="retrying",
        retries=2,
        next_retry=1700000010.0,
        desired={"replicas": st.DesiredEntry(3, "consul")},
    )


def test_object_status_round_trip() -> None:
    original = make_status()
    assert st.decode_object_status(st.encode(original)) == original


def test_snapshot_round_trip() -> None:
    snapshot = st.StatusSnapshot(
        operator=st.OperatorInfo("i1", 42, "host", 1.0, 2.0, True),
        objects=(make_status(),),
        events=(st.OperatorEvent(3.0, "service", "web", st.EventLevel.INFO, "hello"),),
    )
    assert st.decode_snapshot(st.encode(snapshot)) == snapshot


def test_event_log_is_bounded_to_newest() -> None:
    events = [
        st.OperatorEvent(float(i), "operator", "", st.EventLevel.INFO, str(i))
        for i in range(st.EVENT_LOG_LIMIT + 10)
    ]
    decoded = st.decode_events(st.encode_events(events))
    assert len(decoded) == st.EVENT_LOG_LIMIT
    assert decoded[-1].message == str(st.EVENT_LOG_LIMIT + 9)
    assert decoded[0].message == "10"


def test_unknown_keys_are_ignored() -> None:
    data = make_status().to_dict() | {"future": 1}
    assert st.decode_object_status(json.dumps(data)) == make_status()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"kind": "pod", "name": "x", "id": "y"}',
        b'{"kind": "service", "name": 1, "id": "y"}',
        b'{"kind": "service", "name": "x", "id": "y", "outcome": "weird"}',
        b'{"kind": "service", "name": "x", "id": "y", "retries": "2"}',
        b'{"kind": "service", "name": "x", "id": "y", "desired": {"replicas": 3}}',
    ],
)
def test_malformed_status_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(st.StatusDecodeError):
        st.decode_object_status(raw)


def test_keys() -> None:
    assert st.status_key("swarmop", "service", "web") == "swarmop/status/services/web"
    assert st.status_key("p", "node", "n1") == "p/status/nodes/n1"
    assert st.events_key("swarmop") == "swarmop/events"
    assert st.operator_key("swarmop") == "swarmop/operator"
    assert st.parse_status_key("swarmop", "swarmop/status/nodes/n1") == ("node", "n1")
    assert st.parse_status_key("swarmop", "swarmop/status/other/n1") is None
    assert st.parse_status_key("swarmop", "swarmop/services/web/replicas") is None
