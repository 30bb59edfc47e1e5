"""depends_on planning: readiness, unknown names, cycles."""

from __future__ import annotations

import pytest
from swarmop.handlers.decision import Outcome
from swarmop.handlers.depends_plan import check_dependencies, find_cycle


def test_no_dependencies_is_ready() -> None:
    check = check_dependencies("web", {"web": ()}, {})
    assert check.ready
    assert check.status is None
    assert check.dependencies == ()


def test_waits_for_a_dependency_without_running_task() -> None:
    check = check_dependencies("web", {"web": ("db",), "db": ()}, {"db": 0})
    assert not check.ready
    assert check.waiting_on == ("db",)
    assert check.status is not None and check.status.outcome is Outcome.PENDING
    assert "db" in check.status.message


def test_ready_once_every_dependency_runs() -> None:
    graph = {"web": ("db", "cache"), "db": (), "cache": ()}
    assert not check_dependencies("web", graph, {"db": 1}).ready
    check = check_dependencies("web", graph, {"db": 1, "cache": 2})
    assert check.ready
    assert check.dependencies == ("db", "cache")


def test_names_only_the_missing_dependencies() -> None:
    graph = {"web": ("db", "cache"), "db": (), "cache": ()}
    check = check_dependencies("web", graph, {"db": 1})
    assert check.waiting_on == ("cache",)


def test_unknown_name_is_blocked_and_held_for() -> None:
    check = check_dependencies("web", {"web": ("dbb", "db"), "db": ()}, {"db": 1})
    assert not check.ready
    assert check.blocked and check.holds
    assert check.status is not None and check.status.recheck
    assert "no existing service: dbb" in check.status.message
    assert "held at 0" in check.status.message
    assert check.missing == ("dbb",)
    assert check.waiting_on == ("dbb",)


def test_a_cycle_holds_nothing() -> None:
    check = check_dependencies("a", {"a": ("b",), "b": ("a",)}, {})
    assert check.blocked and not check.holds


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": ("a",)}, ("a", "a")),
        ({"a": ("b",), "b": ("a",)}, ("a", "b", "a")),
        ({"a": ("b",), "b": ("c",), "c": ("a",)}, ("a", "b", "c", "a")),
        ({"a": ("x", "b"), "b": ("a",), "x": ()}, ("a", "b", "a")),
    ],
)
def test_cycles_are_found_with_their_path(
    graph: dict[str, tuple[str, ...]], expected: tuple[str, ...]
) -> None:
    assert find_cycle("a", graph) == expected


def test_no_cycle_in_a_diamond() -> None:
    graph = {"a": ("b", "c"), "b": ("d",), "c": ("d",), "d": ()}
    assert find_cycle("a", graph) is None


def test_cycle_elsewhere_does_not_count_as_own_cycle() -> None:
    graph = {"a": ("b",), "b": ("c",), "c": ("b",)}
    assert find_cycle("a", graph) is None
    # `a` simply waits: b is held by its own cycle and never runs.
    check = check_dependencies("a", graph, {})
    assert not check.ready and not check.blocked


def test_cycle_is_blocked_with_the_path() -> None:
    check = check_dependencies("web", {"web": ("db",), "db": ("web",)}, {"db": 1, "web": 1})
    assert check.blocked
    assert check.status is not None and "web -> db -> web" in check.status.message
