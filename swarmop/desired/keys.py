"""The Consul key layout of desired state: `<prefix>/<collection>/<name>/<field>`.

One parser for the operator and the TUI, so both read the same keys the same
way (a nested key such as `.../web/a/b` is not a field and is ignored by both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Collection = Literal["services", "nodes"]


def desired_keys_by_object(
    prefix: str, collection: Collection, entries: Mapping[str, Any]
) -> dict[str, dict[str, str]]:
    """{key: value or entry with .value} -> {object name: {field: value}}."""
    head = f"{prefix}/{collection}/"
    found: dict[str, dict[str, str]] = {}
    for key, entry in entries.items():
        if not key.startswith(head):
            continue
        name, sep, field = key[len(head) :].partition("/")
        if not sep or not name or not field or "/" in field:
            continue
        value = entry.value if hasattr(entry, "value") else entry
        if value is None:
            continue
        found.setdefault(name, {})[field] = str(value)
    return found
