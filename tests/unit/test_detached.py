"""run_detached: results and errors come back; cancelling abandons a call that
never returns, and such a call does not keep the process alive."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import anyio
import pytest

from swarmop.clients.detached import run_detached


def test_returns_the_result_and_runs_in_a_daemon_thread() -> None:
    def where(a: int, *, b: int) -> tuple[int, bool, bool]:
        current = threading.current_thread()
        return a + b, current.daemon, current is threading.main_thread()

    assert anyio.run(lambda: run_detached(where, 2, b=3)) == (5, True, False)


def test_raises_the_callers_error() -> None:
    def fail() -> None:
        raise LookupError("no such key")

    with pytest.raises(LookupError, match="no such key"):
        anyio.run(run_detached, fail)


def test_cancelling_abandons_a_blocked_call() -> None:
    release = threading.Event()
    started = threading.Event()

    def blocked() -> str:
        started.set()
        release.wait()
        return "late"

    async def main() -> bool:
        with anyio.move_on_after(0.2) as scope:
            await run_detached(blocked)
        return scope.cancelled_caught

    try:
        assert anyio.run(main) is True
        assert started.is_set()
    finally:
        release.set()


def test_an_abandoned_call_does_not_hold_the_process_open() -> None:
    # A blocking query abandoned at shutdown must not delay exit: before this
    # runner, `swarmop run` lingered until Consul's 30 s wait ran out.
    program = textwrap.dedent(
        """
        import threading, anyio
        from swarmop.clients.detached import run_detached

        async def main():
            with anyio.move_on_after(0.1):
                await run_detached(threading.Event().wait)

        anyio.run(main)
        print("exited")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "exited"
