"""Versioned read-modify-write of Swarm service and node specs.

A Swarm update replaces the whole spec and must carry the version it was
computed from. docker-py's `update_service` rebuilds the spec from its keyword
arguments (a missing `mode` silently becomes one replica), so writes here send
the full spec read just before, changed only by the caller's `mutate`.

A concurrent writer makes the daemon answer HTTP 500 "update out of sequence"
(not 409): the whole cycle is repeated on a fresh read, so the other writer's
change survives and only our fields are applied again.

A write whose response was lost (connection reset, timeout) is never blindly
repeated: the next cycle re-reads first. If the object moved to a newer version
whose spec is exactly the one we sent (or, for a service, whose previous spec
is, when someone wrote again right after us), our write landed and we stop
there, without calling `mutate` again: a relative change such as bumping
ForceUpdate would otherwise be applied twice. Otherwise `mutate` runs on the
fresh read as usual, and finds nothing to do if our change is there anyway.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import docker.errors
import requests

logger = logging.getLogger("swarmop.swarm_write")

Spec = dict[str, Any]
Mutation = Callable[[Spec], bool | None]
BeforeWrite = Callable[[str, int], None]
ObjectKind = Literal["service", "node"]

DEFAULT_ATTEMPTS = 8
DEFAULT_BACKOFF = 0.05
MAX_BACKOFF = 2.0


class SwarmWriteError(RuntimeError):
    """The spec could not be written after every attempt."""


@dataclass(frozen=True)
class WriteResult:
    changed: bool
    """True when this call's write was applied (or confirmed applied after a lost response)."""
    attempts: int
    version_read: int
    """The version index the final attempt read."""
    conflicts: int = 0
    indeterminate: int = 0
    """Writes whose outcome was unknown and that were settled by re-reading."""


def is_out_of_sequence(error: docker.errors.APIError) -> bool:
    return "out of sequence" in str(error.explanation or error)


def update_service(
    api: Any,
    service_id: str,
    mutate: Mutation,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    before_write: BeforeWrite | None = None,
) -> WriteResult:
    """Apply `mutate` to the service's current spec and write it with its version.

    `mutate` gets a deep copy of the full spec; returning False, or leaving the
    spec equal to what was read, means nothing to write. `before_write(id,
    version)` runs right before each write (the leader check hooks in here and
    raises to stop a deposed instance from writing).
    """

    def write(spec: Spec, version: int) -> None:
        url = api._url("/services/{0}/update", service_id)
        response = api._post_json(url, data=spec, params={"version": version})
        api._raise_for_status(response)

    return _read_modify_write(
        "service",
        service_id,
        read=lambda: api.inspect_service(service_id),
        write=write,
        mutate=mutate,
        attempts=attempts,
        before_write=before_write,
    )


def update_node(
    api: Any,
    node_id: str,
    mutate: Mutation,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    before_write: BeforeWrite | None = None,
) -> WriteResult:
    """Like `update_service`, for a node's spec (labels, availability, role)."""

    def write(spec: Spec, version: int) -> None:
        api.update_node(node_id, version, spec)

    return _read_modify_write(
        "node",
        node_id,
        read=lambda: api.inspect_node(node_id),
        write=write,
        mutate=mutate,
        attempts=attempts,
        before_write=before_write,
    )


def _read_modify_write(
    kind: ObjectKind,
    object_id: str,
    *,
    read: Callable[[], dict[str, Any]],
    write: Callable[[Spec, int], None],
    mutate: Mutation,
    attempts: int,
    before_write: BeforeWrite | None,
) -> WriteResult:
    conflicts = 0
    indeterminate = 0
    backoff = DEFAULT_BACKOFF
    last_error: Exception | None = None
    unsettled: tuple[Spec, int] | None = None  # (spec sent, version) of a write in doubt

    def result(changed: bool, attempt: int, version: int) -> WriteResult:
        return WriteResult(
            changed=changed,
            attempts=attempt,
            version_read=version,
            conflicts=conflicts,
            indeterminate=indeterminate,
        )

    for attempt in range(1, attempts + 1):
        current = read()
        version = int(current["Version"]["Index"])
        if unsettled is not None and _landed(current, *unsettled):
            logger.info("%s %s: the write in doubt was applied", kind, object_id)
            return result(True, attempt, version)
        if unsettled is not None and version > unsettled[1]:
            unsettled = None  # the object moved on without our write
        # (At an unchanged version the write in doubt may still be in flight; the
        # daemon accepts at most one write per version, and the next read tells.)
        spec = copy.deepcopy(current["Spec"])
        wanted = mutate(spec)
        if wanted is False or spec == current["Spec"]:
            # After a lost response, finding our change already in place is success.
            return result(indeterminate > 0, attempt, version)
        if before_write is not None:
            before_write(object_id, version)
        try:
            write(spec, version)
        except docker.errors.APIError as error:
            if not is_out_of_sequence(error):
                raise
            conflicts += 1
            last_error = error
            logger.debug("%s %s: version %d out of sequence, re-reading", kind, object_id, version)
        except (requests.ConnectionError, requests.Timeout) as error:
            # The request may or may not have been applied: re-read, never resend blindly.
            indeterminate += 1
            unsettled = (spec, version)
            last_error = error
            logger.warning("%s %s: write outcome unknown (%s), re-reading", kind, object_id, error)
        else:
            logger.debug("%s %s: written at version %d", kind, object_id, version)
            return result(True, attempt, version)
        time.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
    raise SwarmWriteError(
        f"could not update {kind} {object_id} after {attempts} attempts: {last_error}"
    )


def _landed(current: dict[str, Any], sent: Spec, version: int) -> bool:
    """Whether a write of `sent` at `version`, whose outcome was unknown, was applied."""
    if int(current["Version"]["Index"]) <= version:
        return False  # nothing was written since: ours was not applied
    return bool(current.get("Spec") == sent or current.get("PreviousSpec") == sent)
