"""`swarmop.depends_on`: may this service run yet? (pure)

A service waits until every service it depends on has a running task. A name
that matches no service yet is waited for like a dependency without a running
task (a stack's dependent is often created before its database), but reported
as blocked: only creating that service can lift it. A chain of dependencies
that leads back to the service itself can never be satisfied: it is reported
and the operator leaves the service alone instead of holding it forever.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .decision import Status


@dataclass(frozen=True)
class DependencyCheck:
    """`ready` means start (or keep) the service at its desired count.

    `status` is None when ready; pending while waiting for dependencies that
    exist; blocked (re-checked) while one does not exist yet (`missing`) and
    for a cycle. The service is held while `waiting_on` names anything; a
    cycle waits on nothing and is left alone.
    """

    ready: bool
    status: Status | None = None
    waiting_on: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.status is not None and self.status.outcome == "blocked"

    @property
    def holds(self) -> bool:
        """The service is kept from starting (False for a cycle: left alone)."""
        return not self.ready and bool(self.waiting_on)


def find_cycle(start: str, graph: Mapping[str, Sequence[str]]) -> tuple[str, ...] | None:
    """The shortest dependency path from `start` back to itself, or None.

    Breadth-first so the reported cycle is the simplest one to read.
    """
    parents: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        next_frontier: list[str] = []
        for name in frontier:
            for dependency in graph.get(name, ()):
                if dependency == start:
                    chain = [name]
                    while chain[-1] != start:
                        chain.append(parents[chain[-1]])
                    chain.reverse()
                    return (*chain, start)
                if dependency in seen or dependency not in graph:
                    continue
                seen.add(dependency)
                parents[dependency] = name
                next_frontier.append(dependency)
        frontier = next_frontier
    return None


def check_dependencies(
    service: str,
    graph: Mapping[str, Sequence[str]],
    running: Mapping[str, int],
) -> DependencyCheck:
    """Decide whether `service` may run.

    `graph` maps every existing service name to its `depends_on` (empty when it
    has none); `running` maps service names to their count of running tasks.
    """
    dependencies = tuple(graph.get(service, ()))
    if not dependencies:
        return DependencyCheck(ready=True)
    missing = tuple(name for name in dependencies if name not in graph)
    if missing:
        return DependencyCheck(
            ready=False,
            status=Status.blocked(
                f"depends_on names no existing service: {', '.join(missing)}; held at 0 "
                "replicas until it exists and has a running task",
                recheck=True,
            ),
            waiting_on=tuple(name for name in dependencies if running.get(name, 0) < 1),
            dependencies=dependencies,
            missing=missing,
        )
    cycle = find_cycle(service, graph)
    if cycle is not None:
        return DependencyCheck(
            ready=False,
            status=Status.blocked(
                f"depends_on forms a cycle: {' -> '.join(cycle)}; replicas left as they are",
                recheck=True,
            ),
        )
    waiting = tuple(name for name in dependencies if running.get(name, 0) < 1)
    if waiting:
        return DependencyCheck(
            ready=False,
            status=Status.pending(
                f"held at 0 replicas until {', '.join(waiting)} has a running task"
            ),
            waiting_on=waiting,
            dependencies=dependencies,
        )
    return DependencyCheck(ready=True, dependencies=dependencies)
