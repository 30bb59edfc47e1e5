"""Handler filters: which objects and which changes a handler wants (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any


class _Marker(Enum):
    PRESENT = "PRESENT"
    ABSENT = "ABSENT"

    def __repr__(self) -> str:
        return f"swarmop.{self.value}"


PRESENT = _Marker.PRESENT
ABSENT = _Marker.ABSENT

LabelValueFilter = str | _Marker | Callable[[str | None], bool]
LabelsFilter = Mapping[str, LabelValueFilter]
# `old=` / `new=` take a value, PRESENT/ABSENT, or a callable on the value.
ValueFilter = Any


def match_labels(labels: Mapping[str, str], wanted: LabelsFilter | None) -> bool:
    """True when every wanted label matches: a value, PRESENT, ABSENT or a predicate."""
    if not wanted:
        return True
    for name, expected in wanted.items():
        actual = labels.get(name)
        if expected is PRESENT:
            ok = actual is not None
        elif expected is ABSENT:
            ok = actual is None
        elif callable(expected):
            ok = bool(expected(actual))
        else:
            ok = actual == expected
        if not ok:
            return False
    return True


def match_value(value: Any, wanted: ValueFilter) -> bool:
    if wanted is PRESENT:
        return value is not None
    if wanted is ABSENT:
        return value is None
    if callable(wanted):
        return bool(wanted(value))
    return bool(value == wanted)


def resolve_field(data: Any, path: str | tuple[str, ...]) -> Any:
    """Value at a dotted path in nested mappings; None when any step is missing.

    Keys may themselves contain dots (label names such as ``swarmop.replicas``,
    desired fields such as ``proxy.host``): at each level the longest key that
    matches the rest of the path wins, so ``spec.Labels.swarmop.replicas`` and
    ``desired.proxy.host`` both work. A tuple path is taken literally.
    """
    if isinstance(path, tuple):
        current = data
        for part in path:
            if not isinstance(current, Mapping) or part not in current:
                return None
            current = current[part]
        return current
    parts = path.split(".")
    current = data
    index = 0
    while index < len(parts):
        if not isinstance(current, Mapping):
            return None
        for end in range(len(parts), index, -1):
            key = ".".join(parts[index:end])
            if key in current:
                current = current[key]
                index = end
                break
        else:
            return None
    return current


def check_field(path: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
    """Validate a field path at decoration time so a typo fails loudly and early."""
    if path is None:
        return None
    parts = path.split(".") if isinstance(path, str) else list(path)
    if not parts or any(not isinstance(part, str) or not part for part in parts):
        raise ValueError(f"invalid field path {path!r}")
    return path


__all__ = [
    "ABSENT",
    "PRESENT",
    "LabelsFilter",
    "check_field",
    "match_labels",
    "match_value",
    "resolve_field",
]
