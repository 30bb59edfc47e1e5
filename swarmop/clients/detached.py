"""Blocking calls that must never hold the process open.

A Consul blocking query sits in its socket for up to its wait time (30 s).
Run in an ordinary worker thread, an abandoned query keeps the interpreter
from exiting until it returns, so `swarmop run` would linger long after
SIGTERM. These calls run in daemon threads instead: cancelling the caller
abandons the thread, and the process exits without waiting for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")


async def run_detached(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn(*args, **kwargs)` in a daemon thread and return its result.

    Cancellation returns at once; the thread finishes (or not) on its own and
    its result is dropped.
    """
    token = anyio.lowlevel.current_token()
    finished = anyio.Event()
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, fn(*args, **kwargs)))
        except BaseException as error:  # handed to the caller as is
            outcome.append((False, error))
        # The loop may be gone when an abandoned call returns: nobody waits then.
        with contextlib.suppress(Exception):
            anyio.from_thread.run_sync(finished.set, token=token)

    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    threading.Thread(target=target, name=f"swarmop-detached:{name}", daemon=True).start()
    await finished.wait()
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
