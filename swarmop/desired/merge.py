"""Merge an object's labels and Consul keys into its desired state."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from swarmop.desired.fields import LABEL_PREFIX, ObjectKind, fields_for
from swarmop.desired.parsers import InvalidValue


class Source(StrEnum):
    CONSUL = "consul"
    LABEL = "label"
    DEFAULT = "default"


@dataclass(frozen=True)
class DesiredValue:
    field: str
    value: Any
    source: Source
    raw: str | None  # the text as written; None for defaults


@dataclass(frozen=True)
class FieldError:
    field: str
    source: Source
    raw: str
    message: str

    def __str__(self) -> str:
        where = "Consul key" if self.source is Source.CONSUL else "label"
        return f"{where} {self.field}={self.raw!r}: {self.message}"


@dataclass(frozen=True)
class DesiredState:
    """What one object should be. Errored fields are absent from `values`."""

    values: Mapping[str, DesiredValue]
    errors: tuple[FieldError, ...] = ()

    def get(self, field: str) -> DesiredValue | None:
        return self.values.get(field)

    def value(self, field: str, default: Any = None) -> Any:
        found = self.values.get(field)
        return default if found is None else found.value

    def explicit(self, field: str) -> bool:
        """True when a label or key sets the field (not just its default)."""
        found = self.values.get(field)
        return found is not None and found.source is not Source.DEFAULT

    def errored(self, field: str) -> bool:
        return any(error.field == field for error in self.errors)

    def __contains__(self, field: object) -> bool:
        return field in self.values

    def __iter__(self) -> Iterator[DesiredValue]:
        return iter(self.values.values())

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-ready: {field: {value, source}} (tuples become lists)."""
        return {
            item.field: {
                "value": list(item.value) if isinstance(item.value, tuple) else item.value,
                "source": item.source.value,
            }
            for item in self.values.values()
        }


def labels_to_fields(labels: Mapping[str, str]) -> dict[str, str]:
    """The `swarmop.*` labels of an object, keyed by field name."""
    return {
        name[len(LABEL_PREFIX) :]: value
        for name, value in labels.items()
        if name.startswith(LABEL_PREFIX)
    }


def merge_desired(
    kind: ObjectKind, labels: Mapping[str, str], keys: Mapping[str, str]
) -> DesiredState:
    """Consul key beats label beats default.

    An invalid value at the winning source is reported and the field is left
    out: falling back to a lower source would act on a value the user has
    already replaced. Unknown `swarmop.*` names are reported too, since they
    are almost always typos of a real field.
    """
    specs = fields_for(kind)
    label_fields = labels_to_fields(labels)
    values: dict[str, DesiredValue] = {}
    errors: list[FieldError] = []

    for source, written in ((Source.CONSUL, keys), (Source.LABEL, label_fields)):
        for name in sorted(written):
            if name not in specs:
                errors.append(FieldError(name, source, written[name], f"unknown {kind} field"))

    for name, spec in specs.items():
        if name in keys:
            source, raw = Source.CONSUL, keys[name]
        elif name in label_fields:
            source, raw = Source.LABEL, label_fields[name]
        else:
            if spec.default is not None:
                values[name] = DesiredValue(name, spec.default, Source.DEFAULT, None)
            continue
        try:
            values[name] = DesiredValue(name, spec.parse(raw), source, raw)
        except InvalidValue as error:
            errors.append(FieldError(name, source, raw, str(error)))

    return DesiredState(values=values, errors=tuple(errors))
