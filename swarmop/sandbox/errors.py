"""The one error type the sandbox raises: its message is meant for a person at a terminal."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """Something prevents the sandbox from being created, inspected or removed."""
