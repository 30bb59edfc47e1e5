"""Writes desired state to the source that wins, so the operator agrees with it.

With Consul configured that is the Consul key (it beats the label); without,
the `swarmop.*` label, written through swarmop's versioned spec writer. The
service's replica count and the node's availability themselves are left to
the operator.
"""

from __future__ import annotations

from typing import Any

from swarmop.tui.gate import ActionRefused, WriteReceipt
from swarmop.tui.model import NodeRecord, ServiceRecord

from swarmop.clients.swarm_write import update_node, update_service
from swarmop.desired import NODE_FIELDS, SERVICE_FIELDS


def _set_label(name: str, value: str) -> Any:
    def mutate(spec: dict[str, Any]) -> bool:
        labels = spec.setdefault("Labels", {}) or {}
        spec["Labels"] = labels
        if labels.get(name) == value:
            return False
        labels[name] = value
        return True

    return mutate


class ConsulWriter:
    def __init__(self, consul: Any, prefix: str) -> None:
        self._consul = consul
        self._prefix = prefix

    def replicas_target(self, service: ServiceRecord) -> str:
        return f"Consul key {SERVICE_FIELDS['replicas'].key(self._prefix, service.name)}"

    def availability_target(self, node: NodeRecord) -> str:
        return f"Consul key {NODE_FIELDS['availability'].key(self._prefix, node.hostname)}"

    def _put(self, key: str, value: str) -> WriteReceipt:
        if self._consul.kv.put(key, value) is not True:
            raise ActionRefused(f"Consul refused the write of {key}")
        return WriteReceipt(f"Consul key {key}", value)

    def write_replicas(self, service: ServiceRecord, replicas: int) -> WriteReceipt:
        return self._put(SERVICE_FIELDS["replicas"].key(self._prefix, service.name), str(replicas))

    def write_availability(self, node: NodeRecord, availability: str) -> WriteReceipt:
        return self._put(NODE_FIELDS["availability"].key(self._prefix, node.hostname), availability)


class LabelWriter:
    def __init__(self, api: Any) -> None:
        self._api = api

    def replicas_target(self, service: ServiceRecord) -> str:
        return f"label {SERVICE_FIELDS['replicas'].label} on service {service.name}"

    def availability_target(self, node: NodeRecord) -> str:
        return f"label {NODE_FIELDS['availability'].label} on node {node.hostname}"

    def write_replicas(self, service: ServiceRecord, replicas: int) -> WriteReceipt:
        label = SERVICE_FIELDS["replicas"].label
        update_service(self._api, service.id, _set_label(label, str(replicas)))
        return WriteReceipt(self.replicas_target(service), str(replicas))

    def write_availability(self, node: NodeRecord, availability: str) -> WriteReceipt:
        label = NODE_FIELDS["availability"].label
        update_node(self._api, node.id, _set_label(label, availability))
        return WriteReceipt(self.availability_target(node), availability)
