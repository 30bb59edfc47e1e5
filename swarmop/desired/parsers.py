"""Strict parsers for desired-state values.

Every value is matched against an allowlist with `re.fullmatch` on ASCII input
only: Python's `$` accepts a trailing newline and case-insensitive classes
accept look-alikes such as the Kelvin sign, and either would let a crafted
label slip into a rendered proxy config.
"""

from __future__ import annotations

import re

MAX_REPLICAS = 10_000
MAX_HOSTNAME = 253
MAX_PATH = 256
MAX_NAME = 63

_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?:\*\.)?{_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CONSTRAINT = re.compile(
    r"(?P<key>node\.(?:id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9._-]+)"
    r"|engine\.labels\.[A-Za-z0-9._-]+)"
    r"\s*(?P<op>==|!=)\s*"
    r"(?P<value>[A-Za-z0-9._-]+)"
)
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
AVAILABILITIES = ("active", "pause", "drain")
ROLES = ("db",)


class InvalidValue(ValueError):
    """A desired-state value that does not pass its field's allowlist."""


def _ascii(raw: str, what: str) -> str:
    if not raw.isascii():
        raise InvalidValue(f"{what} must be plain ASCII, got {raw!r}")
    if not raw.isprintable():
        raise InvalidValue(f"{what} contains control characters: {raw!r}")
    return raw


def parse_int_range(raw: str, *, low: int, high: int, what: str) -> int:
    text = _ascii(raw, what).strip()
    if not text.isdigit():
        raise InvalidValue(f"{what} must be a whole number from {low} to {high}, got {raw!r}")
    value = int(text)
    if not low <= value <= high:
        raise InvalidValue(f"{what} must be from {low} to {high}, got {value}")
    return value


def parse_replicas(raw: str) -> int:
    return parse_int_range(raw, low=0, high=MAX_REPLICAS, what="replicas")


def parse_port(raw: str) -> int:
    return parse_int_range(raw, low=1, high=65535, what="port")


def parse_bool(raw: str) -> bool:
    text = _ascii(raw, "flag").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidValue(f"expected true or false, got {raw!r}")


def parse_hostname(raw: str) -> str:
    text = _ascii(raw, "host").strip().lower()
    if len(text) > MAX_HOSTNAME or not _HOSTNAME.fullmatch(text):
        raise InvalidValue(
            f"host must be a DNS name such as test.local (letters, digits, '-' and '.', "
            f"at most {MAX_HOSTNAME} characters), got {raw!r}"
        )
    return text


def parse_path(raw: str) -> str:
    text = _ascii(raw, "path").strip()
    if len(text) > MAX_PATH or not _PATH.fullmatch(text) or "/../" in f"{text}/":
        raise InvalidValue(
            f"path must start with '/' and use only letters, digits and . _ ~ / -, "
            f"without '..' (at most {MAX_PATH} characters), got {raw!r}"
        )
    return text


def parse_name(raw: str, what: str = "name") -> str:
    text = _ascii(raw, what).strip()
    if len(text) > MAX_NAME or not _NAME.fullmatch(text):
        raise InvalidValue(
            f"{what} must start with a letter or digit and use only letters, digits, "
            f"'_', '.', '-' (at most {MAX_NAME} characters), got {raw!r}"
        )
    return text


def parse_name_list(raw: str) -> tuple[str, ...]:
    names = [part.strip() for part in _ascii(raw, "service list").split(",")]
    parsed = [parse_name(name, "service name") for name in names if name]
    # Order is kept (it is what the user wrote) but duplicates carry no meaning.
    return tuple(dict.fromkeys(parsed))


def parse_constraints(raw: str) -> tuple[str, ...]:
    """`node.labels.storage==ssd, node.role!=manager` -> normalised expressions."""
    parts = [part.strip() for part in _ascii(raw, "placement").split(",")]
    constraints: list[str] = []
    for part in parts:
        if not part:
            continue
        match = _CONSTRAINT.fullmatch(part)
        if match is None:
            raise InvalidValue(
                "placement must be constraints like node.labels.storage==ssd or "
                f"node.role!=manager, separated by commas, got {part!r}"
            )
        constraints.append(f"{match['key']}{match['op']}{match['value']}")
    if not constraints:
        raise InvalidValue("placement is empty")
    return tuple(dict.fromkeys(constraints))


def parse_choice(raw: str, choices: tuple[str, ...], what: str) -> str:
    text = _ascii(raw, what).strip().lower()
    if text not in choices:
        raise InvalidValue(f"{what} must be one of {', '.join(choices)}, got {raw!r}")
    return text


def parse_availability(raw: str) -> str:
    return parse_choice(raw, AVAILABILITIES, "availability")


def parse_role(raw: str) -> str:
    return parse_choice(raw, ROLES, "role")


def parse_network(raw: str) -> str:
    return parse_name(raw, "network")
