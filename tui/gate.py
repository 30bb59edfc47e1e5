"""The one place every change the TUI makes goes through.

Views never hold a writer: they ask the gate, and the gate refuses every
mutation in read-only mode, validates the value with the same parsers the
operator uses, then hands it to the writer (Consul key or label). Nothing here
touches Swarm's own replica count or availability: the TUI records desired
state and the operator applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from swarmop.tui.model import NodeRecord, ServiceRecord

from swarmop.desired.parsers import AVAILABILITIES, InvalidValue, parse_replicas


class ActionRefused(Exception):
    """An action the gate will not carry out; the message says why, for the user."""


class ReadOnlyError(ActionRefused):
    pass


@dataclass(frozen=True)
class WriteReceipt:
    """Where a desired value went, e.g. "Consul key swarmop/services/web/replicas"."""

    target: str
    value: str


class DesiredWriter(Protocol):
    def replicas_target(self, service: ServiceRecord) -> str: ...

    def availability_target(self, node: NodeRecord) -> str: ...

    def write_replicas(self, service: ServiceRecord, replicas: int) -> WriteReceipt: ...

    def write_availability(self, node: NodeRecord, availability: str) -> WriteReceipt: ...


class ActionGate:
    def __init__(self, writer: DesiredWriter | None, *, read_only: bool) -> None:
        # Read-only mode drops the writer altogether, so even a code path that
        # forgot to ask would have nothing to write with.
        self._writer = None if read_only else writer
        self.read_only = read_only or writer is None

    def check(self, action: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"read-only mode: {action} is disabled")

    def _writer_or_refuse(self, action: str) -> DesiredWriter:
        self.check(action)
        assert self._writer is not None  # check() refused otherwise
        return self._writer

    def replicas_target(self, service: ServiceRecord) -> str:
        return (
            "nowhere (read-only)" if self._writer is None else self._writer.replicas_target(service)
        )

    def availability_target(self, node: NodeRecord) -> str:
        return (
            "nowhere (read-only)"
            if self._writer is None
            else self._writer.availability_target(node)
        )

    def scale(self, service: ServiceRecord, replicas: int | str) -> WriteReceipt:
        writer = self._writer_or_refuse("scale")
        if service.mode != "replicated":
            raise ActionRefused(
                f"{service.name} is a {service.mode} service: it has no replica count"
            )
        try:
            count = parse_replicas(str(replicas))
        except InvalidValue as error:
            raise ActionRefused(str(error)) from None
        return writer.write_replicas(service, count)

    def set_availability(self, node: NodeRecord, availability: str) -> WriteReceipt:
        writer = self._writer_or_refuse(availability)
        if availability not in AVAILABILITIES:
            raise ActionRefused(
                f"availability must be one of {', '.join(AVAILABILITIES)}, got {availability!r}"
            )
        return writer.write_availability(node, availability)
