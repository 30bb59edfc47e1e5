"""Strict allowlists for every value that can reach a rendered proxy config.

These checks run at render time even though `swarmop.desired` already parsed
the values: the rendered file is an injection surface (`x; } server { ... }`
passes `nginx -t`), so nothing gets into it without passing a second,
independent check here. Every check uses `re.fullmatch` on input that was first
proven ASCII: Python's `$` accepts a trailing newline, and case-insensitive
Unicode classes accept look-alikes such as the Kelvin sign.
"""

from __future__ import annotations

import ipaddress
import re

MAX_HOSTNAME = 253
MAX_LABEL = 63
MAX_PATH = 256
MAX_NAME = 63
MAX_NETWORK_NAME = 64

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DIGITS = re.compile(r"[0-9]{1,5}")
_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f.:]+(?:/[0-9]{1,3})?")


class InvalidProxyValue(ValueError):
    """A value that may not appear in a proxy config."""


def _plain_ascii(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidProxyValue(f"{what} must be text, got {type(value).__name__}")
    if not value:
        raise InvalidProxyValue(f"{what} is empty")
    if not value.isascii() or not value.isprintable():
        raise InvalidProxyValue(f"{what} must be printable ASCII, got {value!r}")
    return value


def check_hostname(value: object) -> str:
    """RFC 1123 host name, lower case, optional leading `*.`; returns it lower-cased.

    A wildcard must cover at least two labels (`*.example.com`), so one service
    cannot claim a whole top-level domain.
    """
    text = _plain_ascii(value, "proxy.host").lower()
    if len(text) > MAX_HOSTNAME:
        raise InvalidProxyValue(f"proxy.host is longer than {MAX_HOSTNAME} characters")
    wildcard = text.startswith("*.")
    labels = (text[2:] if wildcard else text).split(".")
    if wildcard and len(labels) < 2:
        raise InvalidProxyValue(f"proxy.host wildcard {text!r} must cover at least two labels")
    for label in labels:
        if not _HOST_LABEL.fullmatch(label):
            raise InvalidProxyValue(
                f"proxy.host {text!r} is not a host name: each dot-separated label must be "
                f"1-{MAX_LABEL} of a-z, 0-9 and '-', not starting or ending with '-'"
            )
    return text


def check_port(value: object) -> int:
    """TCP port 1-65535, given as an int or as decimal digits."""
    if isinstance(value, bool):
        raise InvalidProxyValue("proxy.port must be a number, got a boolean")
    if isinstance(value, str):
        if not value.isascii() or not _DIGITS.fullmatch(value):
            raise InvalidProxyValue(f"proxy.port must be a number 1-65535, got {value!r}")
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidProxyValue(f"proxy.port must be a number 1-65535, got {value!r}")
    return value


def check_path(value: object) -> str:
    """A URL path prefix: `/` then unreserved characters and `/`; no `.`/`..` segments."""
    text = _plain_ascii(value, "proxy.path")
    if len(text) > MAX_PATH:
        raise InvalidProxyValue(f"proxy.path is longer than {MAX_PATH} characters")
    if not _PATH.fullmatch(text):
        raise InvalidProxyValue(
            f"proxy.path {text!r} must start with '/' and contain only A-Z a-z 0-9 . _ ~ / -"
        )
    segments = text.split("/")[1:]
    if any(segment in {".", ".."} for segment in segments):
        raise InvalidProxyValue(f"proxy.path {text!r} has a '.' or '..' segment")
    if "//" in text:
        raise InvalidProxyValue(f"proxy.path {text!r} has an empty segment ('//')")
    return text


def check_name(value: object, what: str = "service name") -> str:
    """A Docker-style object name: starts alphanumeric, then `A-Za-z0-9_.-`."""
    text = _plain_ascii(value, what)
    limit = MAX_NETWORK_NAME if what == "proxy.network" else MAX_NAME
    if len(text) > limit:
        raise InvalidProxyValue(f"{what} is longer than {limit} characters")
    if not _NAME.fullmatch(text):
        raise InvalidProxyValue(
            f"{what} {text!r} must start with a letter or digit and contain only A-Z a-z 0-9 _ . -"
        )
    return text


def check_network(value: object) -> str:
    return check_name(value, "proxy.network")


def check_address(value: object) -> IPAddress:
    """A task address: an IPv4 or IPv6 literal, optionally with a /prefix (as
    Docker reports attachment addresses). Zone ids (`%eth0`), unspecified and
    multicast addresses are refused."""
    text = _plain_ascii(value, "task address")
    if not _ADDRESS_CHARS.fullmatch(text):
        raise InvalidProxyValue(f"task address {text!r} is not an IP address")
    try:
        address = ipaddress.ip_interface(text).ip
    except ValueError as error:
        raise InvalidProxyValue(f"task address {text!r} is not an IP address") from error
    if address.is_unspecified or address.is_multicast:
        raise InvalidProxyValue(f"task address {text!r} cannot be an upstream")
    return address
