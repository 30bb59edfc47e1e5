"""The desired-state schema: every field swarmop reads, where it applies, its default.

This table is the single reference; docs/desired-state.md is generated from it
(`python -m swarmop.desired.reference`) so the docs never drift from the code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from swarmop.desired import parsers
from swarmop.desired.parsers import InvalidValue

LABEL_PREFIX = "swarmop."
ObjectKind = Literal["service", "node"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: ObjectKind
    type_doc: str
    parse: Callable[[str], Any]
    doc: str
    default: Any = None

    @property
    def label(self) -> str:
        return f"{LABEL_PREFIX}{self.name}"

    def key(self, prefix: str, object_name: str) -> str:
        collection = "services" if self.kind == "service" else "nodes"
        return f"{prefix}/{collection}/{object_name}/{self.name}"


def _service(
    name: str, type_doc: str, parse: Callable[[str], Any], doc: str, default: Any = None
) -> FieldSpec:
    return FieldSpec(name, "service", type_doc, parse, doc, default)


SERVICE_FIELDS: Mapping[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        _service(
            "replicas",
            "int 0..10000",
            parsers.parse_replicas,
            "Replica count of a replicated service. Drift is restored; a rolling update "
            "in progress is not drift. Rejected on global services.",
        ),
        _service(
            "placement",
            "constraints, comma-separated",
            parsers.parse_constraints,
            "Constraints such as node.labels.storage==ssd, merged into the service's "
            "placement without dropping its other constraints.",
        ),
        _service(
            "role",
            "db",
            parsers.parse_role,
            "`db` marks a database: never moved by the operator; a single-writer db runs "
            "at most one task (a scale above 1 is brought back to 1) and is updated "
            "stop-first.",
        ),
        _service(
            "db.cluster",
            "bool",
            parsers.parse_bool,
            "With role=db: true for a cluster database (Galera), at most one task per node.",
            default=False,
        ),
        _service(
            "proxy.host",
            "DNS name",
            parsers.parse_hostname,
            "Virtual host name; the service gets an nginx server block for it.",
        ),
        _service(
            "proxy.port",
            "int 1..65535",
            parsers.parse_port,
            "Port the service's tasks listen on.",
            default=80,
        ),
        _service(
            "proxy.path",
            "URL path",
            parsers.parse_path,
            "Location prefix routed to the service.",
            default="/",
        ),
        _service(
            "proxy.network",
            "network name",
            parsers.parse_network,
            "Overlay network whose task addresses become the upstream; needed when the "
            "service is on several networks.",
        ),
        _service(
            "depends_on",
            "service names, comma-separated",
            parsers.parse_name_list,
            "Services that must have a running task before this one is scaled above zero "
            "(also while they do not exist yet); a service that runs is not scaled down.",
        ),
    )
}

NODE_FIELDS: Mapping[str, FieldSpec] = {
    "availability": FieldSpec(
        "availability",
        "node",
        "active | pause | drain",
        parsers.parse_availability,
        "Node availability the operator keeps the node at.",
    ),
}


def fields_for(kind: ObjectKind) -> Mapping[str, FieldSpec]:
    return SERVICE_FIELDS if kind == "service" else NODE_FIELDS


__all__ = [
    "LABEL_PREFIX",
    "NODE_FIELDS",
    "SERVICE_FIELDS",
    "FieldSpec",
    "InvalidValue",
    "ObjectKind",
    "fields_for",
]
