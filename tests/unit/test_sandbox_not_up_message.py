"""What `status` and `env` say about a sandbox that is not up: plainly down, busy,
or leftovers of a killed run that `down` removes."""

from __future__ import annotations

from swarmop.sandbox.leftovers import Leftovers
from swarmop.sandbox.report import describe_not_up, not_up_message


def test_nothing_left_is_plainly_down() -> None:
    message = not_up_message("mine", Leftovers(), busy=False)
    assert message == "sandbox 'mine' is down (run `swarmop sandbox up --name mine`)"


def test_leftovers_are_named_and_down_is_the_remedy() -> None:
    found = Leftovers(processes=5, namespaces=4, mounts=1, cgroups=3, directories=("/run/x/mine",))
    message = not_up_message("mine", found, busy=False)
    assert "is down" not in message
    assert "5 processes, 4 network namespaces, 1 mount, 3 cgroups, directories /run/x/mine" in (
        message
    )
    assert "`swarmop sandbox down --name mine` removes them" in message
    assert "`swarmop sandbox up --name mine`" in message


def test_a_lone_directory_is_a_leftover_too() -> None:
    # A run killed right after it wrote its state file leaves only its directory.
    found = Leftovers(directories=("/run/swarmop-sandbox/mine",))
    assert bool(found)
    message = not_up_message("mine", found, busy=False)
    assert "left directories /run/swarmop-sandbox/mine:" in message
    assert "sandbox down --name mine" in message


def test_empty_leftovers_are_false_and_summarised_as_nothing() -> None:
    assert not Leftovers()
    assert Leftovers().summary() == "nothing"
    assert Leftovers(processes=1).summary() == "1 process"


def test_a_sandbox_being_built_is_not_called_a_crash() -> None:
    found = Leftovers(processes=2, namespaces=4)
    message = not_up_message("mine", found, busy=True)
    assert "running now" in message
    assert "removes them" not in message


class _FakeSandbox:
    """Only what describe_not_up reads."""

    def __init__(self, busy: list[bool], found: Leftovers) -> None:
        self.name = "mine"
        self._busy = busy
        self._found = found

    def busy(self) -> bool:
        return self._busy.pop(0)

    def leftovers(self) -> Leftovers:
        return self._found


def test_a_lock_taken_while_counting_still_counts_as_busy() -> None:
    # Free when first asked, taken by the time the leftovers were counted: the
    # pieces are a starting `up`'s, not a crash's.
    sandbox = _FakeSandbox([False, True], Leftovers(namespaces=1))
    assert "running now" in describe_not_up(sandbox)  # type: ignore[arg-type]


def test_free_lock_and_leftovers_point_at_down() -> None:
    sandbox = _FakeSandbox([False, False], Leftovers(namespaces=1))
    assert "sandbox down --name mine" in describe_not_up(sandbox)  # type: ignore[arg-type]
