"""Desired-state merge: precedence, strict parsing, errors reported not acted on."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarmop.desired import NODE_FIELDS, SERVICE_FIELDS, Source, merge_desired, reference
from swarmop.desired.keys import desired_keys_by_object
from swarmop.desired.parsers import InvalidValue, parse_constraints, parse_hostname, parse_path


def test_consul_key_beats_label_beats_default() -> None:
    state = merge_desired(
        "service",
        {"swarmop.replicas": "2", "swarmop.proxy.port": "8080", "com.example": "x"},
        {"replicas": "5"},
    )
    assert state.get("replicas") is not None
    assert (state.value("replicas"), state.get("replicas").source) == (5, Source.CONSUL)  # type: ignore[union-attr]
    assert (state.value("proxy.port"), state.get("proxy.port").source) == (8080, Source.LABEL)  # type: ignore[union-attr]
    assert (state.value("proxy.path"), state.get("proxy.path").source) == ("/", Source.DEFAULT)  # type: ignore[union-attr]
    assert "role" not in state
    assert state.errors == ()


def test_invalid_winning_value_is_reported_and_not_replaced_by_the_label() -> None:
    state = merge_desired("service", {"swarmop.replicas": "3"}, {"replicas": "three"})
    assert "replicas" not in state
    (error,) = state.errors
    assert (error.field, error.source, error.raw) == ("replicas", Source.CONSUL, "three")
    assert "whole number" in error.message


def test_unknown_fields_are_reported_as_likely_typos() -> None:
    state = merge_desired("service", {"swarmop.replica": "3"}, {"proxy.hots": "a"})
    assert {(e.field, e.source) for e in state.errors} == {
        ("replica", Source.LABEL),
        ("proxy.hots", Source.CONSUL),
    }


def test_node_availability() -> None:
    state = merge_desired("node", {"swarmop.availability": "Drain"}, {})
    assert state.value("availability") == "drain"
    bad = merge_desired("node", {}, {"availability": "off"})
    assert bad.errors[0].field == "availability"
    assert set(NODE_FIELDS) == {"availability"}


def test_as_dict_is_json_ready() -> None:
    state = merge_desired("service", {"swarmop.depends_on": "db, cache,db"}, {})
    assert state.as_dict()["depends_on"] == {"value": ["db", "cache"], "source": "label"}


@pytest.mark.parametrize(
    "raw",
    [
        "test.local\n",
        "x; } server {",
        "test.local;",
        "te$t.local",
        "\u212aelvin.local",  # Kelvin sign: matches [k] under IGNORECASE
        "tést.local",
        "a" * 64 + ".local",
        "",
        "-bad.local",
        "a..b",
    ],
)
def test_hostname_allowlist_rejects(raw: str) -> None:
    with pytest.raises(InvalidValue):
        parse_hostname(raw)


def test_hostname_accepts_and_normalises() -> None:
    assert parse_hostname("Test.Local") == "test.local"
    assert parse_hostname("*.apps.example") == "*.apps.example"


@pytest.mark.parametrize("raw", ["/a/../b", "/..", "api", "/a b", "/a;b", "/a\n", "/%0a"])
def test_path_allowlist_rejects(raw: str) -> None:
    with pytest.raises(InvalidValue):
        parse_path(raw)


def test_constraints_are_normalised_and_validated() -> None:
    assert parse_constraints("node.labels.storage == ssd, node.role!=manager") == (
        "node.labels.storage==ssd",
        "node.role!=manager",
    )
    for raw in (
        "node.labels.storage=ssd",
        "storage==ssd",
        "node.labels.x==a b",
        ",",
        "node.labels.x==ok;rm",
    ):
        with pytest.raises(InvalidValue):
            parse_constraints(raw)


def test_every_field_has_a_label_and_key_name() -> None:
    spec = SERVICE_FIELDS["proxy.host"]
    assert spec.label == "swarmop.proxy.host"
    assert spec.key("swarmop", "web") == "swarmop/services/web/proxy.host"
    assert NODE_FIELDS["availability"].key("ops", "node-1") == "ops/nodes/node-1/availability"


def test_reference_doc_is_generated_from_the_schema() -> None:
    committed = Path(__file__).resolve().parents[2] / "docs" / "desired-state.md"
    assert committed.read_text() == reference.render(), (
        "docs/desired-state.md is stale: regenerate it with python -m swarmop.desired.reference"
    )


def test_desired_keys_are_grouped_by_object_and_nested_keys_ignored() -> None:
    entries = {
        "p/services/web/replicas": "3",
        "p/services/web/proxy.host": "a.b",
        "p/services/web/notes/extra": "ignored: not a field",
        "p/services/": None,
        "p/services/x": "1",
        "p/nodes/n1/availability": "drain",
    }
    assert desired_keys_by_object("p", "services", entries) == {
        "web": {"replicas": "3", "proxy.host": "a.b"}
    }
    assert desired_keys_by_object("p", "nodes", entries) == {"n1": {"availability": "drain"}}
