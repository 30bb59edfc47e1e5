"""`swarmop.depends_on`: may this service run yet? (pure)

A service waits until every service it depends on has a running task. A name
that matches no service, or a chain of dependencies that leads back to the
service itself, can never be satisfied: those are reported and the operator
leaves the service alone instead of holding it forever or looping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .decision import Status


@dataclass(frozen=True)
class DependencyCheck:
    """`ready` means start (or keep) the service at its desired count.

    `status` is None when ready; pending while waiting for dependencies;
    blocked for unknown names or a cycle (the operator then does not act).
    """

    ready: bool
    status: Status | None = None
    waiting_on: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.status is not None and self.status.outcome == "blocked"


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
    unknown = [name for name in dependencies if name not in graph]
    if unknown:
        return DependencyCheck(
            ready=False,
            status=Status.blocked(
                f"depends_on names no existing service: {', '.join(unknown)}; "
                "replicas left as they are",
                recheck=True,
            ),
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
