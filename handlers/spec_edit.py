"""Apply a plan to a freshly read spec (pure).

`swarm_write` calls the mutation on the spec it has just read, possibly again
after a conflict: constraints are merged against THAT spec and its applied-
constraints label, so a concurrent writer's change made after the plan was
computed survives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .placement_plan import APPLIED_PLACEMENT_LABEL, merge_constraints, parse_applied


@dataclass(frozen=True)
class ServiceEdit:
    replicas: int | None = None
    placement: Sequence[str] | None = None  # desired constraints; None: leave constraints alone
    max_replicas: int | None = None
    set_labels: Mapping[str, str] = field(default_factory=dict)
    drop_labels: Sequence[str] = ()
    stop_first: bool = False  # UpdateConfig.Order and RollbackConfig.Order := stop-first

    def __bool__(self) -> bool:
        return (
            self.stop_first
            or self.replicas is not None
            or self.placement is not None
            or self.max_replicas is not None
            or bool(self.set_labels)
            or bool(self.drop_labels)
        )


def edit_service_spec(spec: dict[str, Any], edit: ServiceEdit) -> bool:
    """Change `spec` in place; False when it already matches (nothing to write)."""
    before = repr(spec)
    had_labels = "Labels" in spec
    labels: dict[str, str] = spec.get("Labels") or {}
    spec["Labels"] = labels
    if edit.replicas is not None:
        mode = spec.get("Mode") or {}
        replicated = mode.get("Replicated")
        # A service turned global since the plan was made keeps its mode.
        if isinstance(replicated, dict):
            replicated["Replicas"] = int(edit.replicas)
    if edit.stop_first:
        for section in ("UpdateConfig", "RollbackConfig"):
            config = spec.get(section) or {}
            config["Order"] = "stop-first"
            spec[section] = config
    task_template = spec.setdefault("TaskTemplate", {})
    if edit.placement is not None or edit.max_replicas is not None:
        placement = task_template.get("Placement") or {}
        if edit.placement is not None:
            current = tuple(placement.get("Constraints") or ())
            applied = parse_applied(labels.get(APPLIED_PLACEMENT_LABEL))
            merged, owned = merge_constraints(current, edit.placement, applied)
            if merged:
                placement["Constraints"] = list(merged)
            else:
                placement.pop("Constraints", None)
            if owned:
                labels[APPLIED_PLACEMENT_LABEL] = ",".join(owned)
            else:
                labels.pop(APPLIED_PLACEMENT_LABEL, None)
        if edit.max_replicas is not None:
            if edit.max_replicas:
                placement["MaxReplicas"] = int(edit.max_replicas)
            else:
                placement.pop("MaxReplicas", None)
        if placement or "Placement" in task_template:
            task_template["Placement"] = placement
    for name, value in edit.set_labels.items():
        if name != APPLIED_PLACEMENT_LABEL or edit.placement is None:
            labels[name] = value
    for name in edit.drop_labels:
        if name != APPLIED_PLACEMENT_LABEL or edit.placement is None:
            labels.pop(name, None)
    if not labels and not had_labels:
        spec.pop("Labels", None)
    return repr(spec) != before
