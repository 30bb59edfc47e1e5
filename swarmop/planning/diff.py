"""Structural diffs between two essences, like Kopf's: (op, path, old, new)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

Op = Literal["add", "change", "remove"]


class DiffItem(NamedTuple):
    op: Op
    field: tuple[str, ...]
    old: Any
    new: Any


def diff(old: Any, new: Any, path: tuple[str, ...] = ()) -> tuple[DiffItem, ...]:
    """Mappings are compared key by key; anything else (lists too) as a whole value."""
    if old == new:
        return ()
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        items: list[DiffItem] = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in old:
                items.append(DiffItem("add", (*path, str(key)), None, new[key]))
            elif key not in new:
                items.append(DiffItem("remove", (*path, str(key)), old[key], None))
            else:
                items.extend(diff(old[key], new[key], (*path, str(key))))
        return tuple(items)
    if old is None:
        return (DiffItem("add", path, None, new),)
    if new is None:
        return (DiffItem("remove", path, old, None),)
    return (DiffItem("change", path, old, new),)
