"""The `patch` kwarg: spec changes a handler asks for, applied after it as ONE versioned write.

The write goes through swarmop.clients.swarm_write: a fresh full read, these
changes only, the version index, retry on "update out of sequence". So a
concurrent writer's change to any other field survives.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

from swarmop.clients import swarm_write
from swarmop.reactor.context import Context

Spec = dict[str, Any]
SpecChange = Callable[[Spec], None]


class Patch:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._changes: list[SpecChange] = []

    def __bool__(self) -> bool:
        return bool(self._changes)

    def __len__(self) -> int:
        return len(self._changes)

    def mutate(self, change: SpecChange) -> None:
        """Any change to the full spec dict (called on a fresh copy at write time)."""
        self._changes.append(change)

    def set_label(self, name: str, value: str) -> None:
        self._changes.append(lambda spec: spec.setdefault("Labels", {}).__setitem__(name, value))

    def remove_label(self, name: str) -> None:
        self._changes.append(lambda spec: (spec.get("Labels") or {}).pop(name, None))

    def set_labels(self, labels: Mapping[str, str | None]) -> None:
        """Set several labels; a None value removes the label."""
        for name, value in labels.items():
            if value is None:
                self.remove_label(name)
            else:
                self.set_label(name, value)

    # --- services -----------------------------------------------------

    def set_replicas(self, replicas: int) -> None:
        self._require("service")
        if replicas < 0:
            raise ValueError("replicas must be >= 0")

        def change(spec: Spec) -> None:
            mode = spec.setdefault("Mode", {})
            if "Replicated" not in mode:
                raise ValueError("replicas can only be set on a replicated service")
            mode["Replicated"]["Replicas"] = int(replicas)

        self._changes.append(change)

    def set_constraints(self, constraints: list[str] | tuple[str, ...]) -> None:
        self._require("service")
        values = [str(item) for item in constraints]

        def change(spec: Spec) -> None:
            placement = spec.setdefault("TaskTemplate", {}).setdefault("Placement", {})
            placement["Constraints"] = values

        self._changes.append(change)

    # --- nodes --------------------------------------------------------

    def set_availability(self, availability: str) -> None:
        self._require("node")
        if availability not in ("active", "pause", "drain"):
            raise ValueError("availability must be active, pause or drain")
        self._changes.append(lambda spec: spec.__setitem__("Availability", availability))

    def _require(self, kind: str) -> None:
        if self.kind != kind:
            raise TypeError(f"this change applies to a {kind}, not a {self.kind}")

    def apply(self, spec: Spec) -> None:
        for change in self._changes:
            change(spec)


async def apply_patch(
    ctx: Context, kind: str, object_id: str, patch: Patch
) -> dict[str, Any] | None:
    """Write the patch; returns the spec as written (None when nothing changed)."""
    written: dict[str, Any] = {}

    def mutate(spec: dict[str, Any]) -> bool | None:
        patch.apply(spec)
        written.clear()
        written.update(copy.deepcopy(spec))
        return None

    update = swarm_write.update_service if kind == "service" else swarm_write.update_node
    # The gate (swarmop.ha) vetoes the write unless this instance leads, and
    # counts it in flight so a resigning leader waits for it before handing over.
    with ctx.gate.writing():
        result = await ctx.docker(
            functools.partial(update, before_write=ctx.gate.before_write),
            ctx.api,
            object_id,
            mutate,
        )
    return written if result.changed and written else None
