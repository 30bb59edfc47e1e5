"""An object's essence: what handlers react to (its spec and its merged desired state).

Versions, status, timestamps and task state are left out, so an unchanged
object never looks changed, and the operator's own write is recognised by
comparing essences, not versions.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from swarmop.desired import DesiredState


def desired_values(desired: DesiredState) -> dict[str, Any]:
    """Field -> JSON-ready value (tuples as lists); errored fields carry their error."""
    values: dict[str, Any] = {name: entry["value"] for name, entry in desired.as_dict().items()}
    for error in desired.errors:
        values.setdefault(error.field, {"error": error.message, "raw": error.raw})
    return values


def essence(attrs: Mapping[str, Any], desired: DesiredState) -> dict[str, Any]:
    return {
        "spec": copy.deepcopy(dict(attrs.get("Spec") or {})),
        "desired": desired_values(desired),
    }


def digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
