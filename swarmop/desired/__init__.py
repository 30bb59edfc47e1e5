"""Desired state: the `swarmop.*` labels and Consul keys an object declares, merged.

Pure code: plain mappings in, plain values out. Sources, highest precedence
first: the Consul key, the label, the field's default.
"""

from swarmop.desired.fields import (
    LABEL_PREFIX,
    NODE_FIELDS,
    SERVICE_FIELDS,
    FieldSpec,
    InvalidValue,
    ObjectKind,
    fields_for,
)
from swarmop.desired.merge import DesiredState, DesiredValue, FieldError, Source, merge_desired

__all__ = [
    "LABEL_PREFIX",
    "NODE_FIELDS",
    "SERVICE_FIELDS",
    "DesiredState",
    "DesiredValue",
    "FieldError",
    "FieldSpec",
    "InvalidValue",
    "ObjectKind",
    "Source",
    "fields_for",
    "merge_desired",
]
